"""Reads over syncs and their runs (the status pages' cohort reads are in cohorts.selectors,
the alerts' in alerts.selectors)."""


from django.db.models import F, Prefetch, Q, QuerySet
from django.utils import timezone

from cohorts.charts import RunChange, SizePoint
from cohorts.selectors import cohort_size_history, narrowed, projects_for_user
from outbound.models import DeliveryAttempt

from .models import Sync, SyncRun


def sync_list(
    *, projects: QuerySet, state: str | None = None, cohort_id: int | None = None, connection_id: int | None = None
) -> QuerySet:
    """Syncs of these projects (a sync belongs to its cohort's project), optionally filtered."""
    syncs = Sync.objects.filter(cohort__project__in=projects).order_by("id")
    return narrowed(syncs, state=state, cohort_id=cohort_id, connection_id=connection_id)


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


def sync_not_run_reason(*, sync_id: int, scheduled: bool = False) -> str:
    """Why a run of the sync could not claim it just now: deleted, paused, finished, not due (a
    `scheduled` run), or another run holds it (what a skipped queued run and `runsync` say)."""
    sync = Sync.objects.filter(pk=sync_id).values("state", "claimed_until", "next_run_at").first()
    if sync is None:
        return "not run: the sync was deleted"
    if sync["state"] == Sync.State.PAUSED:
        return "not run: the sync is paused"
    if sync["state"] == Sync.State.FINISHED:
        return "not run: the sync is finished (a one-time export runs once)"
    unclaimed = sync["claimed_until"] is None or sync["claimed_until"] < timezone.now()
    if scheduled and unclaimed and (sync["next_run_at"] is None or sync["next_run_at"] > timezone.now()):
        return "not run: the sync is not due yet"
    # Claimed by a run still going (or that ended between the claim and this read).
    return "not run: another run of the sync was in progress"


# --- Status pages ---------------------------------------------------------------------

CHART_RUNS = 60


def sync_list_for_user(*, user) -> QuerySet:
    """The syncs a person sees on the status pages and may act on: those of the projects they
    are a member of (superusers: all), paused first, then failing, then the rest.

    Each sync carries `health` (outbound.health: "paused", "failing", or its state).
    """
    projects = projects_for_user(user=user)
    return (
        sync_list(projects=projects)
        .select_related("cohort__project", "connection")
        .with_health()
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
