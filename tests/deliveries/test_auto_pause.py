"""Auto-pause of a sync (outbound.autopause through deliveries.services): N failed runs in a row
or H hours of failures pause it, say why, and email its people; a success or a resume resets."""

from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from deliveries.models import Notification, Sync, SyncRun
from tests.api.conftest import key_client
from tests.conftest import run_now
from tests.factories import UserFactory
from tests.support.receiver import Reply

pytestmark = pytest.mark.django_db


@pytest.fixture
def failing(receiver):
    receiver.respond_with(lambda request: Reply(status=503))
    return receiver


def test_n_failed_runs_in_a_row_pause_the_sync_and_email_its_people(failing, make_sync, settings):
    settings.COHORTSYNC_AUTO_PAUSE_FAILED_RUNS = 3
    creator = UserFactory(email="ada@example.com")
    sync = make_sync(members=["a"], created_by=creator)

    runs = [run_now(sync) for _ in range(3)]

    assert [run.status for run in runs] == [SyncRun.Status.FAILED, SyncRun.Status.FAILED, SyncRun.Status.PAUSED]
    assert runs[2].error_message.startswith("503")  # the run keeps the receiver's answer
    sync.refresh_from_db()
    assert (sync.state, sync.auto_paused, sync.next_run_at) == (Sync.State.PAUSED, True, None)
    assert sync.last_error_message.startswith("Paused automatically: 3 runs failed in a row (last error: 503")
    (email,) = mail.outbox
    assert email.to == ["ada@example.com"] and "kept failing" in email.body and "3 runs failed" in email.body
    assert Notification.objects.get(sync=sync).run_id == runs[2].pk
    assert run_now(sync) is None  # paused: no more runs


def test_a_success_resets_the_streak(receiver, make_sync, settings):
    settings.COHORTSYNC_AUTO_PAUSE_FAILED_RUNS = 3
    sync = make_sync(members=["a"])
    receiver.respond_with(lambda request: Reply(status=500))
    run_now(sync), run_now(sync)
    assert sync.consecutive_failed_runs == 2 and sync.failing_since is not None
    receiver.respond_with(None)
    assert run_now(sync).status == SyncRun.Status.SUCCEEDED
    assert (sync.consecutive_failed_runs, sync.failing_since) == (0, None)
    receiver.respond_with(lambda request: Reply(status=500))
    run_now(sync), run_now(sync)
    assert sync.state == Sync.State.ACTIVE


def test_hours_of_failure_without_a_success_pause_even_below_the_run_count(failing, make_sync, settings):
    settings.COHORTSYNC_AUTO_PAUSE_HOURS = 72
    sync = make_sync(members=["a"])
    run_now(sync)
    Sync.objects.filter(pk=sync.pk).update(failing_since=timezone.now() - timedelta(hours=73))
    run = run_now(sync)
    assert run.status == SyncRun.Status.PAUSED and sync.state == Sync.State.PAUSED
    assert "no successful run for 72 hours, 2 failed runs" in sync.last_error_message


def test_the_sync_s_own_limits_override_the_defaults_and_zero_turns_a_rule_off(failing, make_sync, settings):
    settings.COHORTSYNC_AUTO_PAUSE_FAILED_RUNS = 1
    settings.COHORTSYNC_AUTO_PAUSE_HOURS = 1
    sync = make_sync(members=["a"], auto_pause_failed_runs=0, auto_pause_hours=0)
    run_now(sync)
    Sync.objects.filter(pk=sync.pk).update(failing_since=timezone.now() - timedelta(days=30))
    run_now(sync)
    assert sync.state == Sync.State.ACTIVE and sync.consecutive_failed_runs == 2
    Sync.objects.filter(pk=sync.pk).update(auto_pause_failed_runs=3)
    assert run_now(sync).status == SyncRun.Status.PAUSED


def test_a_resume_gives_a_fresh_streak(failing, make_sync, settings):
    from deliveries.services import sync_resume

    settings.COHORTSYNC_AUTO_PAUSE_FAILED_RUNS = 2
    sync = make_sync(members=["a"])
    run_now(sync), run_now(sync)
    assert sync.state == Sync.State.PAUSED
    sync_resume(sync=sync)
    assert (sync.consecutive_failed_runs, sync.failing_since, sync.auto_paused) == (0, None, False)
    assert run_now(sync).status == SyncRun.Status.FAILED and sync.state == Sync.State.ACTIVE


def test_the_api_sets_and_shows_the_overrides_with_clear_errors(make_sync):
    sync = make_sync(members=["a"])
    client = key_client(sync.cohort.project)
    url = f"/api/v1/syncs/{sync.pk}/"
    response = client.patch(url, {"auto_pause_failed_runs": 5, "auto_pause_hours": 24}, format="json")
    assert response.status_code == 200, response.content
    data = response.json()
    assert (data["auto_pause_failed_runs"], data["auto_pause_hours"], data["consecutive_failed_runs"]) == (5, 24, 0)
    assert client.patch(url, {"auto_pause_failed_runs": None}, format="json").json()["auto_pause_failed_runs"] is None
    bad = client.patch(url, {"auto_pause_hours": -1}, format="json")
    assert bad.status_code == 400 and "auto_pause_hours" in bad.content.decode()
    created = client.post("/api/v1/syncs/", {"cohort": sync.cohort_id, "connection": sync.connection_id,
                                             "auto_pause_failed_runs": 4}, format="json")
    assert created.status_code == 201 and created.json()["auto_pause_failed_runs"] == 4


def test_the_admin_edits_the_overrides(make_sync):
    sync = make_sync(members=["a"])
    admin = UserFactory(is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(admin)
    page = client.get(reverse("admin:deliveries_sync_change", args=[sync.pk])).content.decode()
    assert 'name="auto_pause_failed_runs"' in page and 'name="auto_pause_hours"' in page


def test_the_sync_page_and_dashboard_say_it_was_paused_automatically(failing, make_sync, settings):
    settings.COHORTSYNC_AUTO_PAUSE_FAILED_RUNS = 1
    person = UserFactory()
    sync = make_sync(members=["a"])
    sync.cohort.project.members.add(person)
    run_now(sync)
    client = Client()
    client.force_login(person)
    page = client.get(reverse("deliveries:sync_detail", kwargs={"sync_id": sync.pk})).content.decode()
    assert "Paused automatically: the runs kept failing" in page and "1 run failed in a row" in page
    dashboard = client.get(reverse("pages:dashboard")).content.decode()
    assert "Paused automatically" in dashboard
