"""Reads over syncs and their runs, and what the status pages show beside them: cohorts'
size histories and the alerts that fired."""

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Case, F, Prefetch, Q, QuerySet, Value, When

from access.selectors import projects_for_client
from alerts.models import Alert, AlertFiring
from cohorts.charts import RunChange, SizePoint
from cohorts.models import Cohort, Project
from cohorts.selectors import cohort_size_history

from .models import DeliveryAttempt, Sync, SyncRun


def sync_list(
    *, projects: QuerySet, state: str | None = None, cohort_id: int | None = None, connection_id: int | None = None
) -> QuerySet:
    """Syncs of these projects (a sync belongs to its cohort's project), optionally filtered."""
    syncs = Sync.objects.filter(cohort__project__in=projects).order_by("id")
    if state is not None:
        syncs = syncs.filter(state=state)
    if cohort_id is not None:
        syncs = syncs.filter(cohort_id=cohort_id)
    if connection_id is not None:
        syncs = syncs.filter(connection_id=connection_id)
    return syncs


def sync_run_list(*, projects: QuerySet, sync: Sync | None = None) -> QuerySet:
    """Runs, newest first, of the syncs of these projects (or of one sync)."""
    runs = SyncRun.objects.filter(sync__cohort__project__in=projects)
    if sync is not None:
        runs = runs.filter(sync=sync)
    return runs.order_by("-started_at", "-id")


def sync_run_with_attempts(*, runs: QuerySet) -> QuerySet:
    """The same runs with their per-page attempts loaded in page and try order."""
    return runs.prefetch_related(
        Prefetch("attempts", queryset=DeliveryAttempt.objects.order_by("page_number", "attempt_number", "id"))
    )


# --- Status pages ---------------------------------------------------------------------

CHART_RUNS = 60
CHART_SIZES = 120  # measurements drawn on a cohort's page
RECENT_SIZES = 20  # rows of its size table
RECENT_FIRINGS = 5  # per alert, on a cohort's or sync's page
DASHBOARD_FIRINGS = 10


def projects_for_user(*, user) -> QuerySet:
    """The projects whose syncs, messages, cohorts and alerts a person sees on the status
    pages: those they are a member of (superusers: all)."""
    return Project.objects.all() if user.is_superuser else projects_for_client(user=user, api_key=None)


def sync_list_for_user(*, user) -> QuerySet:
    """The syncs a person sees on the status pages and may act on: those of the projects they
    are a member of (superusers: all), paused first, then failing, then the rest.

    Each sync carries `health`: "paused", "failing" (a stored receiver error), or its state.
    """
    projects = projects_for_user(user=user)
    health = Case(
        When(state=Sync.State.PAUSED, then=Value("paused")),
        When(~Q(last_error_message=""), then=Value("failing")),
        default="state",
    )
    attention = Case(
        When(state=Sync.State.PAUSED, then=Value(0)), When(~Q(last_error_message=""), then=Value(1)), default=Value(2)
    )
    return (
        sync_list(projects=projects)
        .select_related("cohort__project", "connection")
        .annotate(health=health)
        .alias(attention=attention)
        .order_by("attention", "cohort__project__name", "cohort__name", "id")
    )


def sync_run_history(*, sync: Sync) -> QuerySet:
    """The sync's runs, newest first, each with its page attempts (the status page's history)."""
    runs = SyncRun.objects.filter(sync=sync).annotate(duration=F("finished_at") - F("started_at"))
    return sync_run_with_attempts(runs=runs.order_by("-started_at", "-id"))


def sync_run_page_number(*, sync: Sync, run_id: int, per_page: int) -> int | None:
    """The page of the sync's run history (newest first) that holds this run, or None if the
    sync has no such run: an alert's root-cause link opens the page its run is on."""
    run = SyncRun.objects.filter(sync=sync, pk=run_id).values("started_at", "id").first()
    if run is None:
        return None
    newer = SyncRun.objects.filter(sync=sync).filter(
        Q(started_at__gt=run["started_at"]) | Q(started_at=run["started_at"], id__gt=run["id"])
    ).count()
    return newer // per_page + 1


def sync_activity(*, sync: Sync, runs: int = CHART_RUNS) -> list[SizePoint]:
    """The last successful runs, oldest first, each with what it sent and the cohort's size it
    measured (the engine records one at staging), for the sync page's chart."""
    delivered = list(
        SyncRun.objects.filter(sync=sync, status=SyncRun.Status.SUCCEEDED)
        .order_by("-started_at", "-id")
        .values_list("started_at", "finished_at", "kind", "members_count", "adds_count", "removes_count")[:runs]
    )[::-1]
    if not delivered:
        return []
    measured = sorted(
        (size.computed_at, size.size)
        for size in cohort_size_history(cohort=sync.cohort, limit=runs * 4)
        if size.computed_at >= delivered[0][0]
    )
    points = []
    for started_at, finished_at, kind, members, adds, removes in delivered:
        during = [size for at, size in measured if started_at <= at <= (finished_at or started_at)]
        points.append(SizePoint(
            at=started_at,
            size=during[-1] if during else None,
            run=RunChange(full=kind == SyncRun.Kind.FULL, members=members, adds=adds, removes=removes),
        ))
    return points


# --- Cohort pages ------------------------------------------------------------------------


@dataclass(frozen=True)
class SizeRow:
    """One measurement of a cohort's size, and how it differs from the one before (None: the first)."""

    computed_at: datetime
    size: int
    change: int | None


def cohort_list_for_user(*, user) -> QuerySet:
    """The cohorts a person sees on the status pages: those of the projects they are a member of."""
    return Cohort.objects.filter(project__in=projects_for_user(user=user)).select_related("project")


def cohort_size_rows(*, cohort: Cohort, limit: int = CHART_SIZES) -> list[SizeRow]:
    """The cohort's last measurements, newest first, each with its change from the previous one."""
    sizes = list(cohort_size_history(cohort=cohort, limit=limit + 1).values_list("computed_at", "size"))
    return [
        SizeRow(computed_at=at, size=size, change=size - sizes[i + 1][1] if i + 1 < len(sizes) else None)
        for i, (at, size) in enumerate(sizes[:limit])
    ]


def cohort_size_points(*, rows: list[SizeRow]) -> list[SizePoint]:
    """The measurements as chart points (cohorts.charts.size_chart sorts them oldest first)."""
    return [SizePoint(at=row.computed_at, size=row.size) for row in rows]


# --- Alerts on the status pages ------------------------------------------------------------


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
        AlertFiring.objects.filter(alert__project__in=projects_for_user(user=user))
        .select_related("alert__cohort", "alert__sync__cohort", "alert__sync__connection")
        .order_by("-fired_at", "-id")[:limit]
    )
