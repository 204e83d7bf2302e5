"""One run of a sync from claim to release: plan → stage → pages → send → records → commit."""

import logging

from django.db import DatabaseError
from django.db.models import Q
from django.utils import timezone

from .. import services
from ..models import SnapshotMember, StagedMember, Sync, SyncRun
from .commit import finish_run
from .plan import RunPlan, plan_run
from .records import ClaimLost, reconnect_if_broken
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
        if run_id is not None:
            SyncRun.objects.filter(pk=run_id, status=SyncRun.Status.QUEUED).update(
                status=SyncRun.Status.SKIPPED, finished_at=timezone.now(),
                error_message="not run: the sync was paused, finished or already running",
            )
        return None
    run = None
    try:
        abandon_unfinished_runs(sync_id=sync_id)
        sync = Sync.objects.select_related("cohort", "connection").get(pk=sync_id)
        if full and not sync.force_full:  # asked for once, it stays asked for until a full run succeeds
            sync = services.sync_request_full_refresh(sync=sync)
        plan = plan_run(sync=sync, full=full)
        run = _start_run(sync=sync, plan=plan, trigger=trigger, run_id=run_id)
        page_plans = stage_members(run=run, sync=sync)
        verdict = deliver_run(run=run, sync=sync, page_plans=page_plans, token=token, progress=progress)
        finish_run(run=run, sync=sync, verdict=verdict, token=token)
        return run
    except ClaimLost as exc:
        logger.warning("%s", exc)
        SyncRun.objects.filter(pk=run.pk).update(
            status=SyncRun.Status.FAILED, finished_at=timezone.now(), error_message="stopped: the claim expired"
        )
        run.refresh_from_db()
        return run
    except Exception as exc:
        logger.exception("sync %s: run failed with an internal error", sync_id)
        if run is not None:
            what = "database error" if isinstance(exc, DatabaseError) else "internal error"
            reconnect_if_broken()  # the error may have been the connection itself
            SyncRun.objects.filter(pk=run.pk).update(
                status=SyncRun.Status.FAILED, finished_at=timezone.now(), error_message=f"{what}: {exc!r}"[:500]
            )
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


def _start_run(*, sync: Sync, plan: RunPlan, trigger: str, run_id: int | None) -> SyncRun:
    fields = dict(kind=plan.kind, reason=plan.reason, trigger=trigger, status=SyncRun.Status.RUNNING)
    if run_id is not None:
        queued = SyncRun.objects.filter(pk=run_id, sync=sync, status=SyncRun.Status.QUEUED)
        if queued.update(**fields, started_at=timezone.now()):
            return SyncRun.objects.get(pk=run_id)
    return SyncRun.objects.create(sync=sync, **fields)


def abandon_unfinished_runs(*, sync_id: int) -> None:
    """Runs left `running` by a killed worker: mark them failed (full runs drop their staging
    rows and their snapshot generation).

    Called while holding the claim, so no live run of this sync can be among them.
    """
    current = Sync.objects.filter(pk=sync_id).values_list("snapshot_generation", flat=True).get()
    # Two index ranges rather than `<>`: the scan skips the current generation's rows.
    SnapshotMember.objects.filter(Q(generation__lt=current) | Q(generation__gt=current), sync_id=sync_id).delete()
    stale = SyncRun.objects.filter(sync_id=sync_id, status=SyncRun.Status.RUNNING)
    # A killed diff run may have delivered pages: its staging rows carry over (see carry_over).
    StagedMember.objects.filter(run_id__in=stale.exclude(kind=SyncRun.Kind.DIFF).values("pk")).delete()
    stale = list(stale.values_list("pk", flat=True))
    if stale:
        SyncRun.objects.filter(pk__in=stale).update(
            status=SyncRun.Status.FAILED, finished_at=timezone.now(), error_message="abandoned: the worker stopped"
        )
