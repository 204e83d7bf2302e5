"""Outages for real (issue #14): Celery workers in their own processes, killed; the broker gone;
PostgreSQL + Redis. Each test ends with every receiver holding exactly its cohort."""

import os
import shutil
import signal
import time
from datetime import timedelta
from io import StringIO

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import OperationalError, connection as db
from django.utils import timezone

from campaigns.models import Message, MessageRun
from campaigns.services import message_create, messages_dispatch_due
from deliveries import dispatch, services
from deliveries.models import StagedMember, Sync, SyncRun
from deliveries.tasks import run_sync
from integrations.models import Connection
from tests.api.conftest import key_client
from tests.conftest import _needs, run_now, set_members
from tests.factories import ConnectionFactory
from tests.support.faults import (
    PrivateRedis,
    celery_worker,
    cohort_holds,
    kill,
    purge_queues,
    queued_tasks,
    receiver_holds,
    wait_until,
)
from tests.support.receiver import LoopbackReceiver, Reply

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def broker(require_postgres, require_redis):
    purge_queues()
    yield
    purge_queues()


def test_a_worker_outage_leaves_one_task_per_due_sync_and_every_receiver_ends_equal(broker, make_sync, receiver,
                                                                                    tmp_path):
    syncs = [make_sync(members=[f"s{n}-{m}" for m in range(5)], next_run_at=timezone.now() - timedelta(minutes=n))
             for n in range(8)]
    with celery_worker(tmp_path, concurrency=2) as worker:
        kill(worker)  # the outage starts before the tick

        now = timezone.now()
        ticks = [dispatch.syncs_dispatch_due(now=now + timedelta(minutes=minute)) for minute in range(4)]

    assert ticks[0] == [sync.pk for sync in syncs][::-1]  # the most overdue first
    assert ticks[1:] == [[], [], []]
    assert queued_tasks("runs") == len(syncs)  # one task per due sync, not one per tick

    with celery_worker(tmp_path, concurrency=2):
        wait_until(lambda: SyncRun.objects.filter(status=SyncRun.Status.SUCCEEDED).count() == len(syncs)
                   and not Sync.objects.filter(claimed_until__isnull=False).exists(),
                   "every sync's run and its release")  # the claim is released after the run's status
    assert queued_tasks("runs") == 0
    assert SyncRun.objects.count() == len(syncs)
    for sync in syncs:
        sync.refresh_from_db()
        assert (sync.dispatched_until, sync.claimed_until) == (None, None)
        assert receiver_holds(receiver, sync.cohort) == cohort_holds(sync.cohort)
    assert Sync.objects.filter(next_run_at__lte=timezone.now()).count() == 0


@pytest.fixture
def private_redis(require_postgres, tmp_path, monkeypatch):
    """This process's tasks go to a redis-server of the test's own, which the test may stop."""
    from config import celery_app

    _needs("redis-server", shutil.which("redis-server") is not None, how="apt-get install redis-server")
    server = PrivateRedis(tmp_path)
    server.start()
    monkeypatch.setitem(celery_app.conf, "broker_url", server.url)
    monkeypatch.setenv("CELERY_BROKER_URL", server.url)  # Celery reads it before its settings
    monkeypatch.setitem(celery_app.conf, "broker_connection_retry", False)
    monkeypatch.setattr(celery_app, "_pool", None)
    monkeypatch.setattr(celery_app.amqp, "_producer_pool", None)
    yield server
    server.stop()


def test_runs_requested_while_the_broker_is_down_or_lost_by_a_restart_still_run_once(
    private_redis, make_sync, receiver, tmp_path
):
    """Issue #14 part 2, for a sync run and a message run: 503 and nothing left behind while
    the broker is down; a task lost by a Redis restart is enqueued again by the dispatcher."""
    sync = make_sync(members=["A", "B", "C"], next_run_at=timezone.now() + timedelta(hours=1))
    api = key_client(sync.cohort.project)
    with LoopbackReceiver() as message_receiver:
        message = message_create(cohort=sync.cohort, name="Welcome",
                                 connection=ConnectionFactory(project=sync.cohort.project, url=message_receiver.url()))
        Message.objects.filter(pk=message.pk).update(next_run_at=timezone.now() + timedelta(hours=1))
        sync_url, message_url = f"/api/v1/syncs/{sync.pk}/run/", f"/api/v1/messages/{message.pk}/run/"

        private_redis.stop()
        for url in (sync_url, message_url):
            refused = api.post(url)
            assert refused.status_code == 503 and "not queued" in refused.json()["detail"]
        assert not SyncRun.objects.exists() and not MessageRun.objects.exists()  # nothing left behind

        private_redis.start()
        run = SyncRun.objects.get(pk=api.post(sync_url).json()["id"])
        message_run = MessageRun.objects.get(pk=api.post(message_url).json()["id"])
        private_redis.stop()  # Redis restarts without persistence: both tasks are lost
        private_redis.start()

        with celery_worker(tmp_path, CELERY_BROKER_URL=private_redis.url):
            dispatch.syncs_dispatch_due(now=run.dispatched_until - timedelta(seconds=1))  # may still be queued
            run.refresh_from_db()
            assert run.status == SyncRun.Status.QUEUED
            expired = run.dispatched_until + timedelta(seconds=1)  # expired unrun: enqueue again
            dispatch.syncs_dispatch_due(now=expired)
            messages_dispatch_due(now=expired)
            wait_until(lambda: SyncRun.objects.filter(pk=run.pk, status=SyncRun.Status.SUCCEEDED).exists()
                       and MessageRun.objects.filter(pk=message_run.pk, status=MessageRun.Status.SUCCEEDED).exists(),
                       "the re-enqueued runs")

        # One run each (the sync's run recomputed the cohort, which may start an ASAP check of its own).
        assert SyncRun.objects.count() == 1 and MessageRun.objects.filter(trigger="api").count() == 1
        assert receiver_holds(receiver, sync.cohort) == cohort_holds(sync.cohort) == ["A", "B", "C"]
        assert sorted(user["$distinct_id"] for request in message_receiver.requests for user in request.form_users) \
            == ["A", "B", "C"]


def test_a_failed_full_run_after_a_failed_diff_drops_nothing_and_the_full_load_stays_requested(
    broker, make_sync, receiver, tmp_path
):
    """Issue #14 part 1, as reproduced: a diff fails after its add page, the people it added
    leave, `runsync --full` fails on 500s, and the next run (through a worker) must still
    leave the receiver equal to the cohort."""
    original = [f"m{n}" for n in range(5)]
    sync = make_sync(members=original)
    run_now(sync)  # the first full load
    set_members(sync.cohort, original[1:] + ["x1", "x2", "x3"])  # three join, one leaves
    receiver.respond_with(lambda request: Reply(status=500) if request.action == "remove_members" else Reply())
    assert run_now(sync).status == SyncRun.Status.FAILED  # its add page reached the receiver
    set_members(sync.cohort, original[1:])  # the three leave again

    receiver.respond_with(lambda request: Reply(status=500))
    with pytest.raises(CommandError):
        call_command("runsync", sync.pk, full=True, stdout=StringIO())
    sync.refresh_from_db()
    assert sync.force_full is True  # still requested: no full load has succeeded
    assert StagedMember.objects.filter(run__kind=SyncRun.Kind.DIFF).exists()  # the failed diff's rows kept

    receiver.respond_with(None)
    with celery_worker(tmp_path):
        Sync.objects.filter(pk=sync.pk).update(next_run_at=timezone.now())
        dispatch.syncs_dispatch_due()
        # The failed full run is resumed (a full picture answers the requested full load).
        wait_until(lambda: SyncRun.objects.filter(sync=sync, status=SyncRun.Status.SUCCEEDED).count() == 2
                   and Sync.objects.filter(pk=sync.pk, claimed_until__isnull=True).exists(),  # cleaned up, released
                   "the next run")

    last = SyncRun.objects.filter(sync=sync).order_by("-pk").first()
    assert (last.status, last.kind, last.resumed_count) == (SyncRun.Status.SUCCEEDED, SyncRun.Kind.FULL, 1)
    assert SyncRun.objects.filter(sync=sync).count() == 3
    sync.refresh_from_db()
    assert sync.force_full is False
    assert receiver_holds(receiver, sync.cohort) == cohort_holds(sync.cohort) == sorted(original[1:])
    assert not StagedMember.objects.exists()  # covered by the full load, now dropped


def test_a_database_connection_terminated_mid_run_fails_the_run_on_a_fresh_one_and_releases_the_claim(
    broker, make_sync, receiver, tmp_path
):
    """Issue #14 part 3: pg_terminate_backend from another connection while page 2 is out."""
    members = [f"p{n}" for n in range(6)]
    sync = make_sync(members=members)
    Connection.objects.filter(pk=sync.connection_id).update(page_size=2)  # 3 pages
    with db.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        engine_backend = cursor.fetchone()[0]

    def terminate_on_page_two(request):
        if request.page_info["page_count"] == 2:
            with psycopg.connect(**libpq_params(), autocommit=True) as other:
                other.execute("SELECT pg_terminate_backend(%s)", [engine_backend])
        return Reply()

    receiver.respond_with(terminate_on_page_two)
    with pytest.raises(OperationalError):
        run_now(sync)

    run = SyncRun.objects.get(sync=sync)
    assert run.status == SyncRun.Status.FAILED and run.error_message.startswith("database error: ")
    assert run.pages_delivered == 2  # exact: both delivered pages, and their attempt rows
    assert list(run.attempts.values_list("page_number", "outcome")) == [(1, "success"), (2, "success")]
    sync.refresh_from_db()
    assert (sync.claimed_until, sync.claim_token) == (None, None)  # released: the next run may start now

    receiver.respond_with(None)
    with celery_worker(tmp_path):
        Sync.objects.filter(pk=sync.pk).update(next_run_at=timezone.now())
        dispatch.syncs_dispatch_due()
        wait_until(lambda: SyncRun.objects.filter(sync=sync, status=SyncRun.Status.SUCCEEDED).exists(), "the next run")
    run.refresh_from_db()  # resumed from page 3, in the same session
    assert (run.status, run.resumed_count) == (SyncRun.Status.SUCCEEDED, 1)
    assert [(r.page_info["page_count"], r.session_id) for r in receiver.requests] == [
        (1, str(run.session_id)), (2, str(run.session_id)), (3, str(run.session_id))]
    assert receiver_holds(receiver, sync.cohort) == cohort_holds(sync.cohort) == members


def libpq_params() -> dict:
    database = db.settings_dict
    return {"dbname": database["NAME"], "user": database["USER"], "host": database["HOST"] or "127.0.0.1",
            "port": database["PORT"] or 5432}


def test_a_killed_worker_s_claim_is_named_by_runsync_and_broken_once_it_stops_renewing(
    broker, make_sync, receiver, tmp_path, settings
):
    """Issue #14 part 3: SIGKILL the worker mid-run; runsync says who holds the sync and until
    when, and --break-claim takes it once two renewals were missed (a short lease here)."""
    settings.COHORTSYNC_CLAIM_LEASE_SECONDS = 8  # renewed every 2 s; silent after 4 s
    members = [f"k{n:02d}" for n in range(20)]
    sync = make_sync(members=members)
    Connection.objects.filter(pk=sync.connection_id).update(page_size=2)  # 10 pages
    receiver.respond_with(lambda request: Reply(delay=0.3))

    with celery_worker(tmp_path, COHORTSYNC_CLAIM_LEASE_SECONDS="8") as worker:
        dispatch.syncs_dispatch_due()
        wait_until(lambda: len(receiver.requests) >= 2, "the run's first pages")
        kill(worker)
    receiver.respond_with(None)

    sync.refresh_from_db()
    assert " pid " in sync.claimed_by
    with pytest.raises(CommandError, match=rf"being run by {sync.claimed_by} \(claim held until .* last renewed"):
        call_command("runsync", sync.pk, stdout=StringIO())
    wait_until(lambda: services.sync_claim_is_silent(sync=Sync.objects.get(pk=sync.pk)), "the claim to go silent")

    output = StringIO()
    call_command("runsync", sync.pk, break_claim=True, stdout=output)

    assert "Broke the claim" in output.getvalue() and "resumed from page" in output.getvalue()
    (run,) = SyncRun.objects.filter(sync=sync)  # the killed run, resumed where it stopped
    assert run.status == SyncRun.Status.SUCCEEDED and run.resumed_count == 1
    assert "stopped renewing the claim" in run.stops[0]["error"]
    assert receiver_holds(receiver, sync.cohort) == cohort_holds(sync.cohort) == members


def test_a_killed_pool_child_s_redelivered_task_takes_the_dead_claim_and_finishes_the_sync(
    broker, make_sync, receiver, tmp_path
):
    """Issue #14 part 3: SIGKILL the pool child running the sync. Celery redelivers its task
    (reject_on_worker_lost); the next child sees the claim's holder is gone and runs at once,
    instead of doing nothing until the lease expires."""
    members = [f"c{n:02d}" for n in range(20)]
    sync = make_sync(members=members)
    Connection.objects.filter(pk=sync.connection_id).update(page_size=2)  # 10 pages
    receiver.respond_with(lambda request: Reply(delay=0.3) if len(receiver.requests) <= 3 else Reply())

    with celery_worker(tmp_path, concurrency=1):
        dispatch.syncs_dispatch_due()
        wait_until(lambda: len(receiver.requests) >= 2, "the run's first pages")
        holder = Sync.objects.get(pk=sync.pk).claimed_by
        os.kill(int(holder.rpartition(" pid ")[2]), signal.SIGKILL)  # the child, not the worker
        wait_until(lambda: SyncRun.objects.filter(sync=sync, status=SyncRun.Status.SUCCEEDED).exists(),
                   "the redelivered run")

    (run,) = SyncRun.objects.filter(sync=sync)  # the killed run, resumed in the same session
    assert run.status == SyncRun.Status.SUCCEEDED and run.resumed_count == 1
    assert run.stops[0]["error"] == f"stopped: the worker process ({holder}) died mid-run"
    assert {r.session_id for r in receiver.requests} == {str(run.session_id)}
    assert receiver_holds(receiver, sync.cohort) == cohort_holds(sync.cohort) == members


def test_a_worker_killed_on_another_host_frees_its_sync_within_the_lease_and_the_run_resumes_exactly(
    broker, make_sync, receiver, tmp_path, settings
):
    """Issue #14 parts 3 and 4: SIGKILL the whole worker mid-run, its holder on a host we
    cannot look into. The heartbeat stops, the claim lapses within the lease, the next tick
    dispatches the sync and the run resumes from its first undelivered page, in its session."""
    settings.COHORTSYNC_CLAIM_LEASE_SECONDS = 6  # heartbeat every 1.5 s
    members = [f"h{n:02d}" for n in range(20)]
    sync = make_sync(members=members)
    Connection.objects.filter(pk=sync.connection_id).update(page_size=2)  # 10 pages
    receiver.respond_with(lambda request: Reply(delay=0.3))

    with celery_worker(tmp_path, COHORTSYNC_CLAIM_LEASE_SECONDS="6") as worker:
        dispatch.syncs_dispatch_due()
        wait_until(lambda: len(receiver.requests) >= 4, "the run's first pages")
        time.sleep(2)  # a heartbeat or two while the pages go out (the lease alone would have lapsed by now)
        assert Sync.objects.get(pk=sync.pk).claimed_until > timezone.now()
        kill(worker)
    killed_at = time.monotonic()
    Sync.objects.filter(pk=sync.pk).update(claimed_by="worker-on-another-host pid 1")  # no pid to look at
    SyncRun.objects.filter(sync=sync).update(worker="worker-on-another-host pid 1")
    receiver.respond_with(None)
    stopped = SyncRun.objects.get(sync=sync)
    received_before = len(receiver.requests)
    # Exact progress: every page recorded delivered reached the receiver, with its attempt row;
    # at most the page in flight when the worker died is not counted.
    assert stopped.pages_delivered in (received_before, received_before - 1)
    assert stopped.attempts.count() == stopped.pages_delivered

    with celery_worker(tmp_path, COHORTSYNC_CLAIM_LEASE_SECONDS="6"):
        wait_until(lambda: dispatch.syncs_dispatch_due(), "the dispatcher to see the sync free again", seconds=30)
        freed_after = time.monotonic() - killed_at
        wait_until(lambda: SyncRun.objects.filter(sync=sync, status=SyncRun.Status.SUCCEEDED).exists(),
                   "the resumed run")

    assert freed_after < 6 + 5  # the lease, and the dispatcher's polling here
    (run,) = SyncRun.objects.filter(sync=sync)
    assert run.resumed_count == 1
    assert run.stops[0]["error"].startswith("abandoned: its worker (worker-on-another-host pid 1) stopped mid-run")
    assert run.stops[0]["pages_delivered"] == stopped.pages_delivered
    resumed = receiver.requests[received_before:]
    assert [r.page_info["page_count"] for r in resumed] == list(range(stopped.pages_delivered + 1, 11))
    assert {r.session_id for r in receiver.requests} == {str(run.session_id)}
    assert receiver_holds(receiver, sync.cohort) == cohort_holds(sync.cohort) == members


def test_a_run_longer_than_the_time_limit_resumes_until_it_is_delivered(broker, make_sync, receiver, tmp_path,
                                                                        monkeypatch):
    """Issue #14 part 4: a full load that needs longer than the task's soft time limit stops
    at it and is resumed, sooner than the interval, until every page is delivered once in one
    session, rather than starting over forever."""
    members = [f"t{n:02d}" for n in range(24)]
    sync = make_sync(members=members)
    Connection.objects.filter(pk=sync.connection_id).update(page_size=2)  # 12 pages, 0.4 s each
    receiver.respond_with(lambda request: Reply(delay=0.4))
    # Celery puts the sender's limits in the task message (the dispatcher here), the worker's are a fallback.
    monkeypatch.setattr(run_sync, "soft_time_limit", 2)
    monkeypatch.setattr(run_sync, "time_limit", 10)
    monkeypatch.setattr(run_sync, "_exec_options", None)  # Celery's cache of them

    with celery_worker(tmp_path, COHORTSYNC_TASK_SOFT_TIME_LIMIT="2", COHORTSYNC_TASK_TIME_LIMIT="10",
                       COHORTSYNC_RETRY_FIRST_MINUTES="0.01"):
        def delivered() -> bool:
            dispatch.syncs_dispatch_due()
            return SyncRun.objects.filter(sync=sync, status=SyncRun.Status.SUCCEEDED).exists()

        wait_until(delivered, "the run to be delivered across its resumptions", seconds=90)

    (run,) = SyncRun.objects.filter(sync=sync)
    assert run.resumed_count >= 2
    assert all(stop["error"].startswith("stopped at the task's time limit (2 s)") for stop in run.stops)
    assert {r.session_id for r in receiver.requests} == {str(run.session_id)}
    pages = [r.page_info["page_count"] for r in receiver.requests]
    assert sorted(set(pages)) == list(range(1, 13))
    assert len(pages) - 12 <= run.resumed_count  # at most the page in flight at each stop again
    assert receiver_holds(receiver, sync.cohort) == cohort_holds(sync.cohort) == members
