"""The users' status pages (pages/views.py, deliveries/selectors.sync_list_for_user), through
Django's test client: who sees what, the order of the dashboard, the POST-only actions; the
pages of user messages (campaigns/selectors.py) and cohorts, and the alerts they show."""

import uuid
from datetime import time, timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from alerts.models import Alert, AlertFiring
from campaigns.models import Message, MessageRun, MessageSend
from campaigns.selectors import message_schedule_in_words
from campaigns.services import message_create
from cohorts.models import CohortSize
from cohorts.services import cohort_size_record
from deliveries import selectors
from deliveries.models import Sync, SyncRun
from outbound.models import DeliveryAttempt
from tests.factories import (
    CohortFactory,
    ConnectionFactory,
    DeliveryAttemptFactory,
    ProfileFactory,
    ProjectFactory,
    SyncFactory,
    SyncRunFactory,
    UserFactory,
)
from tests.support.receiver import Reply

pytestmark = pytest.mark.django_db


@pytest.fixture
def member():
    return UserFactory(username="ada")


@pytest.fixture
def project(member):
    project = ProjectFactory(name="Growth")
    project.members.add(member)
    return project


@pytest.fixture
def member_client(client, member):
    client.force_login(member)
    return client


def sync_in(project, **fields) -> Sync:
    return SyncFactory(cohort__project=project, **fields)


def sync_url(sync, action: str = "") -> str:
    return reverse(f"deliveries:sync{'-' + action if action else ''}", kwargs={"sync_id": sync.pk})


def message_in(project, *, url: str = "http://127.0.0.1:9/hook", name: str = "Win back", **fields) -> Message:
    cohort = CohortFactory(project=project, name=fields.pop("cohort_name", "Lapsed buyers"))
    connection = ConnectionFactory(project=project, name="CRM form hook", url=url)
    return message_create(cohort=cohort, connection=connection, name=name, **fields)


def message_url(message, action: str = "") -> str:
    return reverse(f"deliveries:message{'-' + action if action else ''}", kwargs={"message_id": message.pk})


def cohort_url(cohort) -> str:
    return reverse("deliveries:cohort", kwargs={"cohort_id": cohort.pk})


def fire(alert, sentence: str, minutes_ago: int = 0, **fields) -> AlertFiring:
    return AlertFiring.objects.create(alert=alert, sentence=sentence, current_value=fields.pop("current_value", 1),
                                      fired_at=timezone.now() - timedelta(minutes=minutes_ago), payload={}, **fields)


# --- Who sees what -----------------------------------------------------------------------


def test_pages_ask_anonymous_visitors_to_log_in(client, project):
    sync = sync_in(project)

    message = message_in(project)

    for url in ("/", sync_url(sync), message_url(message), cohort_url(message.cohort)):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"] == f"/login/?next={url}"


def test_logging_in_leads_to_the_dashboard(client, member, project):
    member.set_password("a-long-password")
    member.save()

    page = client.get("/login/")
    response = client.post("/login/", {"username": "ada", "password": "a-long-password"})

    assert page.status_code == 200 and b'<label for="id_username">' in page.content
    assert response.status_code == 302 and response["Location"] == "/"


def test_the_dashboard_lists_only_syncs_of_the_users_projects(member_client, project):
    mine = sync_in(project, cohort__name="Trial users")
    other = SyncFactory(cohort__name="Someone else's cohort")

    response = member_client.get("/")

    assert response.status_code == 200
    assert list(response.context["syncs"]) == [mine]
    assert b"Trial users" in response.content
    assert b"Someone else" not in response.content
    assert member_client.get(sync_url(other)).status_code == 404


def test_another_projects_sync_is_a_404_and_its_actions_change_nothing(member_client, project):
    other = SyncFactory(state=Sync.State.PAUSED, last_error_message="bad token", next_run_at=None)

    assert member_client.get(sync_url(other)).status_code == 404
    for action in ("resume", "run", "refresh"):
        assert member_client.post(sync_url(other, action)).status_code == 404
    other.refresh_from_db()
    assert (other.state, other.force_full) == (Sync.State.PAUSED, False)
    assert not SyncRun.objects.filter(sync=other).exists()


def test_superusers_see_every_sync(client, project):
    client.force_login(UserFactory(username="root", is_superuser=True, is_staff=True))
    syncs = [sync_in(project), SyncFactory()]

    response = client.get("/")

    assert sorted(s.pk for s in response.context["syncs"]) == sorted(s.pk for s in syncs)
    assert client.get(sync_url(syncs[1])).status_code == 200


# --- The dashboard -----------------------------------------------------------------------


def test_paused_then_failing_syncs_come_first_with_the_receivers_message(member_client, project):
    healthy = sync_in(project, cohort__name="A healthy one")
    failing = sync_in(project, cohort__name="B failing", last_error_message="502 Bad Gateway", last_error_status=502)
    paused = sync_in(project, cohort__name="C paused", state=Sync.State.PAUSED, next_run_at=None,
                     last_error_message="Invalid API key", last_error_status=401)

    response = member_client.get("/")

    syncs = list(response.context["syncs"])
    assert syncs == [paused, failing, healthy]
    assert [s.health for s in syncs] == ["paused", "failing", "active"]
    html = response.content.decode()
    assert html.index("C paused") < html.index("B failing") < html.index("A healthy one")
    assert "Receiver refused (HTTP 401):</span> Invalid API key" in html
    assert "Paused</span>" in html and "Failing</span>" in html  # state in words, not only colour


def test_the_dashboard_queries_do_not_grow_with_the_number_of_syncs(member_client, project,
                                                                      django_assert_max_num_queries):
    for _ in range(8):
        sync_in(project)

    for n in range(8):
        message = message_in(project, name=f"Message {n}")
        alert = Alert.objects.create(project=project, name=f"Alert {n}", kind=Alert.Kind.COHORT_SIZE,
                                     operator=Alert.Operator.GREATER_THAN, threshold=10, cohort=message.cohort)
        fire(alert, f"Size went over 10 ({n})")

    # session, user, syncs, messages (with their sent counts), firings (each with its alert and subject)
    with django_assert_max_num_queries(7):
        response = member_client.get("/")

    assert len(response.context["syncs"]) == 8
    assert len(response.context["user_messages"]) == 8 and len(response.context["firings"]) == 8


def test_sync_list_for_user_is_scoped_by_membership(member, project):
    mine = sync_in(project)
    SyncFactory()

    assert list(selectors.sync_list_for_user(user=member)) == [mine]


# --- The sync page -----------------------------------------------------------------------


def test_the_sync_page_shows_runs_with_their_attempts_and_a_chart(member_client, project):
    sync = sync_in(project, state=Sync.State.PAUSED, next_run_at=None, last_error_message="Invalid API key",
                   last_error_status=401)
    first = SyncRunFactory(sync=sync, kind=SyncRun.Kind.FULL, members_count=40,
                           finished_at=timezone.now() + timedelta(seconds=5))
    cohort_size_record(cohort=sync.cohort, size=40)  # as the engine does while the run stages
    second = SyncRunFactory(sync=sync, kind=SyncRun.Kind.DIFF, adds_count=7, removes_count=3,
                            status=SyncRun.Status.PAUSED, error_message="Invalid API key", http_status=401,
                            pages_delivered=0, total_pages=2)
    DeliveryAttemptFactory(source=first, response_excerpt='{"status": "success"}')
    DeliveryAttemptFactory(source=second, action="add_members", outcome="pause", http_status=401, latency_ms=87,
                           error="Invalid API key")

    response = member_client.get(sync_url(sync))

    assert response.status_code == 200
    assert list(response.context["runs"]) == [second, first]
    html = response.content.decode()
    assert "Receiver's error message (HTTP 401):</span> Invalid API key" in html
    assert 'id="resume"' in html and "Run now" not in html  # a paused sync resumes; it does not run
    assert "Page attempts (1)" in html and "87 ms" in html and "HTTP 401: Invalid API key" in html
    assert '<svg class="chart__svg"' in html and 'role="img"' in html
    assert "<desc" in html and "Cohort size went from 40 to 40" in html
    assert "1 run sent 40 members in full loads" in html  # the chart counts successful runs only
    assert "<caption" in html


def test_the_run_history_is_paginated(member_client, project):
    sync = sync_in(project)
    SyncRunFactory.create_batch(25, sync=sync)

    first = member_client.get(sync_url(sync))
    second = member_client.get(sync_url(sync) + "?page=2")

    assert len(first.context["runs"]) == 20 and len(second.context["runs"]) == 5
    assert b"Older runs" in first.content


# --- Actions: POST only, for project members ----------------------------------------------


def test_actions_refuse_get(member_client, project):
    sync = sync_in(project)

    for action in ("resume", "run", "refresh"):
        assert member_client.get(sync_url(sync, action)).status_code == 405


def test_resume_makes_a_paused_sync_active_and_due(member_client, project):
    sync = sync_in(project, state=Sync.State.PAUSED, paused_at=timezone.now(), next_run_at=None)

    response = member_client.post(sync_url(sync, "resume"), follow=True)

    sync.refresh_from_db()
    assert sync.state == Sync.State.ACTIVE and sync.next_run_at <= timezone.now()
    assert response.redirect_chain == [(sync_url(sync), 302)]
    assert b"Resumed" in response.content


def test_run_now_queues_a_run_after_commit(member_client, project, django_capture_on_commit_callbacks):
    sync = sync_in(project)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = member_client.post(sync_url(sync, "run"), follow=True)

    (run,) = SyncRun.objects.filter(sync=sync)
    assert (run.status, run.trigger) == (SyncRun.Status.QUEUED, "manual")
    assert len(callbacks) == 1
    assert f"Run #{run.pk} is queued.".encode() in response.content


def test_run_now_on_a_paused_sync_queues_nothing(member_client, project):
    sync = sync_in(project, state=Sync.State.PAUSED, next_run_at=None)

    response = member_client.post(sync_url(sync, "run"), follow=True)

    assert not SyncRun.objects.filter(sync=sync).exists()
    assert b"resume it first" in response.content


def test_full_refresh_marks_the_next_run_full(member_client, project):
    sync = sync_in(project)

    member_client.post(sync_url(sync, "refresh"))

    sync.refresh_from_db()
    assert sync.force_full is True


def test_actions_need_the_csrf_token(member, project):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(member)
    sync = sync_in(project, state=Sync.State.PAUSED, next_run_at=None)

    assert strict.post(sync_url(sync, "resume")).status_code == 403
    sync.refresh_from_db()
    assert sync.state == Sync.State.PAUSED


# --- Dashboard: messages and alerts ----------------------------------------------------------


def test_the_dashboard_lists_the_users_messages_and_alert_firings_only(member_client, project):
    paused = message_in(project, name="Win back", cohort_name="Lapsed buyers")
    Message.objects.filter(pk=paused.pk).update(state=Message.State.PAUSED, next_run_at=None,
                                                last_error_message="Invalid token", last_error_status=401)
    weekly = message_in(project, name="Weekly digest", cohort_name="Readers", schedule=Message.Schedule.RECURRING,
                        cadence=Message.Cadence.WEEKLY, days_of_week=[2, 0], timezone="Europe/Paris")
    profile = ProfileFactory(project=project)
    MessageSend.objects.create(message=weekly, profile=profile, status=MessageSend.Status.SENT,
                               reserved_at=timezone.now(), sent_at=timezone.now())
    MessageSend.objects.create(message=weekly, profile=ProfileFactory(project=project), reserved_at=timezone.now())
    others = message_in(ProjectFactory(), name="Someone else's message")
    alert = Alert.objects.create(project=project, name="Readers over 1000", kind=Alert.Kind.COHORT_SIZE,
                                 operator=Alert.Operator.GREATER_THAN, threshold=1000, cohort=weekly.cohort)
    fire(alert, "Readers has 1,204 users, above 1,000", status=AlertFiring.Status.FAILED,
         error_message="HTTP 502 from the Slack webhook")
    other_alert = Alert.objects.create(project=others.cohort.project, name="Someone else's alert",
                                       kind=Alert.Kind.COHORT_SIZE, operator=Alert.Operator.LESS_THAN, threshold=5,
                                       cohort=others.cohort)
    fire(other_alert, "Not yours")

    response = member_client.get("/")

    assert list(response.context["user_messages"]) == [paused, weekly]  # paused first
    assert [m.sent_users for m in response.context["user_messages"]] == [0, 1]  # pending sends do not count
    html = response.content.decode()
    assert f'href="{message_url(paused)}"' in html and f'href="{cohort_url(paused.cohort)}"' in html
    assert "Receiver refused (HTTP 401):</span> Invalid token" in html
    assert "Recurring, weekly on Mon and Wed at 09:00 Europe/Paris, at most 1 per 7 days per user" in html
    assert "Readers over 1000" in html and "Readers has 1,204 users, above 1,000" in html
    assert "Not delivered" in html and "HTTP 502 from the Slack webhook" in html
    assert "Someone else" not in html and "Not yours" not in html


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


# --- The cohort page --------------------------------------------------------------------------


def test_the_cohort_page_shows_its_size_history_syncs_messages_and_alerts(member_client, project):
    message = message_in(project, name="Win back")
    cohort = message.cohort
    sync = sync_in(project, cohort=cohort, connection__name="Ads audience")
    now = timezone.now()
    for hours_ago, size in [(3, 40), (2, 45), (1, 38)]:
        CohortSize.objects.create(cohort=cohort, size=size, computed_at=now - timedelta(hours=hours_ago))
    alert = Alert.objects.create(project=project, name="Lapsed buyers shrink", kind=Alert.Kind.COHORT_SIZE_CHANGE,
                                 operator=Alert.Operator.DECREASES_BY, threshold=10, cohort=cohort)
    fire(alert, "Lapsed buyers shrank by 15.6% (45 → 38)", status=AlertFiring.Status.DELIVERED,
         cohort_size=CohortSize.objects.get(size=38))
    Alert.objects.create(project=project, name="Quiet one", kind=Alert.Kind.COHORT_SIZE,
                         operator=Alert.Operator.GREATER_THAN, threshold=1000, cohort=cohort)

    response = member_client.get(cohort_url(cohort))

    assert response.status_code == 200
    assert [(row.size, row.change) for row in response.context["recent_sizes"]] == [(38, -7), (45, 5), (40, None)]
    html = response.content.decode()
    history = html[html.index('id="size-history"'):html.index('id="syncs"')]
    assert '<svg class="chart__svg"' in history and "Cohort size went from 40 to 38 over 3 measurements" in history
    assert ">+5<" in history and ">-7<" in history
    assert f'href="{sync_url(sync)}"' in html and "Ads audience" in html
    assert f'href="{message_url(message)}"' in html and "Win back" in html
    assert "Fires when its size shrinks by at least 10% between computations" in html
    assert "Lapsed buyers shrank by 15.6% (45 → 38)" in html and "Delivered" in html
    assert 'href="#size-history"' in html  # the firing's root cause
    assert "Quiet one" in html and "It has not fired yet." in html


def test_a_cohort_without_measurements_says_so(member_client, project):
    cohort = CohortFactory(project=project)

    response = member_client.get(cohort_url(cohort))

    assert response.status_code == 200 and response.context["chart"] is None
    assert b"No size history yet" in response.content and b"No sync sends this cohort." in response.content


def test_another_projects_cohort_is_a_404(member_client, project):
    other = CohortFactory(name="Someone else's cohort")
    cohort_size_record(cohort=other, size=12)

    response = member_client.get(cohort_url(other))

    assert response.status_code == 404 and b"Someone else" not in response.content


def test_cohort_names_link_to_their_page(member_client, project):
    sync = sync_in(project)

    assert f'href="{cohort_url(sync.cohort)}"'.encode() in member_client.get("/").content
    assert f'href="{cohort_url(sync.cohort)}"'.encode() in member_client.get(sync_url(sync)).content


# --- The sync page: run anchors and alerts ------------------------------------------------


def test_the_sync_page_anchors_each_run_and_shows_the_syncs_alerts(member_client, project):
    sync = sync_in(project, state=Sync.State.PAUSED, next_run_at=None)
    good = SyncRunFactory(sync=sync)
    refused = SyncRunFactory(sync=sync, status=SyncRun.Status.PAUSED, error_message="Invalid API key",
                             http_status=401)
    alert = Alert.objects.create(project=project, name="CRM sync paused", kind=Alert.Kind.SYNC_PAUSED,
                                 operator=Alert.Operator.IS, sync=sync)
    fire(alert, "The sync to CRM paused: Invalid API key", sync_run=refused, status=AlertFiring.Status.NO_WEBHOOK)
    SyncFactory(cohort__project=project)  # another sync's alerts stay on its page
    Alert.objects.create(project=project, name="Other sync failing", kind=Alert.Kind.SYNC_FAILING,
                         operator=Alert.Operator.AT_LEAST, threshold=3, sync=Sync.objects.exclude(pk=sync.pk).get())

    response = member_client.get(sync_url(sync))

    html = response.content.decode()
    assert f'id="run-{good.pk}"' in html and f'id="run-{refused.pk}"' in html
    assert "CRM sync paused" in html and "Fires when it is paused" in html
    assert "The sync to CRM paused: Invalid API key" in html and "No webhook to send to" in html
    assert f'href="?run={refused.pk}#run-{refused.pk}"' in html
    assert "Other sync failing" not in html


def test_a_root_cause_link_opens_the_history_page_that_holds_the_run(member_client, project):
    sync = sync_in(project)
    start = timezone.now() - timedelta(days=1)
    runs = [SyncRunFactory(sync=sync) for _ in range(25)]
    for n, run in enumerate(runs):  # distinct start times, oldest first
        SyncRun.objects.filter(pk=run.pk).update(started_at=start + timedelta(minutes=n))
    oldest = runs[0]
    DeliveryAttemptFactory(source=oldest)

    response = member_client.get(sync_url(sync) + f"?run={oldest.pk}")

    assert response.context["runs"].number == 2 and oldest in list(response.context["runs"])
    assert f'id="run-{oldest.pk}"' in response.content.decode()
    assert "<details open>" in response.content.decode()  # its attempts are unfolded
    assert member_client.get(sync_url(sync) + "?run=oops").context["runs"].number == 1
