"""One request budget per API key (or per logged-in user): COHORTSYNC_API_THROTTLE_RATE; and a
budget of invalid API keys per address: COHORTSYNC_INVALID_API_KEY_RATE."""

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle

from .models import ApiKey


class ApiClientThrottle(SimpleRateThrottle):
    scope = "api"

    def get_rate(self) -> str:
        # Read at each request (not frozen at import as DRF's THROTTLE_RATES is), so tests can change it.
        return settings.COHORTSYNC_API_THROTTLE_RATE

    def get_cache_key(self, request, view) -> str:
        if isinstance(request.auth, ApiKey):
            ident = f"key-{request.auth.pk}"
        elif request.user is not None and request.user.is_authenticated:
            ident = f"user-{request.user.pk}"
        else:
            ident = f"anon-{self.get_ident(request)}"  # the public schema and docs pages
        return self.cache_format % {"scope": self.scope, "ident": ident}


class InvalidApiKeyThrottle(SimpleRateThrottle):
    """Counts only requests whose API key is invalid, per client address, so guessing keys (or a
    misconfigured client hammering) is refused before it costs a lookup each time."""

    scope = "invalid-api-key"

    def get_rate(self) -> str:
        return settings.COHORTSYNC_INVALID_API_KEY_RATE

    def get_cache_key(self, request, view=None) -> str:
        # REMOTE_ADDR, never a client-supplied X-Forwarded-For: else each guess could name a new address.
        return self.cache_format % {"scope": self.scope, "ident": request.META.get("REMOTE_ADDR", "")}

    def wait_if_blocked(self, request) -> float | None:
        """Seconds to wait if this address used up its invalid keys, else None."""
        self.key = self.get_cache_key(request)
        self.history = self.cache.get(self.key, [])
        self.now = self.timer()
        while self.history and self.history[-1] <= self.now - self.duration:
            self.history.pop()
        return self.wait() if len(self.history) >= self.num_requests else None

    def record_invalid_key(self) -> None:
        """Call after wait_if_blocked (which loaded this address's history)."""
        self.history.insert(0, self.now)
        self.cache.set(self.key, self.history, self.duration)
