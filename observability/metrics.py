"""Prometheus metrics: counters kept where things happen, gauges read at scrape time.

Counters and histograms live in each process (web, every Celery worker process). With
PROMETHEUS_MULTIPROC_DIR set, prometheus-client keeps them in files there and a scrape of
any web process merges every process's files; without it, a scrape sees its own process only
(enough for a single process, the tests, or `runserver`). Gauges that describe state (syncs
by state, failing syncs, due backlog, queue depth) are computed per scrape from the database
and the broker, so every process reports the same value and nothing goes stale.
"""

import functools
import logging

from django.conf import settings
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from deliveries.models import SyncRun
from deliveries.signals import sync_run_finished
from outbound.signals import page_attempted

from . import selectors

logger = logging.getLogger(__name__)

sync_runs = Counter("cohortsync_sync_runs", "Sync runs finished, by kind and outcome.", ["kind", "outcome"])
sync_pages_delivered = Counter("cohortsync_sync_pages_delivered", "Pages the receiver accepted, by run kind.",
                               ["kind"])
sync_members_delivered = Counter(
    "cohortsync_sync_members_delivered",
    "Members sent in runs that succeeded, by action (members, add_members, remove_members).", ["action"],
)
delivery_attempts = Counter(
    "cohortsync_delivery_attempts",
    "POST tries of sync pages, message batches and alerts, by connection id and outcome.", ["connection", "outcome"],
)
delivery_retries = Counter("cohortsync_delivery_retries", "Tries after the first of a page, by connection id.",
                           ["connection"])
delivery_attempt_seconds = Histogram(
    "cohortsync_delivery_attempt_duration_seconds", "Time from sending a POST to reading its answer, by connection id.",
    ["connection"],
    # Receivers answer in tens of milliseconds to the read timeout (30 s by default).
    buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, float("inf")),
)


def connect_receivers() -> None:
    sync_run_finished.connect(_count_run, dispatch_uid="observability.count_run")
    page_attempted.connect(_count_attempt, dispatch_uid="observability.count_attempt")


def _never_raises(receiver):
    """Counting must never fail a delivery: the signals are sent from inside the engine's loop."""

    @functools.wraps(receiver)
    def wrapper(*args, **kwargs):
        try:
            receiver(*args, **kwargs)
        except Exception:  # noqa: BLE001 - a lost sample is better than a failed run
            logger.warning("could not count %s", receiver.__name__, exc_info=True)

    return wrapper


@_never_raises
def _count_run(sender, *, run_id: int, status: str, run=None, **kwargs) -> None:
    fields = ("kind", "pages_delivered", "members_count", "adds_count", "removes_count")
    if run is not None:  # the engine's own copy, as it finished: no read
        run = {field: getattr(run, field) for field in fields}
    else:
        run = SyncRun.objects.filter(pk=run_id).values(*fields).first()
    if run is None:
        return
    kind = run["kind"] or "unknown"
    sync_runs.labels(kind=kind, outcome=status).inc()
    sync_pages_delivered.labels(kind=kind).inc(run["pages_delivered"])
    if status == SyncRun.Status.SUCCEEDED:
        # A failed run's counts are what it planned, not what the receiver holds.
        for action, field in (("members", "members_count"), ("add_members", "adds_count"),
                              ("remove_members", "removes_count")):
            if run[field]:
                sync_members_delivered.labels(action=action).inc(run[field])


@_never_raises
def _count_attempt(sender, *, connection_id: int | None, attempt: int, outcome: str, latency_ms: int,
                   **kwargs) -> None:
    connection = str(connection_id or "")
    delivery_attempts.labels(connection=connection, outcome=outcome).inc()
    delivery_attempt_seconds.labels(connection=connection).observe(latency_ms / 1000)
    if attempt > 1:
        delivery_retries.labels(connection=connection).inc()


class StateCollector(Collector):
    """Gauges read from the database and the broker when Prometheus scrapes."""

    def describe(self):
        return []  # registering must not query anything

    def collect(self):
        syncs = GaugeMetricFamily("cohortsync_syncs", "Syncs by state (active, paused, finished).", labels=["state"])
        for state, count in selectors.sync_counts_by_state().items():
            syncs.add_metric([state], count)
        yield syncs
        yield GaugeMetricFamily("cohortsync_syncs_failing", "Active syncs whose last run failed.",
                                value=selectors.sync_failing_count())
        backlog = selectors.due_sync_backlog()
        yield GaugeMetricFamily("cohortsync_syncs_due", "Active syncs past their run time and not yet started.",
                                value=backlog.count)
        yield GaugeMetricFamily("cohortsync_sync_due_lag_seconds",
                                "How long the oldest due, not yet started sync has waited (0 when none).",
                                value=backlog.lag_seconds)
        depths = selectors.broker_queue_depths()
        yield GaugeMetricFamily("cohortsync_broker_up", "1 when the broker answered this scrape.",
                                value=1 if depths is not None else 0)
        if depths is not None:
            queue_depth = GaugeMetricFamily("cohortsync_queue_depth", "Tasks waiting in the broker, by queue.",
                                            labels=["queue"])
            for queue, depth in depths.items():
                queue_depth.add_metric([queue], depth)
            yield queue_depth


def metrics_exposition() -> bytes:
    """The text exposition of every metric: this process's or, in multi-process mode, all processes'."""
    if settings.PROMETHEUS_MULTIPROC_DIR:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=settings.PROMETHEUS_MULTIPROC_DIR)
        counters = generate_latest(registry)
    else:
        counters = generate_latest(REGISTRY)
    state = CollectorRegistry()
    state.register(StateCollector())
    return counters + generate_latest(state)
