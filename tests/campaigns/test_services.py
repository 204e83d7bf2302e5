"""Creating and scheduling messages, the dispatcher, ASAP on recompute, and test sends."""

from datetime import time, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from campaigns.models import Message, MessageRun, MessageSend
from campaigns.services import (
    message_create,
    message_request_run,
    message_resume,
    message_send_test,
    messages_dispatch_due,
)
from cohorts.services import cohort_compute
from outbound.models import DeliveryAttempt
from tests.conftest import run_now
from tests.factories import CohortFactory, ConnectionFactory, ProfileFactory
from tests.support.receiver import Reply


@pytest.mark.django_db
@pytest.mark.parametrize(("fields", "field"), [
    ({"schedule": "scheduled", "cadence": "asap"}, "cadence"),
    ({"schedule": "asap", "cadence": "weekly", "days_of_week": [1]}, "cadence"),
    ({"schedule": "scheduled", "cadence": "weekly", "days_of_week": []}, "days_of_week"),
    ({"schedule": "scheduled", "cadence": "weekly", "days_of_week": [7]}, "days_of_week"),
    ({"schedule": "scheduled", "timezone": "Mars/Olympus"}, "timezone"),
    ({"schedule": "scheduled", "timezone": "America"}, "timezone"),  # a directory of zones
    ({"schedule": "scheduled", "interval": 0}, "interval"),
    ({"schedule": "recurring", "limit_days": 0}, "limit_days"),
    ({"schedule": "scheduled", "day_of_month": 32}, "day_of_month"),
])
def test_a_bad_schedule_is_refused_with_the_field_and_nothing_saved(fields, field):
    cohort = CohortFactory()
    connection = ConnectionFactory(project=cohort.project)

    with pytest.raises(ValidationError) as refused:
        message_create(cohort=cohort, connection=connection, name="x", **fields)

    assert field in refused.value.message_dict
    assert not Message.objects.exists()


@pytest.mark.django_db
def test_a_connection_of_another_project_is_refused():
    cohort = CohortFactory()
    with pytest.raises(ValidationError) as refused:
        message_create(cohort=cohort, connection=ConnectionFactory(), name="x")
    assert "connection" in refused.value.message_dict


@pytest.mark.django_db
def test_an_asap_message_is_due_at_once_and_a_scheduled_one_at_its_first_occurrence():
    cohort = CohortFactory()
    connection = ConnectionFactory(project=cohort.project)
    before = timezone.now()

    asap = message_create(cohort=cohort, connection=connection, name="now")
    weekly = message_create(cohort=cohort, connection=connection, name="wed", schedule="scheduled", cadence="weekly",
                            days_of_week=[2], time_of_day=time(9, 0), timezone="America/Los_Angeles")

    assert before <= asap.next_run_at <= timezone.now()
    local = weekly.next_run_at.astimezone(__import__("zoneinfo").ZoneInfo("America/Los_Angeles"))
    assert (local.weekday(), local.hour, local.minute) == (2, 9, 0)
    assert timedelta(0) < weekly.next_run_at - before <= timedelta(days=7)


@pytest.mark.django_db
def test_the_dispatcher_starts_each_due_occurrence_once(django_capture_on_commit_callbacks):
    cohort = CohortFactory()
    connection = ConnectionFactory(project=cohort.project)
    message = message_create(cohort=cohort, connection=connection, name="daily", schedule="scheduled",
                             cadence="daily", time_of_day=time(9, 0))
    now = message.next_run_at + timedelta(seconds=1)

    with django_capture_on_commit_callbacks(execute=False) as enqueued:
        first = messages_dispatch_due(now=now)
        again = messages_dispatch_due(now=now)

    message.refresh_from_db()
    assert first == [message.pk] and again == [] and len(enqueued) == 1
    assert message.next_run_at - now <= timedelta(days=1) and message.next_run_at > now


@pytest.mark.django_db
def test_paused_messages_are_not_dispatched_and_resume_reschedules(django_capture_on_commit_callbacks):
    cohort = CohortFactory()
    message = message_create(cohort=cohort, connection=ConnectionFactory(project=cohort.project), name="x")
    Message.objects.filter(pk=message.pk).update(state=Message.State.PAUSED, next_run_at=None)

    assert messages_dispatch_due(now=timezone.now() + timedelta(days=1)) == []

    message_resume(message=message)
    assert message.state == Message.State.ACTIVE and message.next_run_at <= timezone.now()


@pytest.mark.django_db
def test_recomputing_a_cohort_queues_its_asap_messages_only(django_capture_on_commit_callbacks):
    cohort = CohortFactory()
    connection = ConnectionFactory(project=cohort.project)
    message_create(cohort=cohort, connection=connection, name="asap")
    message_create(cohort=cohort, connection=connection, name="recurring asap", schedule="recurring")
    message_create(cohort=cohort, connection=connection, name="daily", schedule="scheduled", cadence="daily")

    with django_capture_on_commit_callbacks(execute=False) as enqueued:
        cohort_compute(cohort=cohort)

    message_runs = [callback for callback in enqueued if "messages_for_recomputed_cohort" in callback.__qualname__]
    assert len(message_runs) == 2


@pytest.mark.django_db(transaction=True)
def test_a_sync_run_recomputes_the_cohort_and_the_asap_message_reaches_new_members(
    make_sync, receiver, settings, django_capture_on_commit_callbacks
):
    settings.CELERY_TASK_ALWAYS_EAGER = True  # the queued message run happens here, in this thread
    from config.celery import app

    app.conf.task_always_eager = True
    try:
        sync = make_sync(members=["a", "b"])
        message_create(cohort=sync.cohort, connection=sync.connection, name="welcome")

        run_now(sync)
    finally:
        app.conf.task_always_eager = False

    forms = [request for request in receiver.requests if request.headers["content-type"].startswith("application/x")]
    assert [[u["$distinct_id"] for u in request.form_users] for request in forms] == [["a", "b"]]


@pytest.mark.django_db
def test_a_queued_run_exists_at_once(django_capture_on_commit_callbacks):
    cohort = CohortFactory()
    message = message_create(cohort=cohort, connection=ConnectionFactory(project=cohort.project), name="x")

    with django_capture_on_commit_callbacks(execute=False) as enqueued:
        run = message_request_run(message=message)

    assert run.status == MessageRun.Status.QUEUED and len(enqueued) == 1


@pytest.mark.django_db
def test_a_test_send_posts_five_random_profiles_and_marks_nobody(receiver):
    cohort = CohortFactory()
    connection = ConnectionFactory(project=cohort.project, url=receiver.url(), auth_username="ops",
                                   auth_password="s3cret-pass")
    profiles = {ProfileFactory(project=cohort.project).distinct_id for _ in range(12)}
    ProfileFactory()  # another project's profile is never picked
    message = message_create(cohort=cohort, connection=connection, name="x")
    receiver.reply(Reply(status=200, body={"ok": True}))

    result = message_send_test(message=message)

    (request,) = receiver.requests
    users = request.form_users
    assert len(users) == 5 and {u["$distinct_id"] for u in users} <= profiles
    assert sorted(result.distinct_ids) == sorted(u["$distinct_id"] for u in users)
    assert (result.outcome, result.http_status) == ("success", 200)
    assert request.headers["authorization"].startswith("Basic ")
    assert "s3cret-pass" not in repr(result)
    assert not MessageSend.objects.exists() and not MessageRun.objects.exists()
    assert not DeliveryAttempt.objects.exists()


@pytest.mark.django_db
def test_a_test_send_shows_a_refusal(receiver):
    cohort = CohortFactory()
    ProfileFactory(project=cohort.project)
    message = message_create(cohort=cohort, connection=ConnectionFactory(project=cohort.project,
                                                                          url=receiver.url()), name="x")
    receiver.reply(Reply(status=403, body={"error": {"message": "unknown key"}}))

    result = message_send_test(message=message)

    assert (result.outcome, result.http_status, result.message) == ("pause", 403, "unknown key")
    message.refresh_from_db()
    assert message.state == Message.State.ACTIVE  # a test never pauses anything


@pytest.mark.django_db
def test_a_scheduled_message_occurrence_is_a_queued_run_the_dispatcher_enqueues_again(
    sent_run_tasks, make_message, django_capture_on_commit_callbacks
):
    message = make_message(["u1"])
    now = message.next_run_at + timedelta(seconds=1)
    with django_capture_on_commit_callbacks(execute=True):
        assert messages_dispatch_due(now=now) == [message.pk]
    run = MessageRun.objects.get(message=message)
    assert (run.status, run.trigger) == (MessageRun.Status.QUEUED, "schedule")
    assert sent_run_tasks == [((message.pk,), {"trigger": "schedule", "run_id": run.pk}, run.dispatched_until)]

    later = run.dispatched_until + timedelta(seconds=1)
    with django_capture_on_commit_callbacks(execute=True):
        assert messages_dispatch_due(now=later) == []  # its run is still queued: no second one

    assert MessageRun.objects.filter(message=message).count() == 1
    assert [call[1]["run_id"] for call in sent_run_tasks] == [run.pk, run.pk]  # the lost task, enqueued again
