"""One request budget per API key (or per logged-in user): COHORTSYNC_API_THROTTLE_RATE."""

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
