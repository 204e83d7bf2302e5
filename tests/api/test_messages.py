"""messages/ and message-runs/: user messages, their actions, test sends and run history."""

import json
import zoneinfo
from datetime import timedelta
from urllib.parse import parse_qs

import pytest
from django.utils import timezone

from campaigns.models import Message, MessageRun, MessageSend
from campaigns.sending import message_run
from campaigns.services import message_create
from tests.api.conftest import key_client
from tests.conftest import set_members
from tests.factories import CohortFactory, ConnectionFactory, ProfileFactory, UserFactory
from tests.support.receiver import Reply

pytestmark = pytest.mark.django_db

URL = "/api/v1/messages/"
RUNS_URL = "/api/v1/message-runs/"
API_KEY = "sk_live_never_shown"
PASSWORD = "hunter2-never-shown"


@pytest.fixture
def cohort(api):
    return CohortFactory(project=api.project)


@pytest.fixture
def connection(api, receiver):
    return ConnectionFactory(project=api.project, url=receiver.url(), api_key=API_KEY, auth_username="ops",
                             auth_password=PASSWORD)


def make_message(cohort, connection, **fields) -> Message:
    return message_create(cohort=cohort, connection=connection, name=fields.pop("name", "Win-back"), **fields)


def form_users(request) -> list[dict]:
    return json.loads(parse_qs(request.body.decode())["users"][0])


# --- Create, read, change, delete ------------------------------------------------------------


def test_create_an_asap_message(api, cohort, connection):
    response = api.post(URL, {"cohort": cohort.pk, "connection": connection.pk, "name": "Win-back"})
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["name"], body["schedule"], body["cadence"], body["state"]) == ("Win-back", "asap", "asap", "active")
    assert (body["cohort"], body["connection"], body["properties"], body["time_of_day"]) == (
        cohort.pk, connection.pk, [], "09:00:00")
    assert body["next_run_at"] is not None  # due at once
    assert Message.objects.get(pk=body["id"]).created_by is None  # a key made by the command belongs to nobody


def test_create_a_weekly_scheduled_message(api, cohort, connection):
    response = api.post(URL, {
        "cohort": cohort.pk, "connection": connection.pk, "name": "Weekly digest", "schedule": "scheduled",
        "cadence": "weekly", "days_of_week": [0, 2], "time_of_day": "09:30", "timezone": "Europe/Paris",
        "properties": ["plan", "country"],
    })
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["cadence"], body["days_of_week"], body["time_of_day"], body["timezone"], body["properties"]) == (
        "weekly", [0, 2], "09:30:00", "Europe/Paris", ["plan", "country"])
    message = Message.objects.get(pk=body["id"])
    local = message.next_run_at.astimezone(zoneinfo.ZoneInfo("Europe/Paris"))
    assert local.weekday() in (0, 2) and (local.hour, local.minute) == (9, 30)


def test_a_scheduled_message_defaults_to_daily(api, cohort, connection):
    body = api.post(URL, {"cohort": cohort.pk, "connection": connection.pk, "name": "Daily",
                          "schedule": "scheduled"}).json()
    assert (body["schedule"], body["cadence"], body["interval"]) == ("scheduled", "daily", 1)


def test_a_recurring_message_with_its_per_user_limit(api, cohort, connection):
    body = api.post(URL, {"cohort": cohort.pk, "connection": connection.pk, "name": "Nudge", "schedule": "recurring",
                          "cadence": "daily", "limit_count": 2, "limit_days": 14}).json()
    assert (body["schedule"], body["cadence"], body["limit_count"], body["limit_days"]) == (
        "recurring", "daily", 2, 14)


@pytest.mark.parametrize("fields, field", [
    ({"interval": 0}, "interval"),
    ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
    ({"timezone": "America"}, "timezone"),  # a directory of the zone database, not a zone
    ({"time_of_day": "25:00"}, "time_of_day"),
    ({"days_of_week": [7]}, "days_of_week"),
    ({"schedule": "scheduled", "cadence": "weekly", "days_of_week": [1, 1]}, "days_of_week"),
    ({"schedule": "scheduled", "cadence": "weekly"}, "days_of_week"),
    ({"schedule": "asap", "cadence": "weekly", "days_of_week": [1]}, "cadence"),
    ({"schedule": "recurring", "limit_count": 0}, "limit_count"),
    ({"schedule": "recurring", "limit_days": 367}, "limit_days"),
    ({"properties": [f"p{i}" for i in range(201)]}, "properties"),
    ({"properties": [""]}, "properties"),
    ({"schedule": "weekly"}, "schedule"),
    ({"name": ""}, "name"),
])
def test_invalid_input_is_a_400_naming_the_field(api, cohort, connection, fields, field):
    payload = {"cohort": cohort.pk, "connection": connection.pk, "name": "Win-back", **fields}
    response = api.post(URL, payload)
    assert response.status_code == 400
    assert list(response.json()) == [field]
    assert not Message.objects.exists()


def test_cohort_and_connection_of_other_projects_do_not_exist(api, other_project):
    theirs_cohort = CohortFactory(project=other_project)
    theirs_connection = ConnectionFactory(project=other_project)
    response = api.post(URL, {"cohort": theirs_cohort.pk, "connection": theirs_connection.pk, "name": "x"})
    assert response.status_code == 400
    assert set(response.json()) == {"cohort", "connection"}
    assert "does not exist" in response.json()["cohort"][0]


def test_a_connection_of_another_of_the_users_projects_is_refused(session_api, session_user, project, other_project):
    other_project.members.add(session_user)
    cohort, connection = CohortFactory(project=project), ConnectionFactory(project=other_project)
    response = session_api.post(URL, {"cohort": cohort.pk, "connection": connection.pk, "name": "x"})
    assert response.status_code == 400
    assert response.json() == {"connection": ["The connection belongs to another project than the cohort."]}


def test_a_session_user_creates_messages_as_themselves(session_api, session_user, project):
    cohort, connection = CohortFactory(project=project), ConnectionFactory(project=project)
    body = session_api.post(URL, {"cohort": cohort.pk, "connection": connection.pk, "name": "x"}).json()
    assert Message.objects.get(pk=body["id"]).created_by == session_user


def test_reads_never_show_the_connections_secrets(api, cohort, connection):
    message = make_message(cohort, connection)
    for response in (api.get(f"{URL}{message.pk}/"), api.get(URL)):
        text = response.content.decode()
        assert response.status_code == 200
        assert API_KEY not in text and PASSWORD not in text and connection.url not in text


def test_read_shows_state_last_error_and_next_run(api, cohort, connection):
    message = make_message(cohort, connection)
    Message.objects.filter(pk=message.pk).update(state=Message.State.PAUSED, paused_at=timezone.now(),
                                                 next_run_at=None, last_error_message="token expired",
                                                 last_error_status=401)
    body = api.get(f"{URL}{message.pk}/").json()
    assert (body["state"], body["last_error_message"], body["last_error_status"], body["next_run_at"]) == (
        "paused", "token expired", 401, None)


def test_list_is_scoped_and_filters(api, cohort, connection, other_project):
    first = make_message(cohort, connection)
    other_cohort = CohortFactory(project=api.project)
    second = make_message(other_cohort, connection, name="Second")
    Message.objects.filter(pk=second.pk).update(state=Message.State.PAUSED)
    theirs = CohortFactory(project=other_project)
    make_message(theirs, ConnectionFactory(project=other_project))

    def ids(query=""):
        return [m["id"] for m in api.get(f"{URL}{query}").json()["results"]]

    assert ids() == [first.pk, second.pk]
    assert ids("?state=paused") == [second.pk]
    assert ids(f"?cohort={cohort.pk}") == [first.pk]
    assert ids(f"?connection={connection.pk}&state=active") == [first.pk]
    response = api.get(f"{URL}?state=sleeping&cohort=abc")
    assert response.status_code == 400
    assert set(response.json()) == {"state", "cohort"}


def test_change_a_message_reschedules_it(api, cohort, connection):
    message = make_message(cohort, connection)
    response = api.patch(f"{URL}{message.pk}/", {"schedule": "recurring", "cadence": "weekly",
                                                 "days_of_week": [4], "time_of_day": "18:00",
                                                 "limit_count": 1, "limit_days": 30, "name": "Friday nudge"})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["name"], body["schedule"], body["cadence"], body["days_of_week"], body["limit_days"]) == (
        "Friday nudge", "recurring", "weekly", [4], 30)
    message.refresh_from_db()
    assert message.next_run_at.astimezone(zoneinfo.ZoneInfo("UTC")).weekday() == 4


def test_change_refuses_invalid_values_by_field(api, cohort, connection, other_project):
    message = make_message(cohort, connection)
    assert list(api.patch(f"{URL}{message.pk}/", {"cadence": "daily"}).json()) == ["cadence"]  # an ASAP message
    theirs = ConnectionFactory(project=other_project)
    response = api.patch(f"{URL}{message.pk}/", {"connection": theirs.pk})
    assert response.status_code == 400 and list(response.json()) == ["connection"]
    message.refresh_from_db()
    assert (message.cadence, message.connection_id) == ("asap", connection.pk)


def test_delete(api, cohort, connection):
    message = make_message(cohort, connection)
    assert api.delete(f"{URL}{message.pk}/").status_code == 204
    assert not Message.objects.filter(pk=message.pk).exists()


def test_another_projects_message_is_a_404_everywhere(api, other_project, receiver):
    theirs = make_message(CohortFactory(project=other_project),
                          ConnectionFactory(project=other_project, url=receiver.url()))
    ProfileFactory(project=other_project)
    run = MessageRun.objects.create(message=theirs, status=MessageRun.Status.SUCCEEDED)
    for method, path in [("get", ""), ("patch", ""), ("delete", ""), ("post", "run/"), ("post", "pause/"),
                         ("post", "resume/"), ("post", "test/")]:
        assert getattr(api, method)(f"{URL}{theirs.pk}/{path}").status_code == 404, (method, path)
    assert api.get(f"{RUNS_URL}{run.pk}/").status_code == 404
    assert api.get(f"{RUNS_URL}?message={theirs.pk}").json()["results"] == []
    assert receiver.requests == []
    theirs.refresh_from_db()
    assert theirs.state == Message.State.ACTIVE and MessageRun.objects.count() == 1


# --- Actions ------------------------------------------------------------------------------


def test_run_queues_a_run_and_answers_202_with_its_id(api, cohort, connection):
    message = make_message(cohort, connection)
    response = api.post(f"{URL}{message.pk}/run/")
    assert response.status_code == 202
    run = MessageRun.objects.get(pk=response.json()["id"])
    assert (run.message, run.status, run.trigger) == (message, MessageRun.Status.QUEUED, "api")
    assert response["Location"] == f"{RUNS_URL}{run.pk}/"
    assert response.json()["status"] == "queued"


def test_run_queues_the_task_on_commit(api, cohort, connection, django_capture_on_commit_callbacks, monkeypatch):
    from campaigns import tasks

    queued = []
    monkeypatch.setattr(tasks.run_message, "apply_async", lambda args, kwargs, **options: queued.append((args, kwargs)))
    message = make_message(cohort, connection)
    with django_capture_on_commit_callbacks(execute=True):
        run_id = api.post(f"{URL}{message.pk}/run/").json()["id"]
    assert queued == [((message.pk,), {"trigger": "api", "run_id": run_id})]


def test_run_of_a_paused_message_is_a_409(api, cohort, connection):
    message = make_message(cohort, connection)
    api.post(f"{URL}{message.pk}/pause/")
    response = api.post(f"{URL}{message.pk}/run/")
    assert response.status_code == 409
    assert response.json() == {"detail": "The message is paused; resume it first."}
    assert not MessageRun.objects.exists()


def test_pause_and_resume(api, cohort, connection, mailoutbox):
    message = make_message(cohort, connection)
    body = api.post(f"{URL}{message.pk}/pause/").json()
    assert (body["state"], body["next_run_at"]) == ("paused", None) and body["paused_at"] is not None
    assert mailoutbox == []  # a manual pause emails nobody
    assert api.post(f"{URL}{message.pk}/pause/").json()["paused_at"] == body["paused_at"]  # no change
    body = api.post(f"{URL}{message.pk}/resume/").json()
    assert (body["state"], body["paused_at"]) == ("active", None) and body["next_run_at"] is not None
    again = api.post(f"{URL}{message.pk}/resume/").json()
    assert (again["state"], again["next_run_at"]) == ("active", body["next_run_at"])  # no change


# --- Test send ------------------------------------------------------------------------------


def test_test_send_posts_5_random_profiles_and_marks_nobody(api, cohort, connection, receiver):
    set_members(cohort, [f"u{n}" for n in range(8)])
    message = make_message(cohort, connection)

    response = api.post(f"{URL}{message.pk}/test/")

    assert response.status_code == 200
    body = response.json()
    (request,) = receiver.requests
    assert request.headers["content-type"].startswith("application/x-www-form-urlencoded")
    users = form_users(request)
    assert len(users) == 5 and all(set(user) == {"$distinct_id", "$properties"} for user in users)
    assert (body["outcome"], body["http_status"]) == ("success", 200)
    assert body["distinct_ids"] == [user["$distinct_id"] for user in users]
    assert set(body["distinct_ids"]) <= {f"u{n}" for n in range(8)}
    assert API_KEY not in response.content.decode() and PASSWORD not in response.content.decode()
    assert not MessageSend.objects.exists() and not MessageRun.objects.exists()


def test_test_send_reports_a_refusal(api, cohort, connection, receiver):
    set_members(cohort, ["a", "b"])
    message = make_message(cohort, connection)
    receiver.reply(Reply(status=401, body={"status": "failure", "error": {"code": 401, "message": "bad token"}}))

    body = api.post(f"{URL}{message.pk}/test/").json()

    assert (body["outcome"], body["http_status"]) == ("pause", 401)
    assert "bad token" in body["response_excerpt"]
    assert sorted(body["distinct_ids"]) == ["a", "b"]
    assert not MessageSend.objects.exists()
    message.refresh_from_db()
    assert message.state == Message.State.ACTIVE  # a test never pauses the message


# --- History ------------------------------------------------------------------------------


def test_a_real_run_is_read_back_with_its_batches(api, cohort, connection, receiver):
    set_members(cohort, [f"u{n:03d}" for n in range(120)])
    message = make_message(cohort, connection)
    run = message_run(message_id=message.pk, trigger="api")

    listed = api.get(f"{RUNS_URL}?message={message.pk}").json()["results"]
    body = api.get(f"{RUNS_URL}{run.pk}/").json()

    assert [r["id"] for r in listed] == [run.pk] and "attempts" not in listed[0]
    assert (body["status"], body["users_count"], body["sent_count"], body["total_batches"],
            body["batches_delivered"]) == ("succeeded", 120, 120, 3, 3)
    assert [(a["page_number"], a["action"], a["outcome"]) for a in body["attempts"]] == [
        (1, "users", "success"), (2, "users", "success"), (3, "users", "success")]
    assert sorted(len(form_users(r)) for r in receiver.requests) == [20, 50, 50]


def test_runs_newest_first_filtered_by_message(api, cohort, connection):
    message, other = make_message(cohort, connection), make_message(cohort, connection, name="Other")
    old = MessageRun.objects.create(message=message, status=MessageRun.Status.SUCCEEDED)
    MessageRun.objects.filter(pk=old.pk).update(started_at=timezone.now() - timedelta(hours=1))
    new = MessageRun.objects.create(message=message, status=MessageRun.Status.FAILED, error_message="503",
                                    http_status=503)
    theirs = MessageRun.objects.create(message=other, status=MessageRun.Status.SUCCEEDED)

    assert [r["id"] for r in api.get(RUNS_URL).json()["results"]] == [theirs.pk, new.pk, old.pk]
    assert [r["id"] for r in api.get(f"{RUNS_URL}?message={message.pk}").json()["results"]] == [new.pk, old.pk]
    assert api.get(f"{RUNS_URL}?message=abc").status_code == 400


def test_runs_are_read_only(api, cohort, connection):
    run = MessageRun.objects.create(message=make_message(cohort, connection))
    assert api.delete(f"{RUNS_URL}{run.pk}/").status_code == 405
    assert api.post(RUNS_URL, {}).status_code == 405


def test_no_credentials(client):
    assert client.get(URL).status_code == 401
    assert client.get(RUNS_URL).status_code == 401


def test_the_keys_creator_owns_the_message(project, cohort, connection):
    person = UserFactory(username="grace")
    body = key_client(project, created_by=person).post(URL, {"cohort": cohort.pk, "connection": connection.pk,
                                                             "name": "x"}).json()
    assert Message.objects.get(pk=body["id"]).created_by == person


# Committed for real, as a request is: the row is committed, then the enqueue fails.
@pytest.mark.django_db(transaction=True)
def test_run_answers_503_and_leaves_nothing_behind_when_the_broker_is_down(api, cohort, connection, broker_down):
    message = make_message(cohort, connection)
    response = api.post(f"{URL}{message.pk}/run/")
    assert response.status_code == 503
    assert not MessageRun.objects.filter(message=message).exists()
