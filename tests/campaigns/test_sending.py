"""User messages against a real loopback receiver: form batches of 50, what a 2xx marks sent,
what a failure gives back, and "at most once" across re-runs, limits and two workers."""

import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from campaigns import sending
from campaigns.models import Message, MessageRun, MessageSend
from campaigns.sending import Recipient, message_run, users_body
from cohorts.models import CohortMember
from outbound.claims import claim_take
from outbound.models import DeliveryAttempt
from tests.conftest import set_members
from tests.support.receiver import Reply

from .conftest import batch_sizes, sent_ids

USERS_120 = [f"user-{i:03d}" for i in range(120)]


def sent_records(message) -> list[str]:
    return sorted(MessageSend.objects.filter(message=message, status=MessageSend.Status.SENT)
                  .values_list("profile__distinct_id", flat=True))


@pytest.mark.django_db
def test_120_matching_users_go_out_as_three_form_posts_of_50_50_20(make_message, receiver):
    message = make_message(USERS_120)

    run = message_run(message_id=message.pk)

    assert batch_sizes(receiver) == [50, 50, 20]
    assert sorted(sent_ids(receiver)) == USERS_120  # each once
    for request in receiver.requests:
        assert request.headers["content-type"] == "application/x-www-form-urlencoded"
        assert request.headers["webhook-id"]
    assert run.status == MessageRun.Status.SUCCEEDED
    assert (run.users_count, run.sent_count, run.total_batches, run.batches_delivered) == (120, 120, 3, 3)
    assert sent_records(message) == USERS_120
    assert DeliveryAttempt.objects.filter(message_run=run).count() == 3


@pytest.mark.django_db
def test_each_user_carries_its_distinct_id_and_profile_properties(make_message, receiver):
    message = make_message(["ada"])
    from cohorts.models import Profile

    Profile.objects.filter(distinct_id="ada").update(
        email="ada@example.com", first_name="Ada", last_name="Lovelace", phone_number="+44 20 0000",
        properties={"plan": "pro", "Last Seen": "2012-11-20T15:26:17", "score": 4.5},
    )

    message_run(message_id=message.pk)

    (user,) = receiver.requests[0].form_users
    assert user == {
        "$distinct_id": "ada",
        "$properties": {"plan": "pro", "Last Seen": "2012-11-20T15:26:17", "score": 4.5, "$email": "ada@example.com",
                        "$first_name": "Ada", "$last_name": "Lovelace", "$phone": "+44 20 0000"},
    }


@pytest.mark.django_db
def test_a_message_with_listed_properties_sends_only_those(make_message, receiver):
    message = make_message(["ada"], properties=["plan"])
    from cohorts.models import Profile

    Profile.objects.filter(distinct_id="ada").update(properties={"plan": "pro", "secret_score": 9})

    message_run(message_id=message.pk)

    # Identity fields always go out (who to reach); custom properties only as listed.
    assert receiver.requests[0].form_users[0]["$properties"] == {"plan": "pro", "$email": "ada@example.com"}


def test_the_body_is_one_form_field_holding_a_json_list():
    recipient = Recipient(1, "a&b=c", "", "", "", "", '{"note": "50% off & more"}')
    assert users_body([recipient]) == (
        b"users=%5B%7B%22%24distinct_id%22%3A%22a%26b%3Dc%22%2C%22%24properties%22%3A%7B%22note%22%3A%2250%25+off+"
        b"%26+more%22%7D%7D%5D"
    )


@pytest.mark.django_db
def test_a_failed_middle_post_resends_only_its_users(make_message, receiver):
    message = make_message(USERS_120)
    # The second batch is refused (a status that is not retried); the others succeed.
    receiver.reply(Reply(), Reply(status=600, body={"error": {"message": "try later"}}))

    first = message_run(message_id=message.pk)

    failed_batch = receiver.requests[1].form_users
    assert batch_sizes(receiver) == [50, 50, 20]
    assert first.status == MessageRun.Status.FAILED
    assert (first.sent_count, first.batches_delivered, first.batches_failed) == (70, 2, 1)
    assert len(sent_records(message)) == 70
    receiver.clear()

    second = message_run(message_id=message.pk)

    assert receiver.requests and sent_ids(receiver) == [user["$distinct_id"] for user in failed_batch]
    assert second.status == MessageRun.Status.SUCCEEDED and second.sent_count == 50
    assert sent_records(message) == USERS_120


@pytest.mark.django_db
def test_a_batch_is_retried_on_5xx_and_its_users_marked_once(make_message, receiver):
    message = make_message(USERS_120[:10])
    receiver.reply(Reply(status=503), Reply(status=500))

    run = message_run(message_id=message.pk)

    assert batch_sizes(receiver) == [10, 10, 10]  # the same batch, tried three times
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1  # one id across its retries
    assert run.status == MessageRun.Status.SUCCEEDED
    assert list(DeliveryAttempt.objects.filter(message_run=run).values_list("attempt_number", "outcome")) == [
        (1, "transient"), (2, "transient"), (3, "success")]
    assert MessageSend.objects.filter(message=message).count() == 10


@pytest.mark.django_db
def test_a_receiver_that_stays_down_stops_the_run_and_gives_every_user_back(make_message, receiver):
    message = make_message([f"u{i:03d}" for i in range(300)])  # six batches
    receiver.respond_with(lambda request: Reply(status=500))

    run = message_run(message_id=message.pk)

    # Three batches in a row refused (five tries each): the run stops short of the other three.
    assert len(receiver.requests) == 3 * 5
    assert run.status == MessageRun.Status.FAILED and run.batches_failed == 3
    assert not MessageSend.objects.filter(message=message).exists()
    receiver.respond_with(None)
    receiver.clear()

    message_run(message_id=message.pk)

    assert len(sent_ids(receiver)) == 300


@pytest.mark.django_db
def test_a_4xx_pauses_the_message_keeps_the_receivers_message_and_emails_its_creator(make_message, receiver,
                                                                                      mailoutbox):
    message = make_message(USERS_120)
    receiver.reply(Reply(status=401, body={"error": {"message": "bad token"}}))

    run = message_run(message_id=message.pk)

    message.refresh_from_db()
    assert len(receiver.requests) == 1
    assert run.status == MessageRun.Status.PAUSED
    assert (message.state, message.last_error_message, message.last_error_status) == ("paused", "bad token", 401)
    assert not MessageSend.objects.filter(message=message).exists()
    assert [m.to for m in mailoutbox] == [[message.created_by.email]]
    assert "bad token" in mailoutbox[0].body
    receiver.clear()

    assert message_run(message_id=message.pk) is None  # paused messages do not run
    assert receiver.requests == []


# --- At most once -------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("schedule", ["asap", "scheduled"])
def test_a_user_gets_a_once_per_user_message_at_most_once_even_after_leaving_and_rejoining(
    make_message, receiver, schedule
):
    message = make_message(["a", "b"], schedule=schedule)
    message_run(message_id=message.pk)
    set_members(message.cohort, ["b", "c"])  # a left, c joined
    message_run(message_id=message.pk)
    set_members(message.cohort, ["a", "b", "c", "d"])  # a is back

    message_run(message_id=message.pk)

    assert sent_ids(receiver) == ["a", "b", "c", "d"]
    assert batch_sizes(receiver) == [2, 1, 1]


@pytest.mark.django_db
def test_a_rerun_with_nothing_new_posts_nothing(make_message, receiver):
    message = make_message(USERS_120)
    message_run(message_id=message.pk)
    receiver.clear()

    run = message_run(message_id=message.pk)

    assert receiver.requests == []
    assert run.status == MessageRun.Status.SUCCEEDED and run.users_count == 0


@pytest.mark.django_db
def test_the_database_refuses_a_second_send_record_of_the_same_user(make_message, receiver):
    from django.db import IntegrityError, transaction

    message = make_message(["a"])
    message_run(message_id=message.pk)
    record = MessageSend.objects.get(message=message)

    with pytest.raises(IntegrityError), transaction.atomic():
        MessageSend.objects.create(message=message, profile_id=record.profile_id, sequence=1,
                                   reserved_at=timezone.now())


@pytest.mark.django_db
def test_reservations_of_a_crashed_worker_are_given_back_once_stale(make_message, receiver, settings):
    message = make_message(["a", "b"])
    crashed = MessageRun.objects.create(message=message, status=MessageRun.Status.RUNNING)
    profile_ids = list(CohortMember.objects.filter(cohort=message.cohort).values_list("profile_id", flat=True))
    MessageSend.objects.bulk_create([
        MessageSend(message=message, profile_id=pid, run=crashed, reserved_at=timezone.now()) for pid in profile_ids
    ])

    message_run(message_id=message.pk)
    assert receiver.requests == []  # a live-looking run's reservations are left alone

    long_ago = timezone.now() - timedelta(seconds=settings.COHORTSYNC_CLAIM_LEASE_SECONDS + 1)
    MessageSend.objects.filter(run=crashed).update(reserved_at=long_ago)
    MessageRun.objects.filter(pk=crashed.pk).update(started_at=long_ago)
    message_run(message_id=message.pk)

    assert sorted(sent_ids(receiver)) == ["a", "b"]
    crashed.refresh_from_db()
    assert crashed.status == MessageRun.Status.FAILED and "abandoned" in crashed.error_message


@pytest.mark.django_db
def test_a_run_whose_worker_died_before_reserving_is_marked_abandoned(make_message, receiver, settings):
    message = make_message(["a"])
    long_ago = timezone.now() - timedelta(seconds=settings.COHORTSYNC_CLAIM_LEASE_SECONDS + 1)
    crashed = MessageRun.objects.create(message=message, status=MessageRun.Status.RUNNING)
    recent = MessageRun.objects.create(message=message, status=MessageRun.Status.RUNNING)
    MessageRun.objects.filter(pk=crashed.pk).update(started_at=long_ago)

    message_run(message_id=message.pk)

    crashed.refresh_from_db()
    recent.refresh_from_db()
    assert crashed.status == MessageRun.Status.FAILED
    assert recent.status == MessageRun.Status.RUNNING  # another worker may still be on it


# Needs a real server: SQLite's in-memory test database refuses concurrent writers at once.
@pytest.mark.django_db(transaction=True)
def test_two_workers_running_one_message_at_once_send_each_user_once(require_postgres, make_message, receiver):
    """Both start together: one holds the message's claim and sends everyone; the other is skipped."""
    message = make_message(USERS_120)
    receiver.respond_with(lambda request: Reply(delay=0.05))  # keep both runs open together
    start = threading.Barrier(2)
    runs: list = []
    errors: list = []

    def worker() -> None:
        try:
            start.wait()
            runs.append(message_run(message_id=message.pk))
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == [] and len(runs) == 2
    assert sorted(sent_ids(receiver)) == USERS_120  # nobody twice, nobody missed
    assert sum(run.sent_count for run in runs if run is not None) == 120
    assert None in runs  # the second worker found the message claimed
    message.refresh_from_db()
    assert (message.claim_token, message.claimed_until) == (None, None)
    assert MessageSend.objects.filter(message=message, status="sent").count() == 120


# --- Recurring limits ---------------------------------------------------------------------


@pytest.mark.django_db
def test_a_recurring_message_repeats_only_within_its_per_user_limit(make_message, receiver):
    message = make_message(["a", "b"], schedule="recurring", limit_count=1, limit_days=7)
    message_run(message_id=message.pk)
    message_run(message_id=message.pk)  # the same day: both are at their limit
    assert sent_ids(receiver) == ["a", "b"]

    # Eight days later for a, three for b: only a may get it again.
    eight_days_ago = timezone.now() - timedelta(days=8)
    MessageSend.objects.filter(message=message, profile__distinct_id="a").update(sent_at=eight_days_ago)
    MessageSend.objects.filter(message=message, profile__distinct_id="b").update(
        sent_at=timezone.now() - timedelta(days=3))
    receiver.clear()
    message_run(message_id=message.pk)

    assert sent_ids(receiver) == ["a"]
    assert list(MessageSend.objects.filter(message=message, profile__distinct_id="a")
                .order_by("sequence").values_list("sequence", flat=True)) == [1, 2]


@pytest.mark.django_db
def test_a_limit_of_two_per_window_allows_two_sends_then_stops(make_message, receiver):
    message = make_message(["a"], schedule="recurring", limit_count=2, limit_days=1)

    for _ in range(4):
        message_run(message_id=message.pk)

    assert sent_ids(receiver) == ["a", "a"]


@pytest.mark.django_db
def test_a_failed_recurring_send_does_not_count_against_the_limit(make_message, receiver):
    message = make_message(["a"], schedule="recurring", limit_count=1, limit_days=7)
    receiver.reply(Reply(status=600))
    message_run(message_id=message.pk)

    message_run(message_id=message.pk)

    assert sent_ids(receiver) == ["a", "a"]  # refused, then sent
    assert MessageSend.objects.get(message=message).status == MessageSend.Status.SENT


@pytest.mark.django_db
def test_a_paused_message_is_skipped_and_its_queued_run_says_why(make_message, receiver):
    message = make_message(["a"])
    Message.objects.filter(pk=message.pk).update(state=Message.State.PAUSED)
    queued = MessageRun.objects.create(message=message, status=MessageRun.Status.QUEUED)

    assert message_run(message_id=message.pk, run_id=queued.pk) is None

    queued.refresh_from_db()
    assert queued.status == MessageRun.Status.SKIPPED and "paused" in queued.error_message
    assert receiver.requests == []


# --- The message's claim (outbound.claims) -------------------------------------------------


@pytest.mark.django_db
def test_a_run_holds_the_messages_claim_and_gives_it_back(make_message, receiver, monkeypatch):
    message = make_message(["a"])
    held: list = []
    reserve = sending.reserve_recipients

    def reserve_and_look(**kwargs):
        held.append(Message.objects.filter(pk=message.pk).values_list("claim_token", flat=True).get())
        return reserve(**kwargs)

    monkeypatch.setattr(sending, "reserve_recipients", reserve_and_look)
    run = message_run(message_id=message.pk)

    assert run.status == MessageRun.Status.SUCCEEDED
    assert held and held[0] is not None  # claimed while sending
    message.refresh_from_db()
    assert (message.claim_token, message.claimed_until) == (None, None)


@pytest.mark.django_db
def test_a_claimed_message_skips_a_queued_run_until_its_lease_expires(make_message, receiver, settings):
    message = make_message(["a"])
    claim_take(subject=Message.objects.filter(pk=message.pk))
    queued = MessageRun.objects.create(message=message, status=MessageRun.Status.QUEUED)

    assert message_run(message_id=message.pk, run_id=queued.pk) is None
    queued.refresh_from_db()
    assert queued.status == MessageRun.Status.SKIPPED and "another run of the message was in progress" in queued.error_message
    assert receiver.requests == []

    long_ago = timezone.now() - timedelta(seconds=settings.COHORTSYNC_CLAIM_LEASE_SECONDS + 1)
    Message.objects.filter(pk=message.pk).update(claimed_until=long_ago)  # its worker died
    assert message_run(message_id=message.pk).status == MessageRun.Status.SUCCEEDED
    assert sent_ids(receiver) == ["a"]


@pytest.mark.django_db
def test_a_run_that_lost_the_messages_claim_stops_and_keeps_what_it_sent(make_message, receiver, settings,
                                                                          monkeypatch):
    message = make_message(USERS_120)
    settings.COHORTSYNC_CLAIM_LEASE_SECONDS = 0  # every flush renews the claim
    send = sending._send_batch

    def send_then_lose_the_claim(**kwargs):
        verdict = send(**kwargs)
        Message.objects.filter(pk=message.pk).update(claim_token=uuid.uuid4())  # another worker took it
        return verdict

    monkeypatch.setattr(sending, "_send_batch", send_then_lose_the_claim)
    run = message_run(message_id=message.pk)

    assert run.status == MessageRun.Status.FAILED and "claim expired" in run.error_message
    assert batch_sizes(receiver) == [50]  # stopped after the first batch
    assert MessageSend.objects.filter(message=message, status=MessageSend.Status.SENT).count() == 50
    assert not MessageSend.objects.filter(message=message, status=MessageSend.Status.PENDING).exists()
