"""Changes to keys of which only a hash is kept (HashedKey: API keys here, ingestion keys in
sdk_ingest): issue (the key is returned once), revoke, mark used."""

import hashlib
import secrets
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from cohorts.models import Project

from .models import ApiKey, HashedKey

KEY_MARKER = "cs_"  # lets secret scanners and people recognise a Cohortsync key
PREFIX_LENGTH = len(KEY_MARKER) + 8
MAX_KEY_LENGTH = 200  # our keys are under 50 characters; anything far longer is not one
# last_used_at is for people ("used today?"): one write a minute at most, not one a request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def secret_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def hashed_key_create(*, hashed_key: HashedKey, marker: str, token_bytes: int, prefix_length: int) -> str:
    """Give a new key its secret and save it, keeping only the secret's prefix and hash; returns
    the secret, which is never stored."""
    key = marker + secrets.token_urlsafe(token_bytes)
    hashed_key.prefix = key[:prefix_length]
    hashed_key.key_hash = secret_hash(key)
    hashed_key.full_clean()
    hashed_key.save()
    return key


def hashed_key_revoke(*, hashed_key: HashedKey) -> HashedKey:
    """Revoke at once: the next request with this key is refused. Revoking twice keeps the first time."""
    type(hashed_key)._default_manager.filter(pk=hashed_key.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now())
    hashed_key.refresh_from_db()
    return hashed_key


def hashed_key_mark_used(*, hashed_key: HashedKey) -> None:
    now = timezone.now()
    if hashed_key.last_used_at is not None and now - hashed_key.last_used_at < LAST_USED_RESOLUTION:
        return
    type(hashed_key)._default_manager.filter(pk=hashed_key.pk).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION)
    ).update(last_used_at=now)
    hashed_key.last_used_at = now


def api_key_create(*, project: Project, name: str, created_by=None) -> tuple[ApiKey, str]:
    """Issue a key for a project; returns the stored key and the plaintext, which is never stored."""
    api_key = ApiKey(project=project, name=name, created_by=created_by)
    key = hashed_key_create(hashed_key=api_key, marker=KEY_MARKER, token_bytes=32, prefix_length=PREFIX_LENGTH)
    return api_key, key
