"""Reads over syncs and their runs."""

from django.db.models import Prefetch, QuerySet

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
