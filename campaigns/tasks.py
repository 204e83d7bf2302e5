"""Thin Celery wrappers: take ids, call one service."""

from celery import shared_task

from outbound.tasks import DISPATCH_TASK_OPTIONS, TASK_OPTIONS

from . import sending, services


@shared_task(name="campaigns.dispatch_due_messages", **DISPATCH_TASK_OPTIONS)
def dispatch_due_messages() -> int:
    return len(services.messages_dispatch_due())


@shared_task(name="campaigns.run_message", **TASK_OPTIONS)
def run_message(message_id: int, trigger: str = "schedule", run_id: int | None = None) -> str | None:
    run = sending.message_run(message_id=message_id, trigger=trigger, run_id=run_id)
    return str(run.session_id) if run else None
