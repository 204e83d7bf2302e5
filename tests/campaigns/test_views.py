"""The message pages (campaigns/views.py, campaigns/selectors.py) through Django's test client:
who sees what, the run history, the POST-only actions and the test send."""

import uuid
from datetime import time

import pytest
from django.test import Client
from django.utils import timezone

from campaigns.models import Message, MessageRun, MessageSend
from campaigns.selectors import message_schedule_in_words
from outbound.models import DeliveryAttempt
from tests.factories import ProfileFactory, ProjectFactory
from tests.support.pages import message_in, message_url
from tests.support.receiver import Reply

pytestmark = pytest.mark.django_db


# --- The message page ---------------------------------------------------------------------


def test_the_message_page_shows_schedule_state_error_sent_users_and_batch_attempts(member_client, project):
    message = message_in(project, schedule=Message.Schedule.RECURRING, cadence=Message.Cadence.WEEKLY,
                         days_of_week=[0, 2], timezone="Europe/Paris", limit_count=1, limit_days=7)
    Message.objects.filter(pk=message.pk).update(last_error_message="Service Unavailable", last_error_status=503)
    run = MessageRun.objects.create(message=message, status=MessageRun.Status.FAILED, users_count=120,
                                    sent_count=100, total_batches=3, batches_delivered=2, batches_failed=1,
                                    finished_at=timezone.now(), error_message="1 batch not delivered",
                                    http_status=503)
    for batch, attempt, outcome, status in [(1, 1, "success", 200), (2, 1, "transient", 503),
                                            (2, 2, "transient", 503), (3, 1, "success", 200)]:
        DeliveryAttempt.objects.create(source=run, page_number=batch, page_id=uuid.uuid4(), action="users",
                                       attempt_number=attempt, outcome=outcome, http_status=status, latency_ms=87,
                                       error="" if status == 200 else "Service Unavailable",
                                       response_excerpt='{"ok": true}' if status == 200 else "")
    for _ in range(3):
        MessageSend.objects.create(message=message, profile=ProfileFactory(project=project), run=run,
                                   status=MessageSend.Status.SENT, reserved_at=timezone.now(), sent_at=timezone.now())

    response = member_client.get(message_url(message))

    assert response.status_code == 200
    assert response.context["message"].sent_users == 3
    assert list(response.context["runs"]) == [run]
    html = response.content.decode()
    assert "Recurring, weekly on Mon and Wed at 09:00 Europe/Paris, at most 1 per 7 days per user" in html
    assert "Receiver's error message (HTTP 503):</span> Service Unavailable" in html
    assert '<dd id="users-sent">3</dd>' in html
    assert f'id="run-{run.pk}"' in html and "Some users not sent" in html and "HTTP 503: 1 batch not delivered" in html
    assert "Batch attempts (4)" in html and "87 ms" in html and "{&quot;ok&quot;: true}" in html
    assert "Run now" in html and "Pause" in html and "Send test" in html and 'id="resume"' not in html


def test_the_message_run_history_is_paginated(member_client, project):
    message = message_in(project)
    MessageRun.objects.bulk_create([MessageRun(message=message, status=MessageRun.Status.SUCCEEDED)
                                    for _ in range(25)])

    first = member_client.get(message_url(message))
    second = member_client.get(message_url(message) + "?page=2")

    assert len(first.context["runs"]) == 20 and len(second.context["runs"]) == 5
    assert b"Older runs" in first.content


def test_another_projects_message_is_a_404_and_its_actions_change_nothing(member_client, project, receiver):
    other = message_in(ProjectFactory(), url=receiver.url())

    assert member_client.get(message_url(other)).status_code == 404
    for action in ("run", "pause", "resume", "test"):
        assert member_client.post(message_url(other, action)).status_code == 404
    other.refresh_from_db()
    assert other.state == Message.State.ACTIVE
    assert not MessageRun.objects.filter(message=other).exists()
    assert receiver.requests == []


def test_message_actions_refuse_get(member_client, project):
    message = message_in(project)

    for action in ("run", "pause", "resume", "test"):
        assert member_client.get(message_url(message, action)).status_code == 405


def test_message_actions_need_the_csrf_token(member, project):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(member)
    message = message_in(project)

    for action in ("run", "pause", "test"):
        assert strict.post(message_url(message, action)).status_code == 403
    message.refresh_from_db()
    assert message.state == Message.State.ACTIVE and not MessageRun.objects.filter(message=message).exists()


def test_run_now_queues_a_message_run_after_commit(member_client, project, django_capture_on_commit_callbacks):
    message = message_in(project)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = member_client.post(message_url(message, "run"), follow=True)

    (run,) = MessageRun.objects.filter(message=message)
    assert (run.status, run.trigger) == (MessageRun.Status.QUEUED, "manual")
    assert len(callbacks) == 1
    assert response.redirect_chain == [(message_url(message), 302)]
    assert f"Run #{run.pk} is queued.".encode() in response.content


def test_pause_then_resume_a_message(member_client, project):
    message = message_in(project)

    paused = member_client.post(message_url(message, "pause"), follow=True)
    message.refresh_from_db()
    assert (message.state, message.next_run_at) == (Message.State.PAUSED, None)
    assert b"Paused: the message sends nothing" in paused.content and b'id="resume"' in paused.content
    assert b"Run now" not in paused.content

    refused = member_client.post(message_url(message, "run"), follow=True)
    assert b"resume it first" in refused.content and not MessageRun.objects.exists()

    resumed = member_client.post(message_url(message, "resume"), follow=True)
    message.refresh_from_db()
    assert message.state == Message.State.ACTIVE and message.next_run_at is not None
    assert b"Resumed" in resumed.content


def test_send_test_shows_the_receivers_answer_once_and_marks_nobody(member_client, project, receiver):
    message = message_in(project, url=receiver.url())
    profiles = [ProfileFactory(project=project) for _ in range(7)]
    receiver.reply(Reply(status=200, body={"status": "ok", "note": "5 users received by the CRM"}))

    response = member_client.post(message_url(message, "test"), follow=True)

    assert response.redirect_chain == [(message_url(message) + "#test-send", 302)]
    (request,) = receiver.requests
    sent = [user["$distinct_id"] for user in request.form_users]
    assert len(sent) == 5 and set(sent) <= {p.distinct_id for p in profiles}
    result = response.context["test_send"]
    assert (result["outcome"], result["http_status"], result["distinct_ids"]) == ("success", 200, sent)
    html = response.content.decode()
    assert 'id="test-send"' in html and "HTTP 200" in html and "5 users received by the CRM" in html
    assert all(f"<code>{distinct_id}</code>" in html for distinct_id in sent)
    assert "Nobody was marked sent" in html
    assert not MessageSend.objects.exists() and not MessageRun.objects.exists()
    assert b'id="test-send"' not in member_client.get(message_url(message)).content  # shown once


def test_send_test_shows_a_refusal(member_client, project, receiver):
    message = message_in(project, url=receiver.url())
    ProfileFactory(project=project)
    receiver.reply(Reply(status=401, body={"error": "Invalid API key"}))

    response = member_client.post(message_url(message, "test"), follow=True)

    html = response.content.decode()
    assert response.context["test_send"]["outcome"] == "pause"
    assert "HTTP 401" in html and "Invalid API key" in html
    message.refresh_from_db()
    assert message.state == Message.State.ACTIVE  # a test changes nothing, even a refused one


@pytest.mark.parametrize("fields, words", [
    ({}, "ASAP, as soon as a user matches (checked each time the cohort is recomputed), once per user"),
    ({"schedule": "scheduled", "time_of_day": time(7, 30)}, "Scheduled, daily at 07:30 UTC, once per user ever"),
    ({"schedule": "scheduled", "cadence": "weekly", "interval": 2, "days_of_week": [4], "timezone": "Asia/Tokyo"},
     "Scheduled, every 2 weeks on Fri at 09:00 Asia/Tokyo, once per user ever"),
    ({"schedule": "scheduled", "cadence": "monthly", "interval": 3, "day_of_month": 31},
     "Scheduled, every 3 months on day 31 (the last day in shorter months) at 09:00 UTC, once per user ever"),
    ({"schedule": "recurring", "cadence": "weekly", "days_of_week": [2, 0], "timezone": "Europe/Paris"},
     "Recurring, weekly on Mon and Wed at 09:00 Europe/Paris, at most 1 per 7 days per user"),
    ({"schedule": "recurring", "limit_count": 2, "limit_days": 1},
     "Recurring, as criteria are met (each time the cohort is recomputed), at most 2 per day per user"),
    ({"schedule": "recurring", "cadence": "daily", "interval": 3, "limit_days": 30},
     "Recurring, every 3 days at 09:00 UTC, at most 1 per 30 days per user"),
])
def test_a_messages_schedule_in_words(project, fields, words):
    message = message_in(project, **fields)
    message.refresh_from_db()  # as the pages read it

    assert message_schedule_in_words(message=message) == words
