"""Thin Celery wrappers: call one service."""

from celery import shared_task

from outbound.tasks import TASK_OPTIONS

from . import ingestion


@shared_task(name="cohorts.prune_events", **TASK_OPTIONS)
def prune_events() -> int:
    return ingestion.events_prune()
