"""Reads of alerts and their firings, for the admin, the API and the status pages."""

from collections.abc import Iterable

from django.db.models import Prefetch, QuerySet

from cohorts.models import Cohort, Project
from cohorts.selectors import projects_for_user
from deliveries.models import Sync

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


# --- The status pages ---------------------------------------------------------------------

RECENT_FIRINGS = 5  # per alert, on a cohort's or sync's page
DASHBOARD_FIRINGS = 10


def _recent_firings(limit: int) -> Prefetch:
    # A sliced prefetch: the database keeps each alert's newest few (a window function).
    return Prefetch("firings", queryset=AlertFiring.objects.order_by("-fired_at", "-id")[:limit],
                    to_attr="recent_firings")


def alert_list_for_cohort(*, cohort: Cohort, firings: int = RECENT_FIRINGS) -> list[Alert]:
    """The alerts watching this cohort, each with `recent_firings` (newest first) and
    `condition_in_words`."""
    return _described(Alert.objects.filter(cohort=cohort), firings)


def alert_list_for_sync(*, sync: Sync, firings: int = RECENT_FIRINGS) -> list[Alert]:
    """The alerts watching this sync, each with `recent_firings` (newest first) and
    `condition_in_words`."""
    return _described(Alert.objects.filter(sync=sync), firings)


def _described(alerts: QuerySet, firings: int) -> list[Alert]:
    described = list(alerts.order_by("name", "id").prefetch_related(_recent_firings(firings)))
    for alert in described:
        alert.condition_in_words = alert_condition_in_words(alert=alert)
    return described


CHANGE_WORDS = {
    Alert.Operator.INCREASES_BY: "grows by at least",
    Alert.Operator.DECREASES_BY: "shrinks by at least",
    Alert.Operator.CHANGES_BY: "changes by at least",
}


def alert_condition_in_words(*, alert: Alert) -> str:
    """When an alert fires, said of what it watches: "its size is greater than 1,000"."""
    threshold = alert.threshold
    number = f"{int(threshold):,}" if threshold == int(threshold) else f"{threshold:,}"
    if alert.kind == Alert.Kind.COHORT_SIZE:
        return f"its size is {alert.get_operator_display()} {number}"
    if alert.kind == Alert.Kind.COHORT_SIZE_CHANGE:
        change = CHANGE_WORDS.get(alert.operator, alert.get_operator_display())
        return f"its size {change} {number}% between computations"
    if alert.kind == Alert.Kind.SYNC_PAUSED:
        return "it is paused"
    return f"it fails {number} run{'s' if threshold != 1 else ''} in a row"


def alert_firings_for_user(*, user, limit: int = DASHBOARD_FIRINGS) -> QuerySet:
    """The newest firings of the alerts of a person's projects, with what each alert watches."""
    return (
        alert_firing_list(projects=projects_for_user(user=user))
        .select_related("alert__cohort", "alert__sync__cohort", "alert__sync__connection")[:limit]
    )
