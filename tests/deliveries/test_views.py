"""The sync pages (deliveries/views.py) through Django's test client: who sees what, the run
history, the POST-only actions, run anchors and the alerts panel."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from alerts.models import Alert, AlertFiring
from cohorts.services import cohort_size_record
from deliveries.models import Sync, SyncRun
from tests.factories import DeliveryAttemptFactory, SyncFactory, SyncRunFactory
from tests.support.pages import fire, sync_in, sync_url

pytestmark = pytest.mark.django_db


def test_another_projects_sync_is_a_404_and_its_actions_change_nothing(member_client, project):
    other = SyncFactory(state=Sync.State.PAUSED, last_error_message="bad token", next_run_at=None)

    assert member_client.get(sync_url(other)).status_code == 404
    for action in ("resume", "run", "refresh"):
        assert member_client.post(sync_url(other, action)).status_code == 404
    other.refresh_from_db()
    assert (other.state, other.force_full) == (Sync.State.PAUSED, False)
    assert not SyncRun.objects.filter(sync=other).exists()


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


@pytest.mark.parametrize("button, text", [
    ("run", "The sync is finished; a one-time export runs once."),
    ("resume", "The sync is finished; a one-time export cannot be resumed."),
    ("refresh", "The sync is finished; a one-time export does not run again."),
])
def test_a_button_the_syncs_state_refuses_says_why_from_the_service(member_client, project, button, text):
    sync = sync_in(project, mode=Sync.Mode.ONE_TIME, state=Sync.State.FINISHED, next_run_at=None)

    response = member_client.post(sync_url(sync, button), follow=True)

    assert [(m.level_tag, m.message) for m in response.context["messages"]] == [("error", text)]
    sync.refresh_from_db()
    assert (sync.state, sync.force_full) == (Sync.State.FINISHED, False)
    assert not SyncRun.objects.filter(sync=sync).exists()
