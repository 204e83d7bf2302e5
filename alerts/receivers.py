"""Follow cohort recomputations and finished sync runs: enqueue an evaluation when an alert watches.

`robust`: a broker outage is logged, never raised into the sync engine or a computation.
"""

from django.db import transaction
from django.dispatch import receiver

from cohorts.signals import cohort_recomputed
from deliveries.signals import sync_run_finished

from . import tasks
from .selectors import alerts_watch


@receiver(cohort_recomputed, dispatch_uid="alerts.evaluate_cohort")
def evaluate_cohort_alerts(sender, *, cohort_id: int, cohort_size_id: int | None = None, **kwargs) -> None:
    if alerts_watch(cohort_id=cohort_id):  # most computations have no alert: no task for them
        transaction.on_commit(lambda: tasks.evaluate_cohort.delay(cohort_id, cohort_size_id), robust=True)


@receiver(sync_run_finished, dispatch_uid="alerts.evaluate_sync")
def evaluate_sync_alerts(sender, *, sync_id: int, run_id: int | None = None, **kwargs) -> None:
    if alerts_watch(sync_id=sync_id):
        transaction.on_commit(lambda: tasks.evaluate_sync.delay(sync_id, run_id), robust=True)
