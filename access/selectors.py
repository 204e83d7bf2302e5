"""Reads for API access: which key a secret is, and which projects a client may act for."""

import hmac

from django.db.models import QuerySet

from cohorts.models import Project

from .models import ApiKey
from .services import PREFIX_LENGTH, secret_hash


def api_key_for_secret(*, key: str) -> ApiKey | None:
    """The key (revoked or not) whose secret this is, or None."""
    digest = secret_hash(key)
    for candidate in ApiKey.objects.filter(prefix=key[:PREFIX_LENGTH]).select_related("project"):
        if hmac.compare_digest(candidate.key_hash, digest):
            return candidate
    return None


def projects_for_client(*, user, api_key: ApiKey | None) -> QuerySet[Project]:
    """A key acts for exactly its project; a logged-in user for the projects they are a member of."""
    if api_key is not None:
        return Project.objects.filter(pk=api_key.project_id)
    if user is None or not user.is_authenticated:
        return Project.objects.none()
    return Project.objects.filter(members=user)


def projects_for_user(*, user) -> QuerySet:
    """The projects whose syncs, messages, cohorts and alerts a person sees on the status
    pages: those they are a member of (superusers: all)."""
    return Project.objects.all() if user.is_superuser else projects_for_client(user=user, api_key=None)
