"""syncs/ and runs/: exports, their actions and their history."""

from datetime import timedelta

import pytest
from django.utils import timezone

from deliveries.models import Sync, SyncRun
from tests.api.conftest import key_client
from tests.conftest import run_now
from tests.factories import (
    CohortFactory,
    ConnectionFactory,
    DeliveryAttemptFactory,
    SyncFactory,
    SyncRunFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

URL = "/api/v1/syncs/"


@pytest.fixture
def cohort(api):
    return CohortFactory(project=api.project)


@pytest.fixture
def connection(api):
    return ConnectionFactory(project=api.project)


def test_create_an_export(api, cohort, connection):
    response = api.post(URL, {"cohort": cohort.pk, "connection": connection.pk, "mode": "dynamic",
                              "interval_minutes": 60, "properties": ["plan", "country"]})
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["state"], body["mode"], body["interval_minutes"], body["properties"]) == (
        "active", "dynamic", 60, ["plan", "country"])
    assert body["next_run_at"] is not None and body["snapshot_at"] is None and body["snapshot_size"] == 0
    assert Sync.objects.get(pk=body["id"]).created_by is None  # a key made by the command belongs to nobody


def test_defaults(api, cohort, connection):
    body = api.post(URL, {"cohort": cohort.pk, "connection": connection.pk}).json()
    assert (body["mode"], body["interval_minutes"], body["properties"]) == ("dynamic", 30, [])


def test_the_keys_creator_gets_the_pause_emails(project, cohort, connection):
    person = UserFactory(username="grace")
    client = key_client(project, created_by=person)
    body = client.post(URL, {"cohort": cohort.pk, "connection": connection.pk}).json()
    sync = Sync.objects.get(pk=body["id"])
    assert sync.created_by == person and list(sync.notify_users.all()) == [person]


def test_a_session_user_sets_up_syncs_as_themselves(session_api, session_user, project):
    cohort, connection = CohortFactory(project=project), ConnectionFactory(project=project)
    body = session_api.post(URL, {"cohort": cohort.pk, "connection": connection.pk}).json()
    assert Sync.objects.get(pk=body["id"]).created_by == session_user


@pytest.mark.parametrize("interval", [0, -5, 7 * 24 * 60 + 1])
def test_interval_bounds(api, cohort, connection, interval):
    response = api.post(URL, {"cohort": cohort.pk, "connection": connection.pk, "interval_minutes": interval})
    assert response.status_code == 400
    assert list(response.json()) == ["interval_minutes"]


def test_at_most_50_properties(api, cohort, connection):
    response = api.post(URL, {"cohort": cohort.pk, "connection": connection.pk,
                              "properties": [f"p{i}" for i in range(51)]})
    assert response.status_code == 400
    assert response.json() == {"properties": ["Ensure this field has no more than 50 elements."]}
    ok = api.post(URL, {"cohort": cohort.pk, "connection": connection.pk, "properties": [f"p{i}" for i in range(50)]})
    assert ok.status_code == 201


def test_properties_are_listed_once(api, cohort, connection):
    response = api.post(URL, {"cohort": cohort.pk, "connection": connection.pk, "properties": ["a", "a"]})
    assert response.json() == {"properties": ["Each property may be listed once."]}


def test_cohort_and_connection_of_other_projects_do_not_exist(api, cohort, connection, other_project):
    theirs_cohort = CohortFactory(project=other_project)
    theirs_connection = ConnectionFactory(project=other_project)
    response = api.post(URL, {"cohort": theirs_cohort.pk, "connection": theirs_connection.pk})
    assert response.status_code == 400
    assert set(response.json()) == {"cohort", "connection"}
    assert "does not exist" in response.json()["cohort"][0]


def test_a_connection_of_another_of_the_users_projects_is_refused(session_api, session_user, project, other_project):
    other_project.members.add(session_user)
    cohort, connection = CohortFactory(project=project), ConnectionFactory(project=other_project)
    response = session_api.post(URL, {"cohort": cohort.pk, "connection": connection.pk})
    assert response.json() == {"connection": ["The connection belongs to another project than the cohort."]}


def test_read_shows_state_error_last_success_next_run_and_delivered_count(api, cohort, connection):
    now = timezone.now()
    sync = SyncFactory(cohort=cohort, connection=connection, state=Sync.State.PAUSED,
                       last_error_message="token expired", last_error_status=401, snapshot_at=now - timedelta(hours=1),
                       snapshot_size=1234, next_run_at=None, paused_at=now)
    body = api.get(f"{URL}{sync.pk}/").json()
    assert body["state"] == "paused"
    assert (body["last_error_message"], body["last_error_status"], body["snapshot_size"]) == ("token expired", 401,
                                                                                              1234)
    assert body["snapshot_at"] is not None and body["next_run_at"] is None
    assert (body["cohort"], body["connection"]) == (cohort.pk, connection.pk)


def test_list_filters(api, cohort, connection, other_project):
    active = SyncFactory(cohort=cohort, connection=connection)
    paused = SyncFactory(cohort__project=api.project, state=Sync.State.PAUSED)
    SyncFactory(cohort__project=other_project)

    def ids(query=""):
        return [s["id"] for s in api.get(f"{URL}{query}").json()["results"]]

    assert ids() == [active.pk, paused.pk]
    assert ids("?state=paused") == [paused.pk]
    assert ids(f"?cohort={cohort.pk}") == [active.pk]
    assert ids(f"?connection={paused.connection_id}") == [paused.pk]
    assert ids(f"?state=active&connection={paused.connection_id}") == []
    response = api.get(f"{URL}?state=sleeping&cohort=abc")
    assert response.status_code == 400
    assert set(response.json()) == {"state", "cohort"}


def test_delete(api, cohort, connection):
    sync = SyncFactory(cohort=cohort, connection=connection)
    assert api.delete(f"{URL}{sync.pk}/").status_code == 204
    assert not Sync.objects.filter(pk=sync.pk).exists()


def test_another_projects_sync_is_a_404_everywhere(api, other_project):
    sync = SyncFactory(cohort__project=other_project)
    run = SyncRunFactory(sync=sync)
    for method, path in [("get", ""), ("delete", ""), ("post", "run/"), ("post", "pause/"), ("post", "resume/"),
                         ("post", "refresh/"), ("get", "runs/")]:
        assert getattr(api, method)(f"{URL}{sync.pk}/{path}").status_code == 404, (method, path)
    assert api.get(f"/api/v1/runs/{run.pk}/").status_code == 404
    sync.refresh_from_db()
    assert sync.state == Sync.State.ACTIVE and not sync.force_full
    assert SyncRun.objects.filter(sync=sync).count() == 1


# --- Actions ------------------------------------------------------------------------------


def test_run_queues_a_run_and_answers_202_with_its_id(api, cohort, connection):
    sync = SyncFactory(cohort=cohort, connection=connection)
    response = api.post(f"{URL}{sync.pk}/run/")
    assert response.status_code == 202
    run = SyncRun.objects.get(pk=response.json()["id"])
    assert (run.sync, run.status, run.trigger) == (sync, SyncRun.Status.QUEUED, "api")
    assert response["Location"] == f"/api/v1/runs/{run.pk}/"
    assert response.json()["status"] == "queued"


def test_run_queues_the_task_on_commit(api, cohort, connection, django_capture_on_commit_callbacks, monkeypatch):
    from deliveries import tasks

    queued = []
    monkeypatch.setattr(tasks.run_sync, "apply_async", lambda args, kwargs, **options: queued.append((args, kwargs)))
    sync = SyncFactory(cohort=cohort, connection=connection)
    with django_capture_on_commit_callbacks(execute=True):
        run_id = api.post(f"{URL}{sync.pk}/run/").json()["id"]
    assert queued == [((sync.pk,), {"trigger": "api", "run_id": run_id})]


@pytest.mark.parametrize("state, message", [
    (Sync.State.PAUSED, "The sync is paused; resume it first."),
    (Sync.State.FINISHED, "The sync is finished; a one-time export runs once."),
])
def test_run_of_an_inactive_sync_is_a_409(api, cohort, connection, state, message):
    sync = SyncFactory(cohort=cohort, connection=connection, state=state)
    response = api.post(f"{URL}{sync.pk}/run/")
    assert response.status_code == 409
    assert response.json() == {"detail": message}
    assert not SyncRun.objects.exists()


def test_pause_and_resume(api, cohort, connection, mailoutbox):
    sync = SyncFactory(cohort=cohort, connection=connection)
    body = api.post(f"{URL}{sync.pk}/pause/").json()
    assert (body["state"], body["last_error_message"], body["next_run_at"]) == ("paused", "paused through the API",
                                                                                None)
    assert mailoutbox == []  # a manual pause emails nobody
    assert api.post(f"{URL}{sync.pk}/pause/").json()["paused_at"] == body["paused_at"]  # no change
    body = api.post(f"{URL}{sync.pk}/resume/").json()
    assert body["state"] == "active" and body["next_run_at"] is not None
    assert api.post(f"{URL}{sync.pk}/resume/").json()["state"] == "active"


def test_a_finished_sync_cannot_be_paused_or_resumed(api, cohort, connection):
    sync = SyncFactory(cohort=cohort, connection=connection, mode=Sync.Mode.ONE_TIME, state=Sync.State.FINISHED)
    assert api.post(f"{URL}{sync.pk}/pause/").status_code == 409
    assert api.post(f"{URL}{sync.pk}/resume/").status_code == 409
    response = api.post(f"{URL}{sync.pk}/refresh/")
    assert (response.status_code, response.json()) == (
        409, {"detail": "The sync is finished; a one-time export does not run again."})


def test_refresh_makes_the_next_run_a_full_members_load(api, receiver, make_sync):
    sync = make_sync(members=["a", "b"])
    client = key_client(sync.cohort.project)
    run_now(sync)
    run_now(sync)
    assert sync.runs.first().kind == SyncRun.Kind.DIFF
    assert client.post(f"{URL}{sync.pk}/refresh/").json()["force_full"] is True
    receiver.clear()
    run = run_now(sync)
    assert (run.kind, run.reason) == (SyncRun.Kind.FULL, "full refresh")
    assert [r.action for r in receiver.requests] == ["members"]


# --- History ------------------------------------------------------------------------------


def test_runs_newest_first_and_a_run_with_its_attempts(api, cohort, connection):
    sync = SyncFactory(cohort=cohort, connection=connection)
    old = SyncRunFactory(sync=sync, started_at=timezone.now() - timedelta(hours=2))
    new = SyncRunFactory(sync=sync, status=SyncRun.Status.FAILED, error_message="503 Service Unavailable",
                         http_status=503, pages_delivered=0)
    for attempt in (1, 2):
        DeliveryAttemptFactory(source=new, attempt_number=attempt, outcome="transient", http_status=503,
                               error="503 Service Unavailable", response_excerpt="busy")
    SyncRunFactory()  # another sync's
    listed = api.get(f"{URL}{sync.pk}/runs/").json()
    assert [r["id"] for r in listed["results"]] == [new.pk, old.pk]
    assert "attempts" not in listed["results"][0]
    body = api.get(f"/api/v1/runs/{new.pk}/").json()
    assert (body["status"], body["error_message"], body["http_status"]) == ("failed", "503 Service Unavailable", 503)
    assert [(a["page_number"], a["attempt_number"], a["outcome"], a["http_status"]) for a in body["attempts"]] == [
        (1, 1, "transient", 503), (1, 2, "transient", 503)]
    assert set(body["attempts"][0]) == {"page_number", "page_id", "action", "attempt_number", "outcome",
                                        "http_status", "latency_ms", "error", "response_excerpt", "created_at"}


def test_a_real_run_is_read_back(receiver, make_sync):
    sync = make_sync(members=["a", "b", "c"])
    client = key_client(sync.cohort.project)
    run = run_now(sync)
    body = client.get(f"/api/v1/runs/{run.pk}/").json()
    assert (body["kind"], body["status"], body["members_count"], body["total_pages"], body["pages_delivered"]) == (
        "full", "succeeded", 3, 1, 1)
    assert body["attempts"][0]["action"] == "members" and body["attempts"][0]["outcome"] == "success"
    sync_body = client.get(f"{URL}{sync.pk}/").json()
    assert sync_body["snapshot_size"] == 3 and sync_body["snapshot_at"] is not None


def test_runs_are_read_only(api, cohort, connection):
    run = SyncRunFactory(sync=SyncFactory(cohort=cohort, connection=connection))
    assert api.delete(f"/api/v1/runs/{run.pk}/").status_code == 405
    assert api.get("/api/v1/runs/").status_code == 404


def test_no_credentials(client):
    assert client.get(URL).status_code == 401
    assert client.get("/api/v1/runs/1/").status_code == 401


# Committed for real, as a request is: the row is committed, then the enqueue fails.
@pytest.mark.django_db(transaction=True)
def test_run_answers_503_and_leaves_nothing_behind_when_the_broker_is_down(api, cohort, connection, broker_down):
    sync = SyncFactory(cohort=cohort, connection=connection)
    response = api.post(f"{URL}{sync.pk}/run/")
    assert response.status_code == 503
    assert response.json()["detail"].startswith("The run was not queued: the task queue is unavailable")
    assert not SyncRun.objects.filter(sync=sync).exists()
