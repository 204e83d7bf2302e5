"""Reads of alerts and their firings, for the admin, the API and the status pages."""

from collections.abc import Iterable

from django.db.models import QuerySet

from cohorts.models import Project

from .models import Alert, AlertFiring


def alert_list(*, projects: Iterable[Project] | QuerySet) -> QuerySet[Alert]:
    """The alerts of these projects (instances, ids or a queryset), by name."""
    return (
        Alert.objects.filter(project__in=projects)
        .select_related("project", "cohort", "sync__cohort", "sync__connection", "created_by")
        .order_by("name", "pk")
    )


def alert_firing_list(*, projects: Iterable[Project] | QuerySet, alert_id: int | None = None) -> QuerySet[AlertFiring]:
    """The firings of these projects' alerts (or of one of them), newest first."""
    firings = AlertFiring.objects.filter(alert__project__in=projects)
    if alert_id is not None:
        firings = firings.filter(alert_id=alert_id)
    return firings.select_related("alert", "alert__project").order_by("-fired_at", "-id")


def alerts_watch(*, cohort_id: int | None = None, sync_id: int | None = None) -> bool:
    """Whether an active alert watches this cohort or sync (one indexed read, before any task is queued)."""
    alerts = Alert.objects.filter(is_active=True)
    return alerts.filter(cohort_id=cohort_id).exists() if cohort_id is not None else \
        alerts.filter(sync_id=sync_id).exists()
