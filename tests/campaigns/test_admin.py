"""The operators' message, message-run and send screens (campaigns/admin.py): saving through the
services, the actions, the "Send test" button against a loopback receiver, and the attempts
list naming message runs as their source."""

import json
import zoneinfo
from urllib.parse import parse_qs

import pytest
from django.contrib.messages import get_messages

from campaigns.models import Message, MessageRun, MessageSend
from campaigns.sending import message_run
from campaigns.services import message_create
from outbound.models import DeliveryAttempt
from tests.conftest import set_members
from tests.factories import CohortFactory, ConnectionFactory, DeliveryAttemptFactory, UserFactory
from tests.support.receiver import Reply

pytestmark = pytest.mark.django_db

API_KEY = "sk_live_never_shown"
PASSWORD = "hunter2-never-shown"


@pytest.fixture
def root():
    return UserFactory(username="root", is_staff=True, is_superuser=True)


@pytest.fixture
def admin_client(client, root):
    client.force_login(root)
    return client


@pytest.fixture
def cohort():
    return CohortFactory(name="Churn risk")


@pytest.fixture
def connection(cohort, receiver):
    return ConnectionFactory(project=cohort.project, name="CRM webhook", url=receiver.url(), api_key=API_KEY,
                             auth_username="ops", auth_password=PASSWORD)


def make_message(cohort, connection, **fields) -> Message:
    return message_create(cohort=cohort, connection=connection, name=fields.pop("name", "Win-back"), **fields)


def form_data(cohort, connection, **fields) -> dict:
    data = {"name": "Weekly digest", "cohort": cohort.pk, "connection": connection.pk, "schedule": "scheduled",
            "cadence": "weekly", "interval": 1, "time_of_day": "09:00", "timezone": "Europe/Paris",
            "days_of_week": [0, 2], "day_of_month": 1, "limit_count": 1, "limit_days": 7,
            "properties": "plan\n country \n\n"}
    data.update(fields)
    return {name: value for name, value in data.items() if value is not None}


def shown_messages(response) -> list[tuple[str, str]]:
    return [(m.level_tag, m.message) for m in get_messages(response.wsgi_request)]


def form_users(request) -> list[dict]:
    return json.loads(parse_qs(request.body.decode())["users"][0])


# --- Add and change through the services ----------------------------------------------------


def test_adding_a_message_goes_through_the_service(admin_client, root, cohort, connection):
    assert admin_client.get("/admin/campaigns/message/add/").status_code == 200

    response = admin_client.post("/admin/campaigns/message/add/", form_data(cohort, connection))

    assert response.status_code == 302, response.context["adminform"].form.errors
    message = Message.objects.get()
    assert (message.schedule, message.cadence, message.days_of_week, message.timezone) == (
        "scheduled", "weekly", [0, 2], "Europe/Paris")
    assert message.properties == ["plan", "country"]
    assert message.created_by == root and message.next_run_at is not None  # set by message_create
    assert message.next_run_at.astimezone(zoneinfo.ZoneInfo("Europe/Paris")).hour == 9


@pytest.mark.parametrize("fields, field", [
    ({"days_of_week": None}, "days_of_week"),  # weekly needs a day
    ({"schedule": "asap"}, "cadence"),
    ({"interval": 0}, "interval"),
    ({"schedule": "recurring", "limit_days": 0}, "limit_days"),
    ({"timezone": "America"}, "timezone"),
])
def test_invalid_values_show_next_to_their_field(admin_client, cohort, connection, fields, field):
    response = admin_client.post("/admin/campaigns/message/add/", form_data(cohort, connection, **fields))

    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert not Message.objects.exists()


def test_a_connection_of_another_project_is_refused(admin_client, cohort):
    theirs = ConnectionFactory()

    response = admin_client.post("/admin/campaigns/message/add/", form_data(cohort, theirs))

    assert response.context["adminform"].form.errors["connection"] == [
        "The connection belongs to another project than the cohort."]
    assert not Message.objects.exists()


def test_changing_a_message_reschedules_it_and_keeps_its_cohort(admin_client, cohort, connection):
    message = make_message(cohort, connection)
    ConnectionFactory(name="Elsewhere")  # another project's: not offered
    change = f"/admin/campaigns/message/{message.pk}/change/"
    page = admin_client.get(change)
    form = page.context["adminform"].form
    assert "cohort" not in form.fields  # read-only once created
    assert list(form.fields["connection"].queryset) == [connection]

    data = form_data(cohort, connection, name="Friday nudge", schedule="recurring", cadence="weekly",
                     days_of_week=[4], time_of_day="18:00", timezone="UTC", limit_count=2, limit_days=30)
    data["cohort"] = CohortFactory(project=cohort.project).pk  # ignored: the field is read-only
    response = admin_client.post(change, data)

    assert response.status_code == 302
    message.refresh_from_db()
    assert (message.name, message.schedule, message.limit_count, message.limit_days, message.cohort) == (
        "Friday nudge", "recurring", 2, 30, cohort)
    assert (message.next_run_at.weekday(), message.next_run_at.hour) == (4, 18)


# --- List and actions -------------------------------------------------------------------------


def test_list_says_schedule_state_and_error_in_few_queries(admin_client, cohort, connection,
                                                          django_assert_max_num_queries):
    weekly = make_message(cohort, connection, name="Weekly digest", schedule="recurring", cadence="weekly",
                          days_of_week=[0, 2], timezone="Europe/Paris", limit_count=1, limit_days=7)
    Message.objects.filter(pk=weekly.pk).update(last_error_message="Invalid API key", last_error_status=401)
    for n in range(10):
        make_message(cohort, connection, name=f"ASAP {n}")

    with django_assert_max_num_queries(8):
        response = admin_client.get("/admin/campaigns/message/")

    html = response.content.decode()
    assert "Recurring, weekly on Mon and Wed at 09:00 Europe/Paris, at most 1 per 7 days per user" in html
    assert "HTTP 401: Invalid API key" in html and ">failing</strong>" in html
    assert f"/admin/campaigns/messagerun/?message__id__exact={weekly.pk}" in html
    assert API_KEY not in html and PASSWORD not in html


def test_run_now_pause_and_resume_actions(admin_client, cohort, connection, mailoutbox):
    active, paused = make_message(cohort, connection), make_message(cohort, connection, name="Paused")
    Message.objects.filter(pk=paused.pk).update(state=Message.State.PAUSED)
    selected = [active.pk, paused.pk]

    admin_client.post("/admin/campaigns/message/", {"action": "run_now", "_selected_action": selected})
    assert list(MessageRun.objects.values_list("message_id", "status")) == [(active.pk, "queued")]

    admin_client.post("/admin/campaigns/message/", {"action": "pause", "_selected_action": selected})
    assert set(Message.objects.values_list("state", flat=True)) == {"paused"}
    assert mailoutbox == []  # an operator's pause emails nobody

    admin_client.post("/admin/campaigns/message/", {"action": "resume", "_selected_action": selected})
    assert set(Message.objects.values_list("state", flat=True)) == {"active"}
    assert all(m.next_run_at is not None for m in Message.objects.all())


# --- Send test ----------------------------------------------------------------------------------


def test_send_test_posts_5_random_profiles_shows_the_answer_and_marks_nobody(admin_client, cohort, connection,
                                                                             receiver):
    set_members(cohort, [f"u{n}" for n in range(7)])
    message = make_message(cohort, connection)
    change = f"/admin/campaigns/message/{message.pk}/change/"
    page = admin_client.get(change).content.decode()
    assert "Send test" in page and f'formaction="/admin/campaigns/message/{message.pk}/send-test/"' in page
    assert page.index('name="_save"') < page.index("Send test")  # Enter in a field saves; it sends nothing

    response = admin_client.post(f"/admin/campaigns/message/{message.pk}/send-test/")

    assert response.status_code == 302 and response["Location"] == change
    (request,) = receiver.requests
    sent_ids = [user["$distinct_id"] for user in form_users(request)]
    assert len(sent_ids) == 5 and set(sent_ids) <= {f"u{n}" for n in range(7)}
    ((level, text),) = shown_messages(response)
    assert level == "success"
    assert "Test send of “Win-back”: success, HTTP 200 in" in text
    assert "Sent: " + ", ".join(sent_ids) + "." in text
    assert '"status": "success"' in text  # the receiver's answer
    assert API_KEY not in text and PASSWORD not in text
    assert not MessageSend.objects.exists() and not MessageRun.objects.exists()


def test_send_test_shows_a_refusal_as_an_error(admin_client, cohort, connection, receiver):
    set_members(cohort, ["a"])
    message = make_message(cohort, connection)
    receiver.reply(Reply(status=401, body={"status": "failure", "error": {"code": 401, "message": "bad token"}}))

    response = admin_client.post(f"/admin/campaigns/message/{message.pk}/send-test/")

    ((level, text),) = shown_messages(response)
    assert level == "error"
    assert "pause, HTTP 401" in text and "bad token" in text and "Sent: a." in text
    message.refresh_from_db()
    assert message.state == Message.State.ACTIVE and not MessageSend.objects.exists()


def test_send_test_refuses_get_and_staff_without_change_permission(client, admin_client, cohort, connection,
                                                                   receiver):
    set_members(cohort, ["a"])
    message = make_message(cohort, connection)
    assert admin_client.get(f"/admin/campaigns/message/{message.pk}/send-test/").status_code == 405

    client.force_login(UserFactory(username="viewer", is_staff=True))
    response = client.post(f"/admin/campaigns/message/{message.pk}/send-test/")

    assert response.status_code in (302, 403, 404)  # 404: not a member of the message's project either
    assert receiver.requests == []


# --- Runs, sends and attempts ------------------------------------------------------------------


def test_a_run_shows_its_batches_and_attempts_link_back_to_it(admin_client, cohort, connection, receiver):
    set_members(cohort, [f"u{n:03d}" for n in range(120)])
    message = make_message(cohort, connection, name="Win-back")
    receiver.reply(Reply(status=200), *[Reply(status=503, body="receiver busy")] * 5)  # batch 2: every try
    run = message_run(message_id=message.pk)
    DeliveryAttemptFactory()  # a sync page's attempt, listed beside

    runs = admin_client.get(f"/admin/campaigns/messagerun/?message__id__exact={message.pk}")
    detail = admin_client.get(f"/admin/campaigns/messagerun/{run.pk}/change/")
    attempts = admin_client.get("/admin/outbound/deliveryattempt/")
    only_messages = admin_client.get("/admin/outbound/deliveryattempt/?source=message")

    assert list(runs.context["cl"].result_list) == [run]
    assert "70/120" in runs.content.decode() and "2/3 (1 failed)" in runs.content.decode()
    assert detail.status_code == 200 and detail.content.decode().count("receiver busy") >= 5
    html = attempts.content.decode()
    assert f'<a href="/admin/campaigns/messagerun/{run.pk}/change/">message “Win-back” run #{run.pk}</a>' in html
    assert "/admin/deliveries/syncrun/" in html
    assert {a.source_id for a in only_messages.context["cl"].result_list} == {run.pk}
    assert admin_client.get("/admin/campaigns/messagerun/add/").status_code == 403


def test_sends_list_filters_by_message_and_status(admin_client, cohort, connection, receiver):
    set_members(cohort, ["a", "b", "c"])
    message, other = make_message(cohort, connection), make_message(cohort, connection, name="Other")
    message_run(message_id=message.pk)
    message_run(message_id=other.pk)

    by_message = admin_client.get(f"/admin/campaigns/messagesend/?message__id__exact={message.pk}&status__exact=sent")
    pending = admin_client.get("/admin/campaigns/messagesend/?status__exact=pending")

    assert by_message.status_code == 200
    assert sorted(s.profile.distinct_id for s in by_message.context["cl"].result_list) == ["a", "b", "c"]
    assert list(pending.context["cl"].result_list) == []
    assert "<td class=\"field-profile_id_text\">a</td>" in by_message.content.decode()
    assert DeliveryAttempt.objects.filter(message_run__message=message).count() == 1
