"""Reads: which ingestion key a secret is."""

from django.db.models import QuerySet

from access.services import MAX_KEY_LENGTH, secret_hash
from cohorts.models import Project

from .models import IngestKey


def ingest_key_for_secret(*, key: str, kinds: tuple[str, ...]) -> IngestKey | None:
    """The active key of one of these kinds whose secret this is, or None (revoked keys are None)."""
    if not key or len(key) > MAX_KEY_LENGTH:
        return None
    # Found by the hash of what the client sent (unique index): nothing compares the secret itself.
    return (IngestKey.objects.select_related("project")
            .filter(key_hash=secret_hash(key), kind__in=kinds, revoked_at__isnull=True).first())


def ingest_key_list(*, projects: QuerySet[Project]) -> QuerySet[IngestKey]:
    return IngestKey.objects.filter(project__in=projects).select_related("project")
