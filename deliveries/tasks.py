"""Thin Celery wrappers: take ids, call one service."""

from celery import shared_task

from outbound.tasks import DISPATCH_TASK_OPTIONS, TASK_OPTIONS

from . import dispatch, engine


@shared_task(name="deliveries.dispatch_due_syncs", **DISPATCH_TASK_OPTIONS)
def dispatch_due_syncs() -> int:
    return len(dispatch.syncs_dispatch_due())


@shared_task(name="deliveries.run_sync", **TASK_OPTIONS)
def run_sync(sync_id: int, full: bool = False, trigger: str = "schedule", run_id: int | None = None) -> str | None:
    run = engine.sync_run(sync_id=sync_id, full=full, trigger=trigger, run_id=run_id)
    return str(run.session_id) if run else None
