"""/healthz (observability/health.py): database, broker and beat's last dispatch, as JSON."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from observability.health import DISPATCH_TASK

pytestmark = pytest.mark.django_db


def beat_dispatched(ago: timedelta | None) -> None:
    # The schedule itself comes with the migrations (deliveries 0002).
    PeriodicTask.objects.filter(task=DISPATCH_TASK).update(last_run_at=None if ago is None else timezone.now() - ago)


def healthz(client, **headers):
    response = client.get(reverse("healthz"), **headers)
    assert response["Content-Type"] == "application/json"
    assert "no-cache" in response["Cache-Control"]
    return response.status_code, response.json()


def test_healthy(client):
    beat_dispatched(timedelta(seconds=30))
    status, detail = healthz(client, HTTP_ACCEPT="*/*")
    assert status == 200
    assert list(detail.values()) == ["OK", "OK", "OK"]
    assert any(name.startswith("Database") for name in detail)
    assert any(name.startswith("Broker") for name in detail)
    assert any(name.startswith("BeatDispatch") for name in detail)


def test_a_browser_gets_json_too(client):
    beat_dispatched(timedelta(seconds=30))
    assert healthz(client, HTTP_ACCEPT="text/html")[0] == 200


@pytest.mark.parametrize(("ago", "reason"), [
    (timedelta(minutes=20), "beat last dispatched 1200 s ago"),
    (None, "beat has never dispatched"),
])
def test_stale_beat_is_unhealthy(client, settings, ago, reason):
    settings.COHORTSYNC_HEALTH_BEAT_MAX_AGE_SECONDS = 300
    beat_dispatched(ago)
    status, detail = healthz(client)
    assert status == 503
    assert detail["BeatDispatch()"] == f"Unavailable: {reason}"
    assert [v for k, v in detail.items() if k != "BeatDispatch()"] == ["OK", "OK"]


def test_a_disabled_dispatch_schedule_is_unhealthy(client):
    PeriodicTask.objects.filter(task=DISPATCH_TASK).update(enabled=False, last_run_at=timezone.now())
    status, detail = healthz(client)
    assert status == 503
    assert detail["BeatDispatch()"] == "Unavailable: no enabled schedule for the sync dispatcher"


def test_unreachable_broker_is_unhealthy(client, settings):
    beat_dispatched(timedelta(seconds=30))
    settings.CELERY_BROKER_URL = "redis://:broker-password@127.0.0.1:1/0"  # nothing listens on port 1
    response = client.get(reverse("healthz"))
    assert response.status_code == 503
    assert response.json()["Broker()"] == "Unavailable: the broker does not answer"
    assert b"broker-password" not in response.content


def test_health_with_redis(client, require_redis):
    beat_dispatched(timedelta(seconds=30))
    assert healthz(client)[0] == 200
