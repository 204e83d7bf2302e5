"""What a request's secrets are, and the rules that keep them from reaching anyone else (a receiver
echoing them back, a connection moved to another origin: integrations.services)."""

import base64
from collections.abc import Iterable
from urllib.parse import urlsplit

REDACTED = b"[redacted]"
MIN_REDACTED_LENGTH = 4  # shorter values would blank out ordinary words of an answer


def url_origin(url: str) -> tuple[str, str, int | None]:
    """Scheme, host and port: where a request, and the credentials in it, actually go."""
    parts = urlsplit(url or "")
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        port = None
    return parts.scheme.lower(), (parts.hostname or "").lower().rstrip("."), port


def sent_secrets(destination) -> list[str]:
    """The secret strings a request to `destination` (the sender's Destination) carries, as a receiver
    could echo them back (Basic Auth also as encoded on the wire)."""
    values = [destination.auth_password, destination.api_key, *(value for _, value in destination.headers)]
    if destination.auth_username:
        credentials = f"{destination.auth_username}:{destination.auth_password}"
        values.append(base64.b64encode(credentials.encode("latin-1", "replace")).decode())
    return [value for value in values if len(value) >= MIN_REDACTED_LENGTH]


def redact_secrets(content: bytes, *, secrets: Iterable[str]) -> bytes:
    """`content` (a receiver's answer, which we store and show) with our own secrets taken out."""
    for secret in sorted(set(secrets), key=len, reverse=True):  # longest first: one may contain another
        content = content.replace(secret.encode(), REDACTED)
    return content
