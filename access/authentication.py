"""`Authorization: Bearer <key>`: a request made with an API key acts for the key's project."""

from dataclasses import dataclass

from django.conf import settings
from rest_framework import authentication, exceptions

from .models import ApiKey
from .selectors import api_key_for_secret
from .services import MAX_KEY_LENGTH, hashed_key_mark_used
from .throttling import InvalidApiKeyThrottle


class TooManyInvalidKeys(exceptions.Throttled):
    """429 for an address that sent too many invalid keys (its own message, not the per-key budget's)."""

    def __init__(self, wait):
        super().__init__(wait, f"Too many requests with an invalid API key from this address "
                               f"(at most {settings.COHORTSYNC_INVALID_API_KEY_RATE}).")


class KeyClient:
    """`request.user` for a request made with a key (a HashedKey): the key's project, not a person."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None


@dataclass(frozen=True)
class ApiKeyClient(KeyClient):
    api_key: ApiKey

    def __str__(self) -> str:
        return f"API key {self.api_key.prefix}… of project {self.api_key.project_id}"


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None  # not ours: another scheme, or a session
        throttle = InvalidApiKeyThrottle()
        wait = throttle.wait_if_blocked(request)
        if wait is not None:
            raise TooManyInvalidKeys(wait)
        if len(header) != 2:
            throttle.record_invalid_key()
            raise exceptions.AuthenticationFailed("Malformed Authorization header: send `Authorization: Bearer <key>`.")
        try:
            key = header[1].decode("ascii")
        except UnicodeDecodeError:
            key = ""
        api_key = api_key_for_secret(key=key) if key and len(key) <= MAX_KEY_LENGTH else None
        if api_key is None:
            throttle.record_invalid_key()
            raise exceptions.AuthenticationFailed("Invalid API key.")
        if api_key.is_revoked:
            raise exceptions.AuthenticationFailed(f"This API key ({api_key.prefix}…) was revoked.")
        hashed_key_mark_used(hashed_key=api_key)
        return ApiKeyClient(api_key), api_key

    def authenticate_header(self, request) -> str:
        # Present, so DRF answers unauthenticated requests with 401 rather than 403.
        return f'{self.keyword} realm="api"'
