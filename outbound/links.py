"""Links to the status pages from emails and webhooks."""

from django.conf import settings


def absolute_url(path: str) -> str:
    """A page's link for emails and webhooks (COHORTSYNC_BASE_URL + path)."""
    return settings.COHORTSYNC_BASE_URL.rstrip("/") + path
