"""One run of a sync from claim to release: plan → stage → pages → send → records → commit."""

import logging

from django.db import DatabaseError
from django.utils import timezone

from outbound.claims import ClaimLost
from outbound.runs import run_claim_lost, run_fail, run_skip, run_start

from .. import selectors, services
from ..models import SnapshotMember, StagedMember, Sync, SyncRun
from .commit import finish_run
from .plan import plan_run
from .records import reconnect_if_broken
from .send import deliver_run
from .stage import stage_members

logger = logging.getLogger("deliveries.engine")


def sync_run(
    *, sync_id: int, full: bool = False, trigger: str = "schedule", run_id: int | None = None, progress=None
) -> SyncRun | None:
    """Run one sync if it can be claimed; returns the run, or None when not claimed.

    A scheduled trigger runs only a due sync; others (`manual`, `api`, `cli`) run it now.
    `run_id` names a run queued by services.sync_request_run, which this run then fills in.
    """
    token = services.sync_claim(sync_id=sync_id, require_due=(trigger == "schedule"))
    if token is None and _claim_of_a_dead_process_broken(sync_id):
        token = services.sync_claim(sync_id=sync_id, require_due=(trigger == "schedule"))
    if token is None:
        run_skip(model=SyncRun, run_id=run_id, reason=selectors.sync_not_run_reason(
            sync_id=sync_id, scheduled=trigger == "schedule"))
        return None
    run = None
    try:
        abandon_unfinished_runs(sync_id=sync_id)
        sync = Sync.objects.select_related("cohort", "connection").get(pk=sync_id)
        if full and not sync.force_full:  # asked for once, it stays asked for until a full run succeeds
            sync = services.sync_request_full_refresh(sync=sync)
        plan = plan_run(sync=sync, full=full)
        run = run_start(runs=sync.runs, run_id=run_id, kind=plan.kind, reason=plan.reason, trigger=trigger)
        page_plans = stage_members(run=run, sync=sync)
        verdict = deliver_run(run=run, sync=sync, page_plans=page_plans, token=token, progress=progress)
        finish_run(run=run, sync=sync, verdict=verdict, token=token)
        return run
    except ClaimLost as exc:
        logger.warning("%s", exc)
        return run_claim_lost(run=run)
    except Exception as exc:
        logger.exception("sync %s: run failed with an internal error", sync_id)
        if run is not None:
            what = "database error" if isinstance(exc, DatabaseError) else "internal error"
            reconnect_if_broken()  # the error may have been the connection itself
            run_fail(model=SyncRun, run_id=run.pk, reason=f"{what}: {exc!r}")
        raise
    finally:
        reconnect_if_broken()
        if run is not None and not _carries_over(run):
            StagedMember.objects.filter(run_id=run.pk).delete()
            if run.kind == SyncRun.Kind.FULL and run.status != SyncRun.Status.SUCCEEDED:
                SnapshotMember.objects.filter(sync_id=sync_id, generation=run.pk).delete()
        services.sync_release(sync_id=sync_id, token=token)


def _claim_of_a_dead_process_broken(sync_id: int) -> bool:
    """A pool child killed mid-run: Celery redelivers its task to another child of this host,
    which finds the claim held by a process that no longer exists and takes it at once."""
    sync = Sync.objects.filter(pk=sync_id).only("claimed_until", "claim_token", "claimed_by").first()
    if sync is None or not services.sync_claim_holder_died(sync=sync):
        return False
    return services.sync_break_claim(sync=sync, reason=f"the worker process ({sync.claimed_by}) died mid-run")


def _carries_over(run: SyncRun) -> bool:
    """An unsuccessful diff run keeps its staging rows for the next run (see carry_over)."""
    run.refresh_from_db(fields=["status", "kind"])
    return run.kind == SyncRun.Kind.DIFF and run.status != SyncRun.Status.SUCCEEDED


def _drop_leftover_generations(*, sync_id: int, current: int) -> None:
    """Delete snapshot generations of this sync other than the current one (a killed first run's).

    Each is found by an ordered LIMIT 1 probe, an index scan under any statistics: a range
    DELETE on a table never analysed is estimated at a third of its rows and planned as a
    full scan, every run.
    """
    rows = SnapshotMember.objects.filter(sync_id=sync_id)
    for probe in (rows.filter(generation__lt=current).order_by("generation"),
                  rows.filter(generation__gt=current).order_by("-generation")):
        while (generation := probe.values_list("generation", flat=True).first()) is not None:
            rows.filter(generation=generation).delete()


def abandon_unfinished_runs(*, sync_id: int) -> None:
    """Runs left `running` by a killed worker: mark them failed (full runs drop their staging
    rows and their snapshot generation).

    Called while holding the claim, so no live run of this sync can be among them.
    """
    current = Sync.objects.filter(pk=sync_id).values_list("snapshot_generation", flat=True).get()
    _drop_leftover_generations(sync_id=sync_id, current=current)
    stale = SyncRun.objects.filter(sync_id=sync_id, status=SyncRun.Status.RUNNING)
    # A killed diff run may have delivered pages: its staging rows carry over (see carry_over).
    StagedMember.objects.filter(run_id__in=stale.exclude(kind=SyncRun.Kind.DIFF).values("pk")).delete()
    stale = list(stale.values_list("pk", flat=True))
    if stale:
        SyncRun.objects.filter(pk__in=stale).update(
            status=SyncRun.Status.FAILED, finished_at=timezone.now(), error_message="abandoned: the worker stopped"
        )
