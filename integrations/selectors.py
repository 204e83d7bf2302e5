"""Reads over connections."""

from django.db.models import QuerySet

from .models import Connection


def connection_list(*, projects: QuerySet) -> QuerySet:
    """Connections of these projects (the REST API passes the projects its client acts for)."""
    return Connection.objects.filter(project__in=projects).order_by("id")
