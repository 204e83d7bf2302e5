"""The sync dispatcher (beat, each minute): due syncs and queued sync runs to the `runs` queue
(outbound.dispatch has the shared pieces and the why)."""

from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from outbound.dispatch import dispatch_lease, enqueue, mark_dispatched, queued_runs_dispatch

from .models import Sync, SyncRun


def syncs_dispatch_due(*, now: datetime | None = None) -> list[int]:
    """Enqueue one run task per due, unclaimed, undispatched active sync, the most overdue first
    (beat, each minute); then re-enqueue queued runs whose task never started."""
    from .tasks import run_sync  # tasks are thin wrappers over the services

    now = now or timezone.now()
    until = now + dispatch_lease()
    due = (
        Sync.objects.filter(state=Sync.State.ACTIVE, next_run_at__lte=now)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .filter(Q(dispatched_until__isnull=True) | Q(dispatched_until__lt=now))
        .order_by("next_run_at")[: settings.COHORTSYNC_DISPATCH_BATCH]
    )
    # RETURNING keeps no order: enqueue the most overdue first, as selected.
    rows = sorted(mark_dispatched(due=due, until=until, returning="id, next_run_at"), key=lambda row: (row[1], row[0]))
    sync_ids = [sync_id for sync_id, _ in rows]
    if sync_ids:
        # A failed tick leaves its syncs due at the next one. A sync whose task did get out
        # before the broker failed may then have two; its claim still lets only one run.
        transaction.on_commit(lambda: enqueue(
            run_sync, [((sync_id,), {}) for sync_id in sync_ids], expires=until,
            on_failure=lambda: Sync.objects.filter(pk__in=sync_ids).update(dispatched_until=None),
        ))
    queued_runs_dispatch(runs=SyncRun.objects.all(), task=run_sync, subject="sync_id", now=now)
    return sync_ids


