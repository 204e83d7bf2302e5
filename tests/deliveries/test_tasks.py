"""Celery: the task declarations, the beat entry, and beat's dispatcher → run task → receiver,
end to end through a real broker and an embedded worker (deliveries/tasks.py, docs/design.md)."""

import time
from datetime import timedelta

import pytest
from celery.contrib.testing.worker import start_worker
from celery.signals import task_postrun
from django.conf import settings
from django.db import OperationalError
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from config import celery_app
from deliveries import services, tasks
from deliveries.models import Sync, SyncRun
from tests.factories import SyncFactory

WAIT_SECONDS = 20


# --- Declarations ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_migration_created_the_beat_entry():
    entry = PeriodicTask.objects.select_related("interval").get(name="Dispatch due syncs")

    assert entry.task == "deliveries.dispatch_due_syncs"
    assert entry.enabled is True
    assert (entry.interval.every, entry.interval.period) == (30, "seconds")  # a crashed run resumes within a minute (0015)
    assert entry.crontab is None


def test_the_beat_entry_names_a_registered_task():
    assert tasks.dispatch_due_syncs.name == "deliveries.dispatch_due_syncs"
    assert "deliveries.dispatch_due_syncs" in celery_app.tasks
    assert "deliveries.run_sync" in celery_app.tasks


@pytest.mark.parametrize("task", [tasks.run_sync, tasks.dispatch_due_syncs], ids=lambda t: t.name)
def test_tasks_ack_late_and_are_redelivered_when_a_worker_dies(task):
    assert task.acks_late is True
    assert task.reject_on_worker_lost is True
    assert task.ignore_result is True


@pytest.mark.parametrize(("task", "queue"), [
    ("deliveries.dispatch_due_syncs", "dispatch"), ("campaigns.dispatch_due_messages", "dispatch"),
    ("deliveries.run_sync", "runs"), ("campaigns.run_message", "runs"), ("alerts.deliver_firing", "celery"),
])
def test_dispatch_and_runs_have_queues_of_their_own(task, queue):
    """A backlog of runs must not hold up the next tick; a worker without -Q consumes all three."""
    assert celery_app.amqp.router.route({}, task)["queue"].name == queue
    assert set(celery_app.amqp.queues) == {"dispatch", "runs", "celery"}


def test_the_app_speaks_json_only():
    assert celery_app.conf.task_serializer == "json"
    assert celery_app.conf.result_serializer == "json"
    assert list(celery_app.conf.accept_content) == ["json"]
    assert tasks.run_sync.serializer == "json"


def test_time_limits_end_a_run_before_the_broker_redelivers_it():
    conf = celery_app.conf
    assert conf.task_soft_time_limit < conf.task_time_limit
    assert tasks.dispatch_due_syncs.time_limit < conf.task_time_limit
    if not settings.CELERY_BROKER_URL.startswith("filesystem://"):
        assert conf.task_time_limit < conf.broker_transport_options["visibility_timeout"]


@pytest.mark.django_db
def test_dispatcher_enqueues_only_due_active_unclaimed_syncs_after_commit(django_capture_on_commit_callbacks):
    now = timezone.now()
    due = SyncFactory(next_run_at=now - timedelta(minutes=1))
    SyncFactory(next_run_at=now + timedelta(minutes=5))
    SyncFactory(state=Sync.State.PAUSED, next_run_at=now - timedelta(minutes=1))
    SyncFactory(next_run_at=now - timedelta(minutes=1), claimed_until=now + timedelta(minutes=5))

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        enqueued = tasks.dispatch_due_syncs()

    assert enqueued == 1
    assert len(callbacks) == 1
    assert Sync.objects.get(pk=due.pk).dispatched_until > now  # the next tick leaves it alone
    assert Sync.objects.get(pk=due.pk).next_run_at <= now  # dispatching alone does not claim or run


# --- End to end through a broker and a worker -----------------------------------------------


@pytest.fixture
def worker_broker(tmp_path, monkeypatch):
    """The configured broker, kept to this test's own messages.

    The default filesystem broker's folder (var/broker) is shared by every process on this
    checkout: a dev worker or a parallel test run would take our messages, so use a private one.
    """
    if not settings.CELERY_BROKER_URL.startswith("filesystem://"):
        return
    folders = {name: tmp_path / name for name in ("queue", "processed", "control")}
    for folder in folders.values():
        folder.mkdir()
    options = {
        **celery_app.conf.broker_transport_options,
        "data_folder_in": str(folders["queue"]),
        "data_folder_out": str(folders["queue"]),
        "processed_folder": str(folders["processed"]),
        "control_folder": str(folders["control"]),
    }
    monkeypatch.setitem(celery_app.conf, "broker_transport_options", options)
    # Connections made earlier in the session point at the shared folder: start new pools.
    monkeypatch.setattr(celery_app, "_pool", None)
    monkeypatch.setattr(celery_app.amqp, "_producer_pool", None)


def wait_for(condition, what: str):
    """Bounded polling: the worker runs in another thread."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        try:
            value = condition()
        except OperationalError as exc:
            # Shared-cache SQLite answers a read beside the worker thread's write with "table
            # is locked" at once instead of waiting: poll again.
            if "locked" not in str(exc):
                raise
            value = None
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"gave up after {WAIT_SECONDS}s waiting for {what}")


def dispatch_through_a_worker(make_sync, receiver):
    sync = make_sync(members=["A", "B", "C"], next_run_at=timezone.now() - timedelta(seconds=1))

    with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=WAIT_SECONDS):
        tasks.dispatch_due_syncs.delay()

        wait_for(lambda: receiver.requests, "the members page")
        run = wait_for(
            lambda: SyncRun.objects.filter(sync=sync).exclude(status=SyncRun.Status.RUNNING).first(),
            "the run to finish",
        )

    assert [r.action for r in receiver.requests] == ["members"]
    assert sorted(m["mixpanel_distinct_id"] for m in receiver.requests[0].members) == ["A", "B", "C"]
    assert run.status == SyncRun.Status.SUCCEEDED
    assert (run.kind, run.trigger, run.members_count) == (SyncRun.Kind.FULL, "schedule", 3)
    assert receiver.requests[0].session_id == str(run.session_id)
    sync.refresh_from_db()
    assert sync.snapshot_size == 3
    assert sync.claimed_until is None
    assert sync.next_run_at > timezone.now() + timedelta(minutes=29)  # released, next run scheduled


# An in-memory SQLite test database is shared with the worker thread (Django opens it in
# shared-cache mode), so this runs on the default setup too; committed data needs transaction=True.
@pytest.mark.django_db(transaction=True)
def test_beat_dispatch_runs_a_due_sync_through_the_configured_broker(worker_broker, make_sync, receiver):
    dispatch_through_a_worker(make_sync, receiver)


@pytest.mark.django_db(transaction=True)
def test_beat_dispatch_runs_a_due_sync_through_redis(require_redis, make_sync, receiver):
    dispatch_through_a_worker(make_sync, receiver)


@pytest.mark.django_db(transaction=True)
def test_run_now_runs_a_sync_that_is_not_due_through_the_worker(worker_broker, make_sync, receiver):
    sync = make_sync(members=["A"], next_run_at=timezone.now() + timedelta(hours=1))

    with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=WAIT_SECONDS):
        queued = services.sync_request_run(sync=sync)  # what the admin's "Run now" calls: enqueued on commit
        assert queued.status == SyncRun.Status.QUEUED

        run = wait_for(
            lambda: SyncRun.objects.filter(sync=sync)
            .exclude(status__in=[SyncRun.Status.QUEUED, SyncRun.Status.RUNNING]).first(),
            "the run to finish",
        )

    assert run.pk == queued.pk  # the worker filled in the run whose id the caller got
    assert run.status == SyncRun.Status.SUCCEEDED
    assert run.trigger == "manual"
    assert [r.action for r in receiver.requests] == ["members"]


@pytest.fixture
def finished_tasks():
    """Task id → return value of every task the embedded worker finishes."""
    finished = {}

    def record(task_id=None, retval=None, **kwargs):
        finished[task_id] = retval

    task_postrun.connect(record, weak=False)
    yield finished
    task_postrun.disconnect(record)


@pytest.mark.django_db(transaction=True)
def test_a_scheduled_run_of_a_sync_that_is_not_due_sends_nothing(worker_broker, make_sync, receiver, finished_tasks):
    sync = make_sync(members=["A"], next_run_at=timezone.now() + timedelta(hours=1))

    with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=WAIT_SECONDS):
        task_id = tasks.run_sync.delay(sync.pk).id
        wait_for(lambda: task_id in finished_tasks, "the task to finish")

    assert finished_tasks[task_id] is None  # not claimed: no run
    assert not SyncRun.objects.filter(sync=sync).exists()
    assert receiver.requests == []


@pytest.mark.django_db(transaction=True)
def test_the_worker_task_returns_the_session_id_of_its_run(worker_broker, make_sync, receiver, finished_tasks):
    sync = make_sync(members=["A"], next_run_at=timezone.now() - timedelta(seconds=1))

    with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=WAIT_SECONDS):
        task_id = tasks.run_sync.delay(sync.pk, full=False, trigger="schedule").id
        wait_for(lambda: task_id in finished_tasks, "the task to finish")

    run = SyncRun.objects.get(sync=sync)
    assert finished_tasks[task_id] == str(run.session_id)
    assert receiver.requests[0].session_id == str(run.session_id)
