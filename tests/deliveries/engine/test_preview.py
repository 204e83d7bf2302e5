"""engine/preview.py: the next run's plan, counts and first page, with nothing sent and nothing changed;
and its three doors (`runsync --dry-run`, the API's preview action, the sync page's button)."""

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from cohorts.models import CohortSize
from deliveries.engine.preview import sync_preview
from deliveries.models import SnapshotMember, StagedMember, Sync, SyncRun
from outbound.sender import MASKED
from tests.api.conftest import key_client
from tests.conftest import run_now, set_members
from tests.factories import UserFactory
from tests.support.receiver import Reply

pytestmark = pytest.mark.django_db


def state_of(sync: Sync) -> tuple:
    """Everything a preview must leave as it was."""
    sync.refresh_from_db()
    return (sync.snapshot_at, sync.snapshot_size, sync.snapshot_generation, sync.next_run_at, sync.claim_token,
            sync.claimed_until, sync.force_full, SyncRun.objects.filter(sync=sync).count(),
            StagedMember.objects.count(), SnapshotMember.objects.filter(sync_id=sync.pk).count(),
            CohortSize.objects.filter(cohort=sync.cohort).count())


def without_ids(body: str) -> dict:
    """A Mixpanel page minus what differs from run to run (its session and page ids)."""
    page = json.loads(body)
    page["parameters"].pop("mixpanel_session_id")
    page["parameters"]["page_info"].pop("page_id", None)
    return page


def test_a_first_run_preview_shows_the_members_and_the_first_page_exactly_as_sent(
    receiver, make_sync, django_capture_on_commit_callbacks,
):
    sync = make_sync(members=["a", "b", "c"])
    sync.connection.page_size = 2
    sync.connection.save()
    before = state_of(sync)

    with django_capture_on_commit_callbacks() as callbacks:
        preview = sync_preview(sync=sync)

    assert callbacks == []  # the cohort size it staged told no follower (messages, alerts)

    assert (preview.kind, preview.reason) == (SyncRun.Kind.FULL, "first run")
    assert (preview.members_count, preview.adds_count, preview.removes_count) == (3, 0, 0)
    assert (preview.total_pages, preview.pages) == (2, {"members": 2})
    assert preview.first_page.action == "members" and preview.first_page.members == 2
    assert receiver.requests == [] and state_of(sync) == before
    run_now(sync)
    sent = receiver.requests[0]
    assert without_ids(preview.first_page.body) == without_ids(sent.body.decode())
    assert preview.first_page.headers["Content-Type"] == sent.headers["content-type"]


def test_the_preview_of_a_stopped_run_shows_its_resumption_from_the_first_undelivered_page(
        receiver, make_sync, settings):
    sync = make_sync(members=["a", "b", "c", "d", "e"])
    sync.connection.page_size = 2
    sync.connection.save()
    receiver.reply(Reply(), *[Reply(status=503)] * (len(settings.COHORTSYNC_RETRY_DELAYS) + 1))
    stopped = run_now(sync)
    receiver.clear()
    before = state_of(sync)

    preview = sync_preview(sync=sync)

    assert (preview.kind, preview.reason) == (
        SyncRun.Kind.FULL, f"resumes the stopped run {stopped.session_id} from page 2 of 3")
    assert (preview.members_count, preview.total_pages) == (5, 3)
    assert receiver.requests == [] and state_of(sync) == before
    run_now(sync)
    sent = receiver.requests[0]  # the resumption's first page, byte for byte
    assert preview.first_page.body == sent.body.decode()
    assert preview.first_page.headers["webhook-id"] == sent.headers["webhook-id"]


def test_a_diff_preview_counts_adds_and_removes_and_changes_nothing(receiver, make_sync):
    sync = make_sync(members=["a", "b", "c"])
    assert run_now(sync).status == SyncRun.Status.SUCCEEDED
    set_members(sync.cohort, ["b", "c", "d", "e"])
    receiver.clear()
    before = state_of(sync)

    preview = sync_preview(sync=sync)

    assert (preview.kind, preview.reason) == (SyncRun.Kind.DIFF, "diff")
    assert (preview.adds_count, preview.removes_count) == (2, 1)
    assert preview.pages == {"add_members": 1, "remove_members": 1}
    assert [m["mixpanel_distinct_id"] for m in json.loads(preview.first_page.body)["parameters"]["members"]] == [
        "d", "e"]
    assert receiver.requests == [] and state_of(sync) == before
    run = run_now(sync)
    assert (run.kind, run.adds_count, run.removes_count) == (SyncRun.Kind.DIFF, 2, 1)


def test_secrets_are_masked_in_the_headers_and_redacted_from_the_body(receiver, make_sync):
    sync = make_sync(members=["a"], properties=["token"])
    connection = sync.connection
    connection.auth_username, connection.auth_password = "user", "basic-password"
    connection.api_key = "the-api-key"
    connection.headers = {"X-Tenant-Secret": "tenant-secret"}
    connection.signing_secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    connection.save()
    sync.cohort.project.profiles.filter(distinct_id="a").update(properties={"token": "the-api-key"})
    sync = Sync.objects.select_related("cohort", "connection").get(pk=sync.pk)

    page = sync_preview(sync=sync).first_page

    for name in ("Authorization", "x-api-key", "X-Tenant-Secret", "webhook-signature"):
        assert page.headers[name] == MASKED, name
    assert page.headers["webhook-id"] and page.headers["webhook-timestamp"]
    shown = json.dumps(page.headers) + page.body
    for secret in ("basic-password", "the-api-key", "tenant-secret", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"):
        assert secret not in shown


def test_runsync_dry_run_prints_the_plan_and_sends_nothing(receiver, make_sync):
    sync = make_sync(members=["a", "b"])
    out = StringIO()
    call_command("runsync", str(sync.pk), "--dry-run", stdout=out)
    text = out.getvalue()
    assert "nothing was sent" in text and "Next run: full (first run)" in text
    assert "2 members" in text and '"mixpanel_distinct_id":"a"' in text.replace(" ", "")
    assert receiver.requests == [] and not SyncRun.objects.filter(sync=sync).exists()


def test_the_api_preview_answers_the_plan_and_the_first_page(receiver, make_sync):
    sync = make_sync(members=["a"])
    response = key_client(sync.cohort.project).post(f"/api/v1/syncs/{sync.pk}/preview/")
    assert response.status_code == 200, response.content
    data = response.json()
    assert (data["kind"], data["members_count"], data["total_pages"]) == ("full", 1, 1)
    assert data["first_page"]["action"] == "members" and data["error"] == ""
    assert receiver.requests == [] and not SyncRun.objects.filter(sync=sync).exists()


def test_the_sync_page_previews_the_next_run_on_post(receiver, make_sync):
    sync = make_sync(members=["a"])
    person = UserFactory()
    sync.cohort.project.members.add(person)
    client = Client()
    client.force_login(person)
    page_url = reverse("deliveries:sync_detail", kwargs={"sync_id": sync.pk})
    assert "Preview next run" in client.get(page_url).content.decode()
    url = reverse("deliveries:sync_preview", kwargs={"sync_id": sync.pk})
    assert client.get(url).status_code == 405
    response = client.post(url)
    assert response.status_code == 200
    assert "Preview of the next run" in response.content.decode() and "first run" in response.content.decode()
    assert receiver.requests == [] and not SyncRun.objects.filter(sync=sync).exists()
