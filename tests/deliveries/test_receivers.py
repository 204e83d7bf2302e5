"""The engine against receivers as they are written in the wild (issue 13): each case ends
with the receiver's copy equal to the cohort. The receiver is tests/support/receiver.py's
CohortStore: `members` only adds, 404 for a cohort it does not know, ids stripped."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core import mail
from django.core.management import CommandError, call_command
from django.urls import reverse
from rest_framework.test import APIClient

from access.services import api_key_create
from cohorts.models import CohortMember
from deliveries import services
from deliveries.models import Sync, SyncRun
from integrations.models import Connection
from integrations.send_test import connection_send_test
from tests.conftest import run_now, set_members
from tests.factories import UserFactory
from tests.support.receiver import CohortStore, Reply

pytestmark = pytest.mark.django_db


def cohort_ids(cohort) -> set[str]:
    return set(CohortMember.objects.filter(cohort=cohort).values_list("profile__distinct_id", flat=True))


@pytest.fixture
def store(receiver) -> CohortStore:
    store = CohortStore()
    receiver.respond_with(store)
    return store


def runsync(*args, out: StringIO | None = None) -> str:
    out = out or StringIO()
    call_command("runsync", *map(str, args), stdout=out, stderr=StringIO())
    return out.getvalue()


# --- 3. A receiver that forgets a cohort --------------------------------------------------


def paused_by_a_forgetful_receiver(make_sync, store) -> Sync:
    sync = make_sync(members=["a", "b", "c"])
    assert run_now(sync).status == SyncRun.Status.SUCCEEDED
    assert store.copy_of(sync.cohort_id) == {"a", "b", "c"}
    store.forget()
    set_members(sync.cohort, ["a", "b", "d"])

    run = run_now(sync)

    assert run.status == SyncRun.Status.PAUSED
    assert (sync.state, sync.last_error_status) == (Sync.State.PAUSED, 404)
    assert sync.last_error_message == (
        f"unknown cohort {sync.cohort_id} (the receiver does not know the cohort: resuming sends it whole, "
        "as a full load)"
    )
    assert run.error_message == sync.last_error_message
    assert "resuming sends it whole" in mail.outbox[-1].body
    return sync


def resume_from_the_admin(sync, client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    response = client.post("/admin/deliveries/sync/", {"action": "resume", "_selected_action": [sync.pk]})
    assert response.status_code == 302


def resume_from_the_status_page(sync, client):
    user = UserFactory()
    sync.cohort.project.members.add(user)
    client.force_login(user)
    response = client.post(reverse("deliveries:sync_resume", kwargs={"sync_id": sync.pk}))
    assert response.status_code == 302


def resume_from_the_api(sync, client):
    _, key = api_key_create(project=sync.cohort.project, name="tests")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert api.post(f"/api/v1/syncs/{sync.pk}/resume/").status_code == 200


def resume_from_the_service(sync, client):
    services.sync_resume(sync=sync)


@pytest.mark.parametrize("resume", [resume_from_the_admin, resume_from_the_status_page, resume_from_the_api,
                                    resume_from_the_service])
def test_a_sync_paused_by_a_404_resumes_with_a_full_load(make_sync, store, receiver, client, resume):
    sync = paused_by_a_forgetful_receiver(make_sync, store)

    resume(sync, client)
    sync.refresh_from_db()
    assert (sync.state, sync.force_full) == (Sync.State.ACTIVE, True)
    run = run_now(sync)

    assert (run.status, run.kind) == (SyncRun.Status.SUCCEEDED, SyncRun.Kind.FULL)
    assert store.copy_of(sync.cohort_id) == cohort_ids(sync.cohort) == {"a", "b", "d"}
    assert sync.force_full is False
    receiver.clear()
    set_members(sync.cohort, ["a", "b"])
    assert run_now(sync).kind == SyncRun.Kind.DIFF  # back to diffs once the receiver has its copy
    assert store.copy_of(sync.cohort_id) == {"a", "b"}


def test_runsync_resume_of_a_sync_paused_by_a_410_sends_a_full_load(make_sync, store, receiver):
    sync = make_sync(members=["a"])
    assert run_now(sync).status == SyncRun.Status.SUCCEEDED
    set_members(sync.cohort, ["a", "b"])
    receiver.reply(Reply(410, {"detail": "This cohort was deleted."}))
    assert run_now(sync).status == SyncRun.Status.PAUSED
    store.forget()

    output = runsync(sync.pk, "--resume")

    assert "(full, full refresh): succeeded" in output
    assert store.copy_of(sync.cohort_id) == {"a", "b"}


def test_a_sync_paused_by_another_refusal_resumes_with_a_diff(make_sync, store, receiver):
    sync = make_sync(members=["a"])
    run_now(sync)
    set_members(sync.cohort, ["a", "b"])
    receiver.reply(Reply(401, {"detail": "Invalid token."}))
    assert run_now(sync).status == SyncRun.Status.PAUSED
    assert sync.last_error_message == "Invalid token."  # no full-load note

    services.sync_resume(sync=sync)

    assert sync.force_full is False
    assert run_now(sync).kind == SyncRun.Kind.DIFF
    assert store.copy_of(sync.cohort_id) == {"a", "b"}


# --- 4. Answers classified as an operator would -------------------------------------------


def test_a_drf_receivers_401_says_why(make_sync, receiver):
    sync = make_sync(members=["a"])
    receiver.reply(Reply(401, {"detail": "Authentication credentials were not provided."}))

    run_now(sync)

    assert (sync.last_error_status, sync.last_error_message) == (401, "Authentication credentials were not provided.")


@pytest.mark.parametrize("status", [301, 405, 413, 415])
def test_refusals_that_used_to_fail_every_interval_pause_once_and_email(make_sync, receiver, status):
    sync = make_sync(members=["a"])
    receiver.reply(Reply(status, headers={"Location": "https://moved.example.com/"} if status == 301 else {}))

    assert run_now(sync).status == SyncRun.Status.PAUSED
    assert run_now(sync) is None  # paused: the next interval does not try again

    assert len(receiver.requests) == 1
    assert len(mail.outbox) == 1


def test_our_own_address_guard_is_reported_as_our_refusal(make_sync, receiver, settings, client):
    settings.COHORTSYNC_ALLOW_PRIVATE_URLS = False
    sync = make_sync(members=["a"])

    with pytest.raises(CommandError) as caught:
        runsync(sync.pk)

    sync.refresh_from_db()
    assert receiver.requests == []
    assert (sync.state, sync.last_error_status) == (Sync.State.PAUSED, None)
    for text in (str(caught.value), sync.last_error_message, mail.outbox[0].body, mail.outbox[0].alternatives[0][0]):
        assert "Cohortsync refused to connect" in text
        assert "COHORTSYNC_ALLOW_PRIVATE_URLS" in text
    for email_text in (mail.outbox[0].body, mail.outbox[0].alternatives[0][0]):
        assert "Cohortsync itself refused to send" in email_text
        assert "receiver refused" not in email_text.lower()
    user = UserFactory()
    sync.cohort.project.members.add(user)
    client.force_login(user)
    for url in (reverse("deliveries:sync_detail", kwargs={"sync_id": sync.pk}), reverse("pages:dashboard")):
        html = client.get(url).content.decode()
        assert "COHORTSYNC_ALLOW_PRIVATE_URLS" in html
        assert "Cohortsync refused" in html
        assert "receiver refused" not in html.lower()


def test_a_template_that_raises_while_rendering_pauses_with_the_error(make_sync, receiver):
    sync = make_sync(members=["a"])
    # Saved before validation caught it: a filter that asserts on its argument.
    Connection.objects.filter(pk=sync.connection_id).update(
        format=Connection.Format.TEMPLATE, body_template='{"x": {{ input.cohort_name | truncate(-1) | tojson }}}'
    )

    run = run_now(sync)

    assert run.status == SyncRun.Status.PAUSED
    assert sync.state == Sync.State.PAUSED
    assert sync.last_error_message.startswith("the payload template failed on page 1: ")
    assert "truncate()" in sync.last_error_message
    assert receiver.requests == []
    assert run_now(sync) is None


def test_the_connection_test_counts_a_404_for_the_unknown_test_cohort_as_reachable(make_sync, store):
    sync = make_sync()

    result = connection_send_test(connection=sync.connection)

    assert (result.outcome, result.http_status) == ("success", 404)
    assert result.message == (
        "reachable and authenticated; the receiver does not know the test cohort "
        "(unknown cohort cohortsync-connection-test)"
    )


def test_the_connection_test_still_fails_on_a_404_page(make_sync, receiver):
    sync = make_sync()
    receiver.reply(Reply(404, "<html>Not here</html>", headers={"Content-Type": "text/html"}))

    result = connection_send_test(connection=sync.connection)

    assert (result.outcome, result.http_status) == ("pause", 404)
    assert result.message == "404 Not Found: <html>Not here</html>"


def test_runsync_says_what_a_stopped_run_delivered(make_sync, receiver):
    sync = make_sync(members=[f"u{i:02d}" for i in range(25)])
    Connection.objects.filter(pk=sync.connection_id).update(page_size=10)
    receiver.reply(Reply(), Reply(), Reply(400, {"error": {"message": "page too big", "code": 400}}))

    out = StringIO()
    with pytest.raises(CommandError, match="paused: page too big"):
        runsync(sync.pk, out=out)

    run = SyncRun.objects.get(sync=sync)
    assert (run.pages_delivered, run.total_pages) == (2, 3)
    stdout = out.getvalue()
    assert "Delivered 20 of 25 members (2/3 pages) before the run stopped; the next attempt resumes it from page 3." in stdout
    assert "Sent 25 members" not in stdout


def test_runsync_says_what_a_stopped_diff_delivered(make_sync, receiver):
    sync = make_sync(members=[f"u{i:02d}" for i in range(25)])
    Connection.objects.filter(pk=sync.connection_id).update(page_size=10)
    run_now(sync)
    set_members(sync.cohort, [f"u{i:02d}" for i in range(10, 40)])  # 15 adds, 10 removes
    receiver.reply(Reply(), Reply(), Reply(403))

    out = StringIO()
    with pytest.raises(CommandError):
        runsync(sync.pk, out=out)

    assert ("Delivered 15 of 15 add_members, 0 of 10 remove_members (2/3 pages) before the run stopped; the next "
            "attempt resumes it from page 3.") in out.getvalue()


# --- 2. Receivers whose `members` only adds -----------------------------------------------


def assert_refresh_then_removals(requests, run, removed: list[str]):
    """`members` pages in the run's session, then `remove_members` in a session of their own."""
    members = [r for r in requests if r.action == "members"]
    removals = [r for r in requests if r.action == "remove_members"]
    assert requests == members + removals
    assert {r.session_id for r in members} == {str(run.session_id)}
    assert [r.page_info for r in members] == [{"total_pages": len(members), "page_count": n}
                                              for n in range(1, len(members) + 1)]
    (removal_session,) = {r.session_id for r in removals}
    assert removal_session != str(run.session_id)
    assert [r.page_info for r in removals] == [{"total_pages": len(removals), "page_count": n}
                                               for n in range(1, len(removals) + 1)]
    assert sorted(m["mixpanel_distinct_id"] for r in removals for m in r.members) == sorted(removed)
    # Every page of the run has its own stable webhook id.
    assert len({r.headers["webhook-id"] for r in requests}) == len(requests) == run.total_pages


def test_a_full_refresh_after_churn_removes_what_an_add_only_receiver_kept(make_sync, store, receiver):
    before = [f"u{i:04d}" for i in range(2500)]
    sync = make_sync(members=before)
    run_now(sync)
    after = before[125:] + [f"n{i:04d}" for i in range(125)]  # 5 % churn
    set_members(sync.cohort, after)
    receiver.clear()

    out = StringIO()
    call_command("runsync", str(sync.pk), "--full", stdout=out)

    run = SyncRun.objects.filter(sync=sync).first()
    assert (run.kind, run.members_count, run.removes_count, run.total_pages) == (SyncRun.Kind.FULL, 2500, 125, 4)
    assert_refresh_then_removals(receiver.requests, run, removed=before[:125])
    assert store.copy_of(sync.cohort_id) == cohort_ids(sync.cohort) == set(after)
    assert "Sent 2500 members and 125 removes in 4/4 pages." in out.getvalue()
    receiver.clear()
    run_now(sync)  # the next diff has nothing left to mend
    assert [len(r.members) for r in receiver.requests] == [0, 0]


def test_the_full_run_after_the_three_day_expiry_removes_too(make_sync, store, receiver):
    sync = make_sync(members=["a", "b", "c"])
    run_now(sync)
    set_members(sync.cohort, ["a", "d"])
    Sync.objects.filter(pk=sync.pk).update(snapshot_at=sync.snapshot_at - timedelta(hours=73))
    receiver.clear()

    run = run_now(sync)

    assert (run.kind, run.reason) == (SyncRun.Kind.FULL, "snapshot expired")
    assert_refresh_then_removals(receiver.requests, run, removed=["b", "c"])
    assert store.copy_of(sync.cohort_id) == {"a", "d"}


def test_a_first_run_and_a_refresh_with_nobody_gone_send_no_removals(make_sync, store, receiver):
    sync = make_sync(members=["a", "b"])
    run_now(sync)
    set_members(sync.cohort, ["a", "b", "c"])

    run = run_now(sync, full=True)

    assert [r.action for r in receiver.requests] == ["members", "members"]
    assert run.removes_count == 0
    assert store.copy_of(sync.cohort_id) == {"a", "b", "c"}


def test_a_refresh_of_an_emptied_cohort_sends_an_empty_members_page_then_the_removals(make_sync, store, receiver):
    sync = make_sync(members=["a", "b"])
    run_now(sync)
    set_members(sync.cohort, [])
    receiver.clear()

    run = run_now(sync, full=True)

    assert [(r.action, len(r.members)) for r in receiver.requests] == [("members", 0), ("remove_members", 2)]
    assert store.copy_of(sync.cohort_id) == set()
    assert sync.snapshot_size == 0
    assert run.status == SyncRun.Status.SUCCEEDED
