"""Reads for API access: which key a secret is (the projects a client acts for: cohorts.api_common)."""

import hmac

from .models import ApiKey
from .services import PREFIX_LENGTH, secret_hash


def api_key_for_secret(*, key: str) -> ApiKey | None:
    """The key (revoked or not) whose secret this is, or None."""
    digest = secret_hash(key)
    for candidate in ApiKey.objects.filter(prefix=key[:PREFIX_LENGTH]).select_related("project"):
        if hmac.compare_digest(candidate.key_hash, digest):
            return candidate
    return None
