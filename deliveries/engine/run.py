"""One run of a sync from claim to release: plan → stage → pages → send → records → commit."""

import logging
from dataclasses import dataclass
from datetime import timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import DatabaseError, connection as db
from django.db.models import Q, Subquery
from django.utils import timezone

from outbound.claims import ClaimLost, claim_heartbeat, claim_holder
from outbound.runs import run_claim_lost, run_fail, run_skip, run_start

from .. import selectors, services
from ..models import SnapshotMember, StagedMember, Sync, SyncRun
from .commit import finish_run
from .plan import plan_run
from .records import reconnect_if_broken
from .send import deliver_run
from .stage import picture_in_snapshot_table, stage_members, staged_page_plans

logger = logging.getLogger("deliveries.engine")


def sync_run(
    *, sync_id: int, full: bool = False, trigger: str = "schedule", run_id: int | None = None, progress=None
) -> SyncRun | None:
    """Run one sync if it can be claimed; returns the run, or None when not claimed.

    A scheduled trigger runs only a due sync; others (`manual`, `api`, `cli`) run it now.
    `run_id` names a run queued by services.sync_request_run, which this run then fills in.
    The sync's last run, if it stopped with pages left, is resumed instead (last_stopped_run).
    """
    token = services.sync_claim(sync_id=sync_id, require_due=(trigger == "schedule"))
    if token is None and _claim_of_a_dead_process_broken(sync_id):
        token = services.sync_claim(sync_id=sync_id, require_due=(trigger == "schedule"))
    if token is None:
        reason = selectors.sync_not_run_reason(sync_id=sync_id, scheduled=trigger == "schedule")
        # A queued resumption stays resumable: back to failed, saying why it did not run now.
        SyncRun.objects.filter(pk=run_id, status=SyncRun.Status.QUEUED, total_pages__gt=0).update(
            status=SyncRun.Status.FAILED, finished_at=timezone.now(), error_message=reason)
        run_skip(model=SyncRun, run_id=run_id, reason=reason)
        return None
    run = None
    try:
        with claim_heartbeat(subject=Sync.objects.filter(pk=sync_id), token=token) as heartbeat:
            history = run_history(sync_id=sync_id)
            abandon_unfinished_runs(sync_id=sync_id, history=history)
            sync = Sync.objects.select_related("cohort", "connection").get(pk=sync_id)
            if full and not sync.force_full:  # asked for once, it stays asked for until a full run succeeds
                sync = services.sync_request_full_refresh(sync=sync)
            plan = plan_run(sync=sync, full=full)
            unsuccessful_diffs = history.ids(kind=SyncRun.Kind.DIFF)
            stopped, resumable = last_stopped_run(sync=sync, plan=plan, history=history)
            if resumable:
                run = run_resume(run=stopped, queued_run_id=run_id)
                page_plans = staged_page_plans(run=run, sync=sync)
                unsuccessful_diffs = [pk for pk in unsuccessful_diffs if pk != run.pk]
            else:
                drop_unresumable_pictures(sync=sync, history=history)
                if stopped is not None and stopped.pk == run_id:
                    run_id = None  # a queued resumption that cannot resume now: a new run starts over
                run = run_start(runs=sync.runs, run_id=run_id, kind=plan.kind, reason=plan.reason, trigger=trigger,
                                worker=claim_holder())
                if stopped is not None:  # say so on the run that is not resumed
                    SyncRun.objects.filter(pk=stopped.pk).update(
                        status=SyncRun.Status.FAILED if stopped.status == SyncRun.Status.QUEUED else stopped.status,
                        error_message=f"{stopped.error_message} · not resumed ({resumable.why_not}): "
                                      f"run {run.session_id} started over"[:2000])
                page_plans = stage_members(run=run, sync=sync, unsuccessful_diffs=unsuccessful_diffs)
            verdict = deliver_run(run=run, sync=sync, page_plans=page_plans, token=token, progress=progress,
                                  heartbeat=heartbeat)
            finish_run(run=run, sync=sync, verdict=verdict, token=token,
                       in_snapshot_table=picture_in_snapshot_table(run=run, page_plans=page_plans),
                       unsuccessful_diffs=unsuccessful_diffs)
        return run
    except ClaimLost as exc:
        logger.warning("%s", exc)
        return run_claim_lost(run=run)
    except Exception as exc:
        logger.exception("sync %s: run failed with an internal error", sync_id)
        if run is not None:
            run.status = SyncRun.Status.FAILED  # also for the release, should the update below fail
            reconnect_if_broken()  # the error may have been the connection itself
            run_fail(model=SyncRun, run_id=run.pk, reason=_stop_reason(exc))
        raise
    finally:
        reconnect_if_broken()
        # The run's status is as recorded (finish_run, run_fail, run_claim_lost). Success dropped
        # its staged rows; a run that stopped keeps its picture: the next attempt resumes it, or
        # drops it when it starts over (drop_unresumable_pictures).
        services.sync_release(sync_id=sync_id, token=token,
                              failed=run is not None and run.status == SyncRun.Status.FAILED)


def _stop_reason(exc: BaseException) -> str:
    """What stopped a run that raised, in words an operator can act on."""
    if isinstance(exc, SoftTimeLimitExceeded):
        return (f"stopped at the task's time limit ({settings.CELERY_TASK_SOFT_TIME_LIMIT} s); "
                "the next run resumes it")
    what = "database error" if isinstance(exc, DatabaseError) else "internal error"
    return f"{what}: {exc!r}"


@dataclass(frozen=True)
class RunHistory:
    """What a new run needs of the sync's earlier runs, read once under the claim (one query):
    those that did not succeed (left running, failed, paused, or queued again to resume; a few
    columns of each) and the last run that started or was queued to resume, whatever its status."""

    unsuccessful: list[SyncRun]
    last: SyncRun | None

    def ids(self, *, kind: str) -> list[int]:
        return [run.pk for run in self.unsuccessful if run.kind == kind]


# Runs that may hold a picture that was not delivered: stopped, left running, or queued to resume.
UNSUCCESSFUL = Q(status__in=[SyncRun.Status.RUNNING, SyncRun.Status.FAILED, SyncRun.Status.PAUSED]) | Q(
    status=SyncRun.Status.QUEUED, total_pages__gt=0)


def run_history(*, sync_id: int) -> RunHistory:
    runs = SyncRun.objects.filter(sync_id=sync_id)
    # Queued requests that have not started have no picture; a queued resumption has one.
    last = runs.exclude(status=SyncRun.Status.SKIPPED).exclude(status=SyncRun.Status.QUEUED, total_pages=0)
    last_id = Subquery(last.order_by("-started_at", "-id").values("pk")[:1])
    rows = list(runs.filter(UNSUCCESSFUL | Q(pk=last_id)).annotate(last_id=last_id)
                .only("pk", "sync_id", "kind", "status", "started_at", "total_pages", "worker"))
    # The last run is the only row that may have succeeded.
    return RunHistory(unsuccessful=[run for run in rows if run.status != SyncRun.Status.SUCCEEDED],
                      last=next((run for run in rows if run.pk == run.last_id), None))


class Resumable:
    """Whether a stopped run is resumed; if not, why (truthy only when it is)."""

    def __init__(self, why_not: str = ""):
        self.why_not = why_not

    def __bool__(self) -> bool:
        return not self.why_not


def last_stopped_run(*, sync: Sync, plan, history: RunHistory | None = None) -> tuple[SyncRun | None, Resumable]:
    """The sync's last run if it stopped (failed or paused) with its picture complete and pages
    left, and whether it is resumed: if it started within COHORTSYNC_RESUME_MAX_AGE_HOURS and
    still answers what is asked (a full picture always does; a diff's only when a diff is
    asked for, so a requested full load starts anew). `history`: run_history, if read."""
    last = (history or run_history(sync_id=sync.pk)).last
    if (last is None or last.status not in (SyncRun.Status.FAILED, SyncRun.Status.PAUSED, SyncRun.Status.QUEUED)
            or last.total_pages == 0):
        return None, Resumable("nothing to resume")
    last = SyncRun.objects.get(pk=last.pk)  # the whole row: it is resumed, or told why not
    max_age = settings.COHORTSYNC_RESUME_MAX_AGE_HOURS
    if not max_age:
        return last, Resumable("resuming is turned off")
    if not last.resumable:
        return last, Resumable("the sync's connection or properties changed since")
    if last.started_at < timezone.now() - timedelta(hours=max_age):
        return last, Resumable(f"its picture is older than {max_age:g} h")
    if last.kind == SyncRun.Kind.DIFF and plan.kind != SyncRun.Kind.DIFF:
        return last, Resumable(f"a full load is due ({plan.reason})")
    return last, Resumable()


def _stop_record(run: SyncRun) -> dict:
    return {"at": run.finished_at.isoformat() if run.finished_at else None, "status": run.status,
            "error": run.error_message, "pages_delivered": run.pages_delivered, "trigger": run.trigger}


def run_resume(*, run: SyncRun, queued_run_id: int | None) -> SyncRun:
    """The stopped run runs again, from its first undelivered page; its stop is kept in `stops`
    (a queued resumption's was kept when it was queued). Another run queued by a request is
    skipped, naming the run resumed in its place."""
    if run.status != SyncRun.Status.QUEUED:
        run.stops = [*(run.stops or []), _stop_record(run)]
    run.status, run.finished_at, run.error_message, run.http_status = SyncRun.Status.RUNNING, None, "", None
    run.resumed_count += 1
    run.worker = claim_holder()
    run.save(update_fields=["stops", "status", "finished_at", "error_message", "http_status", "resumed_count",
                            "worker"])
    if queued_run_id != run.pk:
        run_skip(model=SyncRun, run_id=queued_run_id,
                 reason=f"resumed the stopped run {run.session_id} in its place, from page "
                        f"{run.pages_delivered + 1} of {run.total_pages}")
    return run


def queue_resumption(*, sync: Sync, full: bool, trigger: str, dispatched_until) -> SyncRun | None:
    """A run asked for now (pages, admin, API) while the sync's last run stopped and can be
    resumed: that run is queued again, so the run the caller gets, and follows, is the one that
    resumes. None when there is nothing to resume (the caller queues a new run)."""
    stopped, resumable = last_stopped_run(sync=sync, plan=plan_run(sync=sync, full=full))
    if not resumable:
        return None
    if stopped.status == SyncRun.Status.QUEUED:  # asked for twice: the same resumption
        return stopped
    queued = SyncRun.objects.filter(pk=stopped.pk, status=stopped.status).update(
        status=SyncRun.Status.QUEUED, stops=[*(stopped.stops or []), _stop_record(stopped)], finished_at=None,
        error_message="", http_status=None, trigger=trigger, dispatched_until=dispatched_until)
    if not queued:  # a run took it up meanwhile
        return None
    stopped.refresh_from_db()
    return stopped


def unqueue_resumption(*, run: SyncRun) -> None:
    """The broker refused a queued resumption's task: the run is stopped as it was."""
    stop = (run.stops or [{}])[-1]
    SyncRun.objects.filter(pk=run.pk, status=SyncRun.Status.QUEUED).update(
        status=stop.get("status", SyncRun.Status.FAILED), error_message=stop.get("error", ""),
        finished_at=stop.get("at") or timezone.now(), trigger=stop.get("trigger", run.trigger),
        stops=(run.stops or [])[:-1])


def drop_unresumable_pictures(*, sync: Sync, history: RunHistory) -> None:
    """A run starts over: earlier stopped full runs' pictures (staged rows, snapshot
    generations) will never be resumed. Diff runs' staged rows stay: carry_over folds them in."""
    _drop_leftover_generations(sync_id=sync.pk, current=sync.snapshot_generation)
    if stopped_full := history.ids(kind=SyncRun.Kind.FULL):
        StagedMember.objects.filter(run_id__in=stopped_full).delete()


def _claim_of_a_dead_process_broken(sync_id: int) -> bool:
    """A pool child killed mid-run: Celery redelivers its task to another child of this host,
    which finds the claim held by a process that no longer exists and takes it at once."""
    sync = Sync.objects.filter(pk=sync_id).only("claimed_until", "claim_token", "claimed_by").first()
    if sync is None or not services.sync_claim_holder_died(sync=sync):
        return False
    return services.sync_break_claim(sync=sync, reason=f"the worker process ({sync.claimed_by}) died mid-run")


def _drop_leftover_generations(*, sync_id: int, current: int) -> None:
    """Delete snapshot generations of this sync other than the current one (a killed first run's).

    Each is found by an ordered LIMIT 1 probe, an index scan under any statistics: a range
    DELETE on a table never analysed is estimated at a third of its rows and planned as a
    full scan, every run. Both probes (below and above the current) go in one statement.
    """
    snapshot = SnapshotMember._meta.db_table
    probes = f"""SELECT generation FROM (SELECT generation FROM {snapshot} WHERE sync_id = %s AND generation < %s
                                        ORDER BY generation LIMIT 1) below
                 UNION ALL
                 SELECT generation FROM (SELECT generation FROM {snapshot} WHERE sync_id = %s AND generation > %s
                                         ORDER BY generation DESC LIMIT 1) above"""
    while True:
        with db.cursor() as cursor:
            cursor.execute(probes, [sync_id, current, sync_id, current])
            leftovers = [generation for (generation,) in cursor.fetchall()]
        if not leftovers:
            return
        SnapshotMember.objects.filter(sync_id=sync_id, generation__in=leftovers).delete()


def abandon_unfinished_runs(*, sync_id: int, history: RunHistory | None = None) -> None:
    """Runs left `running` by a worker that stopped (killed, cut off from the database, its
    heartbeat silent past the lease): mark them failed, naming the worker. Their pictures stay,
    so the run can be resumed. `history` (run_history) names them, else they are read here.

    Called while holding the claim, so no live run of this sync can be among them.
    """
    if history is None:
        running = SyncRun.objects.filter(sync_id=sync_id, status=SyncRun.Status.RUNNING).only("pk", "worker")
    else:
        running = [run for run in history.unsuccessful if run.status == SyncRun.Status.RUNNING]
    for run in running:
        SyncRun.objects.filter(pk=run.pk, status=SyncRun.Status.RUNNING).update(
            status=SyncRun.Status.FAILED, finished_at=timezone.now(),
            error_message=f"abandoned: its worker ({run.worker or 'unknown'}) stopped mid-run (killed, or cut off "
                          f"from the database) and its claim lapsed",
        )
        run.status = SyncRun.Status.FAILED
