"""HTTP Basic credentials as the SDKs send them: a Segment write key as the username, a
Mixpanel project secret as the username, or a Mixpanel service account (any username, a
Cohortsync API key as its secret). A request so authenticated acts for the key's project."""

import base64
import binascii
from dataclasses import dataclass

from rest_framework import authentication, exceptions

from access.authentication import ApiKeyClient, KeyClient
from access.selectors import api_key_for_secret
from access.services import MAX_KEY_LENGTH, hashed_key_mark_used

from .models import IngestKey
from .selectors import ingest_key_for_secret


@dataclass(frozen=True)
class IngestKeyClient(KeyClient):
    ingest_key: IngestKey

    def __str__(self) -> str:
        return f"{self.ingest_key.get_kind_display()} {self.ingest_key.prefix}… of project {self.ingest_key.project_id}"


def basic_credentials(request) -> tuple[str, str] | None:
    """(username, password) of `Authorization: Basic`, or None when the request sends another scheme."""
    header = authentication.get_authorization_header(request).split()
    if not header or header[0].lower() != b"basic":
        return None
    if len(header) != 2 or len(header[1]) > 4 * MAX_KEY_LENGTH:
        raise exceptions.AuthenticationFailed("Malformed Authorization header: send `Authorization: Basic <base64>`.")
    try:
        username, _, password = base64.b64decode(header[1], validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise exceptions.AuthenticationFailed("Malformed Authorization header: the credentials are not base64.") from None
    return username, password


def _ingest_key_login(key: str, kinds: tuple[str, ...], what: str):
    ingest_key = ingest_key_for_secret(key=key, kinds=kinds)
    if ingest_key is None:
        raise exceptions.AuthenticationFailed(f"Invalid or revoked {what}.")
    hashed_key_mark_used(hashed_key=ingest_key)
    return IngestKeyClient(ingest_key), ingest_key


class SegmentWriteKeyAuthentication(authentication.BaseAuthentication):
    """Segment's convention: the write key as the Basic username, no password."""

    def authenticate(self, request):
        credentials = basic_credentials(request)
        if credentials is None:
            return None
        return _ingest_key_login(credentials[0], (IngestKey.Kind.SEGMENT_WRITE_KEY,), "write key")

    def authenticate_header(self, request) -> str:
        return 'Basic realm="segment"'


def segment_body_write_key(payload) -> IngestKey:
    """analytics.js's other convention (before it sent Basic too): the write key as the body's
    `writeKey`, for a request without an Authorization header. The same key rules as Basic."""
    key = payload.get("writeKey") if isinstance(payload, dict) else None
    if not isinstance(key, str) or not key:
        raise exceptions.NotAuthenticated("Send the write key as the Basic username (or the body's `writeKey`).")
    return _ingest_key_login(key, (IngestKey.Kind.SEGMENT_WRITE_KEY,), "write key")[1]


class MixpanelSecretAuthentication(authentication.BaseAuthentication):
    """/import: the project secret (or token) as the Basic username, or a service account whose secret is
    a Cohortsync API key (`?project_id=`, when sent, must be the key's project)."""

    def authenticate(self, request):
        credentials = basic_credentials(request)
        if credentials is None:
            return None
        username, password = credentials
        if not password:
            # Mixpanel takes the project token there too (its Java library sends it).
            return _ingest_key_login(username, (IngestKey.Kind.MIXPANEL_SECRET, IngestKey.Kind.MIXPANEL_TOKEN),
                                     "project secret or token")
        api_key = api_key_for_secret(key=password) if len(password) <= MAX_KEY_LENGTH else None
        if api_key is None or api_key.is_revoked:
            raise exceptions.AuthenticationFailed("Invalid or revoked service account secret (a Cohortsync API key).")
        project_id = request.query_params.get("project_id")
        if project_id not in (None, "", str(api_key.project_id)):
            raise exceptions.AuthenticationFailed(f"This key is not one of project {project_id[:20]}.")
        hashed_key_mark_used(hashed_key=api_key)
        return ApiKeyClient(api_key), api_key

    def authenticate_header(self, request) -> str:
        return 'Basic realm="mixpanel"'
