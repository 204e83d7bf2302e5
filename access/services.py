"""Changes to API keys: issue (the key is returned once and only its hash is kept), revoke, mark used."""

import hashlib
import secrets
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from cohorts.models import Project

from .models import ApiKey

KEY_MARKER = "cs_"  # lets secret scanners and people recognise a Cohortsync key
PREFIX_LENGTH = len(KEY_MARKER) + 8
# last_used_at is for people ("used today?"): one write a minute at most, not one a request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def api_key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def api_key_create(*, project: Project, name: str, created_by=None) -> tuple[ApiKey, str]:
    """Issue a key for a project; returns the stored key and the plaintext, which is never stored."""
    key = KEY_MARKER + secrets.token_urlsafe(32)
    api_key = ApiKey(project=project, name=name, prefix=key[:PREFIX_LENGTH], key_hash=api_key_hash(key),
                     created_by=created_by)
    api_key.full_clean()
    api_key.save()
    return api_key, key


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    """Revoke at once: the next request with this key is refused. Revoking twice keeps the first time."""
    ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    api_key.refresh_from_db()
    return api_key


def api_key_mark_used(*, api_key: ApiKey) -> None:
    now = timezone.now()
    if api_key.last_used_at is not None and now - api_key.last_used_at < LAST_USED_RESOLUTION:
        return
    ApiKey.objects.filter(pk=api_key.pk).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION)
    ).update(last_used_at=now)
    api_key.last_used_at = now
