"""The users' status pages (deliveries/views.py, deliveries/selectors.sync_list_for_user), through
Django's test client: who sees what, the order of the dashboard, the POST-only actions."""

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from cohorts.services import cohort_size_record
from deliveries import selectors
from deliveries.models import Sync, SyncRun
from tests.factories import (
    DeliveryAttemptFactory,
    ProjectFactory,
    SyncFactory,
    SyncRunFactory,
    UserFactory,
)

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


# --- Who sees what -----------------------------------------------------------------------


def test_pages_ask_anonymous_visitors_to_log_in(client, project):
    sync = sync_in(project)

    for url in ("/", sync_url(sync)):
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

    with django_assert_max_num_queries(6):  # session, user, syncs (with cohort, project, connection)
        response = member_client.get("/")

    assert len(response.context["syncs"]) == 8


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
    DeliveryAttemptFactory(run=first, response_excerpt='{"status": "success"}')
    DeliveryAttemptFactory(run=second, action="add_members", outcome="pause", http_status=401, latency_ms=87,
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
