"""Thin Celery wrappers: call one service."""

from celery import shared_task

from . import ingestion


@shared_task(name="cohorts.prune_events", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def prune_events() -> int:
    return ingestion.events_prune()
