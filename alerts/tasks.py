"""Thin Celery wrappers: take ids, call one service."""

from celery import shared_task

from outbound.tasks import TASK_OPTIONS

from . import services


@shared_task(name="alerts.evaluate_cohort", **TASK_OPTIONS)
def evaluate_cohort(cohort_id: int, cohort_size_id: int | None = None) -> int:
    return len(services.alerts_evaluate_cohort(cohort_id=cohort_id, cohort_size_id=cohort_size_id))


@shared_task(name="alerts.evaluate_sync", **TASK_OPTIONS)
def evaluate_sync(sync_id: int, run_id: int | None = None) -> int:
    return len(services.alerts_evaluate_sync(sync_id=sync_id, run_id=run_id))


@shared_task(name="alerts.deliver_firing", **TASK_OPTIONS)
def deliver_firing(firing_id: int) -> str | None:
    firing = services.alert_firing_deliver(firing_id=firing_id)
    return firing.status if firing else None


@shared_task(name="alerts.recompute_watched_cohorts", **TASK_OPTIONS)
def recompute_watched_cohorts() -> int:
    return len(services.alerts_recompute_watched_cohorts())
