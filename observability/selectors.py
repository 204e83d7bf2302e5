"""Reads for metrics and the status pages: sync state counts, the due backlog, queue depth,
and each sync's and connection's success rate and latency over the last day."""

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection as db
from django.db.models import Aggregate, Count, FloatField, Min, Q, QuerySet
from django.utils import timezone

from deliveries.models import DeliveryAttempt, Sync, SyncRun

logger = logging.getLogger(__name__)

STATS_WINDOW = timedelta(days=1)
LATENCY_PERCENTILES = (0.5, 0.95, 0.99)
FINISHED_RUN_STATUSES = (SyncRun.Status.SUCCEEDED, SyncRun.Status.FAILED, SyncRun.Status.PAUSED)
BROKER_TIMEOUT_SECONDS = 3


# --- Scrape-time state ----------------------------------------------------------------------


def sync_counts_by_state() -> dict[str, int]:
    counts = dict(Sync.objects.order_by().values_list("state").annotate(n=Count("pk")))
    return {state.value: counts.get(state.value, 0) for state in Sync.State}


def sync_failing_count() -> int:
    """Active syncs whose last run failed (a success clears the sync's last error)."""
    return Sync.objects.filter(state=Sync.State.ACTIVE).exclude(last_error_message="").count()


@dataclass(frozen=True)
class DueBacklog:
    count: int
    lag_seconds: float


def due_sync_backlog(*, now: datetime | None = None) -> DueBacklog:
    """Syncs the dispatcher would start now (the same filter, on the `sync_due` index)."""
    now = now or timezone.now()
    due = (
        Sync.objects.filter(state=Sync.State.ACTIVE, next_run_at__lte=now)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .aggregate(count=Count("pk"), oldest=Min("next_run_at"))
    )
    lag = (now - due["oldest"]).total_seconds() if due["oldest"] else 0.0
    return DueBacklog(count=due["count"], lag_seconds=max(0.0, lag))


def broker_queue_depths() -> dict[str, int] | None:
    """Messages waiting in each task queue, or None when the broker does not answer."""
    from celery import current_app as app  # config.celery, set current by config/__init__.py

    # Every queue tasks are routed to (dispatch, runs, celery), else the default one.
    queues = [queue.name for queue in app.conf.task_queues or []] or [app.conf.task_default_queue]
    depths = {}
    try:
        with app.connection_for_read(url=settings.CELERY_BROKER_URL, connect_timeout=BROKER_TIMEOUT_SECONDS) as conn:
            conn.ensure_connection(max_retries=0, timeout=BROKER_TIMEOUT_SECONDS)
            for queue in queues:
                try:
                    depths[queue] = conn.default_channel.queue_declare(queue=queue, passive=True).message_count
                except conn.channel_errors:
                    depths[queue] = 0  # Redis holds no key for an empty queue
    except Exception as exc:  # noqa: BLE001 - any broker failure is reported as "down", not a 500
        logger.warning("broker did not answer for queue depth: %s", type(exc).__name__)
        return None
    return depths


# --- Success rate and latency over the last day ---------------------------------------------


@dataclass(frozen=True)
class DeliveryStats:
    """Finished runs and page tries of the last day: how many succeeded, how fast tries were."""

    runs_finished: int
    runs_succeeded: int
    attempts: int
    latency_ms: dict[float, float | None]  # percentile (0.5, 0.95, 0.99) → milliseconds

    @property
    def success_rate(self) -> float | None:
        return self.runs_succeeded / self.runs_finished if self.runs_finished else None

    @property
    def p50(self) -> float | None:
        return self.latency_ms.get(0.5)

    @property
    def p95(self) -> float | None:
        return self.latency_ms.get(0.95)

    @property
    def p99(self) -> float | None:
        return self.latency_ms.get(0.99)


def sync_delivery_stats(*, sync_id: int, now: datetime | None = None) -> DeliveryStats:
    since = (now or timezone.now()) - STATS_WINDOW
    # Runs started in the window, read through the `run_sync_recent` index; their tries by `attempt_source_page`.
    runs = SyncRun.objects.filter(sync_id=sync_id, started_at__gte=since)
    attempts = DeliveryAttempt.objects.filter(run__sync_id=sync_id, run__started_at__gte=since)
    return _delivery_stats(runs=runs, attempts=attempts)


def connection_delivery_stats(*, connection_id: int, now: datetime | None = None) -> DeliveryStats:
    """The syncs' runs to one connection (messages and alerts keep their own histories)."""
    since = (now or timezone.now()) - STATS_WINDOW
    runs = SyncRun.objects.filter(sync__connection_id=connection_id, started_at__gte=since)
    attempts = DeliveryAttempt.objects.filter(run__sync__connection_id=connection_id, run__started_at__gte=since)
    return _delivery_stats(runs=runs, attempts=attempts)


def _delivery_stats(*, runs: QuerySet, attempts: QuerySet) -> DeliveryStats:
    counts = runs.aggregate(
        finished=Count("pk", filter=Q(status__in=FINISHED_RUN_STATUSES)),
        succeeded=Count("pk", filter=Q(status=SyncRun.Status.SUCCEEDED)),
    )
    attempt_count, latency = latency_percentiles(attempts=attempts, field="latency_ms")
    return DeliveryStats(runs_finished=counts["finished"], runs_succeeded=counts["succeeded"],
                         attempts=attempt_count, latency_ms=latency)


class PercentileCont(Aggregate):
    """PostgreSQL's continuous percentile: one sort of the matching rows, in the database."""

    function = "PERCENTILE_CONT"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression, *, fraction: float):
        super().__init__(expression, fraction=float(fraction))


def latency_percentiles(*, attempts: QuerySet, field: str) -> tuple[int, dict[float, float | None]]:
    """Row count and LATENCY_PERCENTILES of `field`, interpolated like percentile_cont."""
    if db.vendor == "postgresql":
        values = attempts.aggregate(
            count=Count("pk"), **{f"p{i}": PercentileCont(field, fraction=p) for i, p in enumerate(LATENCY_PERCENTILES)}
        )
        return values["count"], {p: values[f"p{i}"] for i, p in enumerate(LATENCY_PERCENTILES)}
    # Portable fallback (SQLite): the rows around each rank, read from the sorted column.
    count = attempts.count()
    if not count:
        return 0, {p: None for p in LATENCY_PERCENTILES}
    ordered = attempts.order_by(field).values_list(field, flat=True)
    result = {}
    for p in LATENCY_PERCENTILES:
        rank = p * (count - 1)
        low = math.floor(rank)
        pair = list(ordered[low:low + 2])
        upper = pair[1] if len(pair) > 1 else pair[0]
        result[p] = pair[0] + (upper - pair[0]) * (rank - low)
    return count, result
