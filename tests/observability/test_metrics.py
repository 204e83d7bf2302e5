"""/metrics (observability/views.py, metrics.py): off by default, bearer token, the metric
families after a real sync run to the loopback receiver, and multi-process mode."""

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from deliveries.models import Sync
from tests.conftest import run_now
from tests.support.receiver import Reply

pytestmark = pytest.mark.django_db

TOKEN = "scrape-token-0123456789"
REPO = Path(__file__).resolve().parents[2]


def scrape(client) -> dict[tuple[str, tuple], float]:
    response = client.get(reverse("metrics"), HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_are_off_without_a_token(client, settings):
    settings.COHORTSYNC_METRICS_TOKEN = ""
    assert client.get(reverse("metrics"), HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 404


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", f"Basic {TOKEN}", "Bearer"])
def test_metrics_need_the_bearer_token(client, settings, authorization):
    settings.COHORTSYNC_METRICS_TOKEN = TOKEN
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    response = client.get(reverse("metrics"), **headers)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"cohortsync_" not in response.content


def test_a_real_run_shows_in_the_metrics(client, settings, make_sync, receiver):
    settings.COHORTSYNC_METRICS_TOKEN = TOKEN
    before = scrape(client)
    sync = make_sync(members=["u1", "u2", "u3"])
    connection = str(sync.connection_id)
    receiver.reply(Reply(status=503), Reply(status=200))  # the first page is retried once

    run = run_now(sync)

    assert run.status == "succeeded" and run.kind == "full"
    after = scrape(client)
    # Counters live as long as the test process, and ids repeat between tests: compare deltas.
    delta = {key: after.get(key, 0.0) - before.get(key, 0.0) for key in after}
    assert value(delta, "cohortsync_sync_runs_total", kind="full", outcome="succeeded") == 1
    assert value(delta, "cohortsync_sync_pages_delivered_total", kind="full") == run.pages_delivered >= 1
    assert value(delta, "cohortsync_sync_members_delivered_total", action="members") == 3
    assert value(delta, "cohortsync_delivery_attempts_total", connection=connection, outcome="transient") == 1
    assert value(delta, "cohortsync_delivery_attempts_total", connection=connection, outcome="success") == \
        run.pages_delivered
    assert value(delta, "cohortsync_delivery_retries_total", connection=connection) == 1
    assert value(delta, "cohortsync_delivery_attempt_duration_seconds_count", connection=connection) == \
        run.pages_delivered + 1
    assert value(delta, "cohortsync_delivery_attempt_duration_seconds_bucket", connection=connection, le="+Inf") == \
        run.pages_delivered + 1
    # State gauges, read at scrape time.
    assert value(after, "cohortsync_syncs", state="active") == 1
    assert value(after, "cohortsync_syncs_failing") == 0
    assert value(after, "cohortsync_broker_up") == 1
    assert ("cohortsync_queue_depth", (("queue", "celery"),)) in after


def test_state_gauges_count_paused_failing_and_due_syncs(client, settings, make_sync):
    settings.COHORTSYNC_METRICS_TOKEN = TOKEN
    now = timezone.now()
    make_sync(state=Sync.State.PAUSED, next_run_at=None)
    make_sync(last_error_message="HTTP 503", next_run_at=now + timedelta(minutes=5))
    make_sync(next_run_at=now - timedelta(minutes=10))  # due, waiting for a worker
    make_sync(next_run_at=now - timedelta(minutes=2), claimed_until=now + timedelta(minutes=5))  # running

    samples = scrape(client)

    assert value(samples, "cohortsync_syncs", state="paused") == 1
    assert value(samples, "cohortsync_syncs", state="active") == 3
    assert value(samples, "cohortsync_syncs_failing") == 1
    assert value(samples, "cohortsync_syncs_due") == 1
    assert 600 <= value(samples, "cohortsync_sync_due_lag_seconds") < 3600


def test_broker_down_is_reported_not_a_500(client, settings):
    settings.COHORTSYNC_METRICS_TOKEN = TOKEN
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    samples = scrape(client)
    assert value(samples, "cohortsync_broker_up") == 0
    assert not any(name == "cohortsync_queue_depth" for name, _ in samples)


def test_multiprocess_mode_adds_up_every_process(client, settings, tmp_path):
    """Two worker processes count into PROMETHEUS_MULTIPROC_DIR; a scrape of the web process sums them."""
    settings.COHORTSYNC_METRICS_TOKEN = TOKEN
    settings.PROMETHEUS_MULTIPROC_DIR = str(tmp_path)
    count_in_a_worker = (
        "import django; django.setup()\n"
        "from outbound.signals import page_attempted\n"
        "from outbound.sender import Destination\n"
        "for attempt in (1, 2):\n"
        "    page_attempted.send(sender=Destination, connection_id=41, attempt=attempt, outcome='success',\n"
        "                        http_status=200, latency_ms=120)\n"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "config.settings"}
    for _ in range(2):
        subprocess.run([sys.executable, "-c", count_in_a_worker], cwd=REPO, env=env, check=True, timeout=60)

    samples = scrape(client)

    assert value(samples, "cohortsync_delivery_attempts_total", connection="41", outcome="success") == 4
    assert value(samples, "cohortsync_delivery_retries_total", connection="41") == 2
    assert value(samples, "cohortsync_delivery_attempt_duration_seconds_bucket", connection="41", le="0.25") == 4
    assert value(samples, "cohortsync_syncs", state="active") == 0  # state gauges still come from the database


def test_counting_never_fails_a_run(make_sync, receiver, monkeypatch):
    """A metrics failure (e.g. a full disk in multi-process mode) is logged, the run goes on."""
    from observability import metrics

    def broken(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(metrics.delivery_attempts, "labels", broken)
    monkeypatch.setattr(metrics.sync_runs, "labels", broken)
    run = run_now(make_sync(members=["u1"]))
    assert run.status == "succeeded"
    assert len(receiver.requests) == 1


def test_queue_depth_counts_tasks_waiting_in_redis(client, settings, require_redis):
    from config.celery import app

    settings.COHORTSYNC_METRICS_TOKEN = TOKEN
    app.control.purge()
    try:
        for _ in range(3):  # no worker listens in the tests: they wait
            app.send_task("deliveries.dispatch_due_syncs")  # routed to the dispatch queue
        metrics = scrape(client)
        assert value(metrics, "cohortsync_queue_depth", queue="dispatch") == 3
        assert value(metrics, "cohortsync_queue_depth", queue="runs") == 0
    finally:
        app.control.purge()
    assert value(scrape(client), "cohortsync_queue_depth", queue="dispatch") == 0
