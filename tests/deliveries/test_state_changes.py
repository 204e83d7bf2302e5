"""Each state change of a sync or a message is one service that checks its own preconditions and
raises StateConflict (deliveries/services.py, campaigns/services.py); a queued run that is
skipped says which of paused, finished, deleted or already running stopped it."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from campaigns.models import Message, MessageRun
from campaigns.sending import message_run
from campaigns.services import message_create, message_pause, message_request_run, message_resume
from deliveries import services
from deliveries.engine import sync_run
from deliveries.models import Sync, SyncRun
from outbound.errors import StateConflict
from tests.factories import ConnectionFactory, SyncFactory

pytestmark = pytest.mark.django_db

FINISHED = dict(mode=Sync.Mode.ONE_TIME, state=Sync.State.FINISHED, next_run_at=None)


@pytest.mark.parametrize("state, fields, message", [
    ("paused", dict(state=Sync.State.PAUSED), "The sync is paused; resume it first."),
    ("finished", FINISHED, "The sync is finished; a one-time export runs once."),
])
def test_only_an_active_sync_is_queued_to_run(state, fields, message):
    sync = SyncFactory(**fields)

    with pytest.raises(StateConflict, match=f"^{message}$") as caught:
        services.sync_request_run(sync=sync)

    assert caught.value.state == state
    assert not SyncRun.objects.exists()


def test_the_check_reads_the_stored_state_not_a_stale_copy():
    sync = SyncFactory()
    Sync.objects.filter(pk=sync.pk).update(state=Sync.State.PAUSED)  # paused since `sync` was read

    with pytest.raises(StateConflict):
        services.sync_request_run(sync=sync)


def test_a_finished_sync_cannot_be_paused_resumed_or_refreshed():
    sync = SyncFactory(**FINISHED)

    for change, text in [(lambda: services.sync_pause(sync=sync, message="by hand", status=None), "nothing left"),
                         (lambda: services.sync_resume(sync=sync), "cannot be resumed"),
                         (lambda: services.sync_request_full_refresh(sync=sync), "does not run again")]:
        with pytest.raises(StateConflict, match=text):
            change()

    sync.refresh_from_db()
    assert (sync.state, sync.force_full, sync.last_error_message) == (Sync.State.FINISHED, False, "")


def test_pausing_a_paused_sync_and_resuming_an_active_one_change_nothing(mailoutbox):
    sync = SyncFactory()
    services.sync_pause(sync=sync, message="first", status=None, notify=False)
    paused_at = sync.paused_at

    services.sync_pause(sync=sync, message="a receiver's refusal", status=401)

    sync.refresh_from_db()
    assert (sync.paused_at, sync.last_error_message) == (paused_at, "first")
    assert mailoutbox == []  # nothing changed: nobody is told of a pause
    active = SyncFactory(next_run_at=timezone.now() + timedelta(minutes=20))
    assert services.sync_resume(sync=active).next_run_at == active.next_run_at


def test_a_paused_sync_can_be_marked_for_a_full_refresh():
    sync = SyncFactory(state=Sync.State.PAUSED)

    assert services.sync_request_full_refresh(sync=sync).force_full is True


# --- sync_update ---------------------------------------------------------------------


def test_a_new_connection_or_property_list_makes_the_next_run_a_full_load():
    sync = SyncFactory()
    other = ConnectionFactory(project=sync.cohort.project)

    services.sync_update(sync=sync, connection=other)
    assert Sync.objects.get(pk=sync.pk).force_full is True

    Sync.objects.filter(pk=sync.pk).update(force_full=False)
    services.sync_update(sync=Sync.objects.get(pk=sync.pk), properties=["plan"])
    assert Sync.objects.get(pk=sync.pk).force_full is True

    Sync.objects.filter(pk=sync.pk).update(force_full=False)
    services.sync_update(sync=Sync.objects.get(pk=sync.pk), properties=["plan"], interval_minutes=30)
    assert Sync.objects.get(pk=sync.pk).force_full is False  # nothing changed


def test_a_shorter_interval_brings_the_next_run_forward():
    sync = SyncFactory(interval_minutes=720, next_run_at=timezone.now() + timedelta(hours=11))

    services.sync_update(sync=sync, interval_minutes=15)

    assert Sync.objects.get(pk=sync.pk).next_run_at <= timezone.now() + timedelta(minutes=15)


def test_an_update_writes_only_what_it_changes():
    sync = SyncFactory()
    # A run commits while the operator's form is open: its snapshot and claim must survive the save.
    Sync.objects.filter(pk=sync.pk).update(snapshot_generation=41, snapshot_size=12,
                                           claimed_until=timezone.now() + timedelta(minutes=5))

    services.sync_update(sync=sync, interval_minutes=60)

    stored = Sync.objects.get(pk=sync.pk)
    assert (stored.interval_minutes, stored.snapshot_generation, stored.snapshot_size) == (60, 41, 12)
    assert stored.claimed_until is not None


def test_an_update_validates_and_refuses_other_fields():
    sync = SyncFactory()

    with pytest.raises(TypeError, match="cohort"):
        services.sync_update(sync=sync, cohort=sync.cohort)
    with pytest.raises(TypeError, match="state"):
        services.sync_update(sync=sync, state=Sync.State.PAUSED)
    with pytest.raises(ValidationError) as caught:
        services.sync_update(sync=sync, connection=ConnectionFactory())  # another project's
    assert "connection" in caught.value.message_dict


# --- Skipped queued runs say why -----------------------------------------------------


def queued_run(sync) -> SyncRun:
    return SyncRun.objects.create(sync=sync, status=SyncRun.Status.QUEUED, trigger="manual")


@pytest.mark.parametrize("fields, reason", [
    (dict(state=Sync.State.PAUSED), "not run: the sync is paused"),
    (FINISHED, "not run: the sync is finished (a one-time export runs once)"),
    (dict(claimed_until=timezone.now() + timedelta(days=1)), "not run: another run of the sync was in progress"),
])
def test_a_skipped_queued_run_says_which_state_stopped_it(make_sync, receiver, fields, reason):
    sync = make_sync(members=["a"])
    run = queued_run(sync)
    Sync.objects.filter(pk=sync.pk).update(**fields)

    assert sync_run(sync_id=sync.pk, trigger="manual", run_id=run.pk) is None

    run.refresh_from_db()
    assert (run.status, run.error_message) == (SyncRun.Status.SKIPPED, reason)
    assert receiver.requests == []


def test_a_skipped_queued_message_run_says_it_is_paused(message):
    run = MessageRun.objects.create(message=message, status=MessageRun.Status.QUEUED)
    Message.objects.filter(pk=message.pk).update(state=Message.State.PAUSED)

    assert message_run(message_id=message.pk, run_id=run.pk) is None

    run.refresh_from_db()
    assert (run.status, run.error_message) == (MessageRun.Status.SKIPPED, "not run: the message is paused")


# --- Messages ------------------------------------------------------------------------


@pytest.fixture
def message(db):
    sync = SyncFactory()  # a cohort with a connection of its project
    return message_create(cohort=sync.cohort, connection=sync.connection, name="Win-back")


def test_only_an_active_message_is_queued_to_run(message):
    message_pause(message=message)

    with pytest.raises(StateConflict, match="^The message is paused; resume it first.$"):
        message_request_run(message=message)

    assert not MessageRun.objects.exists()
    assert message_request_run(message=message_resume(message=message)).status == MessageRun.Status.QUEUED


def test_pausing_a_paused_message_keeps_its_first_pause(message, mailoutbox):
    message_pause(message=message)
    paused_at = message.paused_at

    message_pause(message=message, reason="Invalid API key", status=401)

    message.refresh_from_db()
    assert (message.paused_at, message.last_error_message) == (paused_at, "")
    assert mailoutbox == []
