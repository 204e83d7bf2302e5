"""The dispatcher guarantees that a queued run starts (deliveries/dispatch.py, outbound/dispatch.py, issue #14 part 2)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from deliveries import dispatch, services, tasks
from deliveries.models import SyncRun
from outbound.dispatch import queued_runs_dispatch
from outbound.errors import BrokerUnavailable
from tests.conftest import run_now
from tests.factories import SyncFactory
from tests.support.receiver import Reply


@pytest.mark.django_db
def test_a_queued_run_whose_task_never_started_is_enqueued_again_once(
    sent_run_tasks, django_capture_on_commit_callbacks
):
    sync = SyncFactory(next_run_at=timezone.now() + timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=True):
        run = services.sync_request_run(sync=sync, trigger="api")
    assert sent_run_tasks == [((sync.pk,), {"trigger": "api", "run_id": run.pk}, run.dispatched_until)]
    expired = run.dispatched_until + timedelta(seconds=1)

    with django_capture_on_commit_callbacks(execute=True):
        dispatch.syncs_dispatch_due(now=run.dispatched_until - timedelta(seconds=1))  # the task may still run
        dispatch.syncs_dispatch_due(now=expired)  # the task expired unrun (or was lost)
        dispatch.syncs_dispatch_due(now=expired + timedelta(minutes=1))

    run.refresh_from_db()
    assert sent_run_tasks[1:] == [((sync.pk,), {"trigger": "api", "run_id": run.pk}, run.dispatched_until)]
    assert run.dispatched_until > expired and run.status == SyncRun.Status.QUEUED


@pytest.mark.django_db
def test_a_started_run_is_not_enqueued_again(sent_run_tasks, django_capture_on_commit_callbacks):
    sync = SyncFactory()
    with django_capture_on_commit_callbacks(execute=True):
        run = services.sync_request_run(sync=sync)
    SyncRun.objects.filter(pk=run.pk).update(status=SyncRun.Status.RUNNING)

    with django_capture_on_commit_callbacks(execute=True):
        queued_runs_dispatch(runs=SyncRun.objects.all(), task=tasks.run_sync, subject="sync_id",
                                      now=run.dispatched_until + timedelta(seconds=1))

    assert len(sent_run_tasks) == 1


@pytest.mark.django_db
def test_a_requested_full_run_is_kept_on_the_sync(sent_run_tasks, django_capture_on_commit_callbacks):
    """A re-enqueued task carries no `full`: the sync's force_full does, until a full run succeeds."""
    sync = SyncFactory()
    with django_capture_on_commit_callbacks(execute=True):
        services.sync_request_run(sync=sync, full=True)
    sync.refresh_from_db()
    assert sync.force_full is True


@pytest.mark.django_db
def test_the_dispatcher_undoes_its_marks_when_the_broker_is_down(broker_down, django_capture_on_commit_callbacks):
    sync = SyncFactory(next_run_at=timezone.now() - timedelta(minutes=1))
    with pytest.raises(BrokerUnavailable), django_capture_on_commit_callbacks(execute=True):
        dispatch.syncs_dispatch_due()

    sync.refresh_from_db()
    assert sync.dispatched_until is None  # due again at the next tick


def stopped_after_page_1(make_sync, receiver, settings):
    """A sync of two pages whose first run failed after page 1: resumable."""
    sync = make_sync(members=["A", "B", "C"])
    sync.connection.page_size = 2
    sync.connection.save()
    receiver.reply(Reply(), *[Reply(status=503)] * (len(settings.COHORTSYNC_RETRY_DELAYS) + 1))
    stopped = run_now(sync)
    assert stopped.status == SyncRun.Status.FAILED
    return sync, stopped


@pytest.mark.django_db
def test_run_now_after_a_stopped_run_queues_that_run_to_resume_it(
    make_sync, receiver, settings, sent_run_tasks, django_capture_on_commit_callbacks,
):
    """The run a request returns is the one that runs: the stopped run, resumed in its row."""
    sync, stopped = stopped_after_page_1(make_sync, receiver, settings)

    with django_capture_on_commit_callbacks(execute=True):
        requested = services.sync_request_run(sync=sync, trigger="api")

    assert requested.pk == stopped.pk and requested.status == SyncRun.Status.QUEUED
    assert [stop["status"] for stop in requested.stops] == ["failed"]
    assert SyncRun.objects.filter(sync=sync).count() == 1
    receiver.clear()
    run = tasks.run_sync(sync.pk, trigger="api", run_id=requested.pk)  # the worker's part
    stored = SyncRun.objects.get(pk=stopped.pk)
    assert run == str(stopped.session_id) and stored.status == SyncRun.Status.SUCCEEDED
    assert (stored.resumed_count, stored.trigger, len(stored.stops)) == (1, "api", 1)
    assert [r.page_info["page_count"] for r in receiver.requests] == [2]


@pytest.mark.django_db
def test_a_resumption_whose_task_the_broker_refuses_is_stopped_as_it_was(
    make_sync, receiver, settings, django_capture_on_commit_callbacks, request,
):
    sync, stopped = stopped_after_page_1(make_sync, receiver, settings)
    request.getfixturevalue("broker_down")

    with pytest.raises(BrokerUnavailable), django_capture_on_commit_callbacks(execute=True):
        services.sync_request_run(sync=sync)

    stored = SyncRun.objects.get(pk=stopped.pk)  # not deleted, not queued: resumable as before
    assert (stored.status, stored.error_message, stored.trigger, stored.stops) == (
        stopped.status, stopped.error_message, stopped.trigger, [])
