"""Reads over connections."""

import re

from django.db.models import QuerySet

from .models import Connection


def connection_list(*, projects: QuerySet) -> QuerySet:
    """Connections of these projects (the REST API passes the projects its client acts for)."""
    return Connection.objects.filter(project__in=projects).order_by("id")


INBOX_IN_URL = re.compile(r"/receiver/([-a-zA-Z0-9_]+)/")


def inbox_readable_by(*, user, inbox: str) -> bool:
    """An inbox of the test receiver belongs to the projects whose connections deliver to it
    (/receiver/<inbox>/): their members, and superusers, may read it."""
    if user.is_superuser:
        return True
    return Connection.objects.filter(project__members=user, url__contains=f"/receiver/{inbox}/").exists()


def inboxes_of(*, projects: QuerySet) -> set[str]:
    """The test receiver's inboxes these projects' connections deliver to."""
    urls = Connection.objects.filter(project__in=projects, url__contains="/receiver/").values_list("url", flat=True)
    return {match.group(1) for url in urls for match in [INBOX_IN_URL.search(url)] if match}
