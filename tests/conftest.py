import contextlib
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection as db
from django.utils import timezone

from cohorts.models import CohortMember, Profile
from deliveries.engine import sync_run
from deliveries.models import Sync
from tests.factories import CohortFactory, ConnectionFactory, SyncFactory
from tests.support.receiver import LoopbackReceiver


@pytest.fixture(autouse=True)
def _fast_delivery_settings(settings):
    """Loopback receivers need private URLs allowed; retries wait milliseconds, not a minute."""
    settings.COHORTSYNC_ALLOW_PRIVATE_URLS = True
    settings.COHORTSYNC_TEST_RECEIVER = True
    settings.COHORTSYNC_RETRY_DELAYS = [0.01, 0.02, 0.04, 0.08]
    settings.COHORTSYNC_READ_TIMEOUT = 2.0
    settings.COHORTSYNC_CONNECT_TIMEOUT = 2.0
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


@pytest.fixture(scope="session")
def live_server(django_db_setup, live_server):
    """pytest-django's live server, started once the test database exists, so that on SQLite its
    threads share the test's in-memory connection (else each would open its own to the shared
    cache, where concurrent writers fail with "database table is locked"). One connection cannot
    interleave transactions: there requests are served one at a time, and a test that reads the
    database while a browser still sends holds `live_server.exclusive` meanwhile (PostgreSQL gives
    each thread its own connection: there it holds nothing)."""
    live_server.exclusive = contextlib.nullcontext()
    if live_server.thread.connections_override:
        live_server.exclusive = threading.Lock()
        httpd = live_server.thread.httpd
        httpd.set_app(_one_request_at_a_time(httpd.get_app(), live_server.exclusive))
    return live_server


def _one_request_at_a_time(app, lock):
    def serialized(environ, start_response):
        with lock:  # the whole request, its body read included
            response = app(environ, start_response)
            try:
                return [b"".join(response)]
            finally:
                if hasattr(response, "close"):
                    response.close()

    return serialized


@pytest.fixture
def receiver():
    with LoopbackReceiver() as running:
        yield running


def _needs(service: str, available: bool, how: str = "set DATABASE_URL / CELERY_BROKER_URL") -> None:
    if available:
        return
    message = f"needs {service} ({how})"
    if settings.COHORTSYNC_REQUIRE_SERVICES:
        pytest.fail(f"{message}: required in CI")
    pytest.skip(message)


@pytest.fixture
def require_postgres():
    _needs("PostgreSQL", db.vendor == "postgresql")


@pytest.fixture
def require_redis():
    _needs("Redis", settings.CELERY_BROKER_URL.startswith("redis"))


@pytest.fixture
def broker_down(monkeypatch):
    """The broker refuses connections (nothing listens on the port): enqueuing fails."""
    from config import celery_app

    monkeypatch.setitem(celery_app.conf, "broker_url", "redis://127.0.0.1:9/0")
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:9/0")  # Celery reads it before its settings
    monkeypatch.setitem(celery_app.conf, "broker_connection_retry", False)
    # Connections made earlier in the session point at the working broker: start new pools.
    monkeypatch.setattr(celery_app, "_pool", None)
    monkeypatch.setattr(celery_app.amqp, "_producer_pool", None)


@pytest.fixture
def sent_run_tasks(monkeypatch) -> list[tuple]:
    """What the dispatcher hands the broker: (args, kwargs, expires) of every run task."""
    from campaigns import tasks as message_tasks
    from deliveries import tasks

    calls = []
    for task in (tasks.run_sync, message_tasks.run_message):
        monkeypatch.setattr(task, "apply_async", lambda args, kwargs, expires=None, **options:
                            calls.append((tuple(args), kwargs, expires)))
    return calls


CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def require_chromium() -> str:
    """Browser tests drive Debian's chromium (.ci/run installs it); returns its path."""
    _needs("Debian's chromium", Path(CHROMIUM).exists(), how="apt-get install chromium")
    return CHROMIUM


def make_profiles(project, distinct_ids, **fields) -> list[Profile]:
    return Profile.objects.bulk_create(
        [Profile(project=project, distinct_id=d, email=f"{d}@example.com", **fields) for d in distinct_ids]
    )


def set_members(cohort, distinct_ids) -> None:
    """Make a static cohort hold exactly these distinct ids (creating missing profiles)."""
    existing = dict(Profile.objects.filter(project=cohort.project, distinct_id__in=list(distinct_ids))
                    .values_list("distinct_id", "pk"))
    missing = [d for d in distinct_ids if d not in existing]
    for profile in make_profiles(cohort.project, missing):
        existing[profile.distinct_id] = profile.pk
    CohortMember.objects.filter(cohort=cohort).delete()
    CohortMember.objects.bulk_create([CohortMember(cohort=cohort, profile_id=existing[d]) for d in distinct_ids])


@pytest.fixture
def make_sync(receiver):
    """A dynamic sync of a fresh static cohort to the loopback receiver."""

    def factory(members=(), **sync_fields):
        cohort = CohortFactory()
        connection = ConnectionFactory(project=cohort.project, url=receiver.url())
        set_members(cohort, list(members))
        return SyncFactory(cohort=cohort, connection=connection, **sync_fields)

    return factory


def run_now(sync, **run_options):
    """Run a sync as its next scheduled run: make it due, then let the engine claim it."""
    Sync.objects.filter(pk=sync.pk).update(next_run_at=timezone.now() - timedelta(seconds=1))
    run = sync_run(sync_id=sync.pk, **run_options)
    sync.refresh_from_db()
    return run
