"""End to end in a real browser (Debian's headless chromium): a user finds a paused sync and its
error, resumes it and watches a run appear; an operator creates a connection in the admin and
sends a test; nobody sees another project's sync. Screenshots go to test-artifacts/."""

import re

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the `_playwright` fixture skips (or, in CI, fails) these tests
    expect = None

from cohorts.models import Project
from deliveries import tasks
from deliveries.models import Sync, SyncRun
from integrations.models import Connection
from tests.conftest import run_now, set_members
from tests.factories import SyncFactory, UserFactory
from tests.support.receiver import Reply

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "correct-horse-battery"


@pytest.fixture
def queued_runs(monkeypatch) -> list[tuple]:
    """Run tasks the server queues are kept here, for the test to run in the foreground."""
    queued = []
    monkeypatch.setattr(tasks.run_sync, "delay", lambda *args, **kwargs: queued.append((args, kwargs)))
    return queued


def user_with_project(username: str, project_name: str):
    user = UserFactory(username=username)
    user.set_password(PASSWORD)
    user.save()
    project = Project.objects.create(name=project_name)
    project.members.add(user)
    return user, project


def log_in(page, base_url: str, username: str, path: str = "/") -> None:
    page.goto(base_url + path)
    expect(page).to_have_url(re.compile(r"/login/"))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


@pytest.fixture
def paused_sync(make_sync, receiver):
    """A user's project with a sync the receiver refused (after seven good runs), and two others."""
    user, project = user_with_project("ada", "Growth")
    members = [f"person-{n:03d}" for n in range(64)]
    sync = make_sync(members=members[:30])
    Project.objects.filter(pk=sync.cohort.project_id).update(name="Growth team")
    sync.cohort.project.members.add(user)
    sync.cohort.name, sync.connection.name = "Churn risk", "CRM webhook"
    sync.cohort.save()
    sync.connection.save()
    assert run_now(sync).status == SyncRun.Status.SUCCEEDED
    for start, end in [(4, 36), (6, 45), (6, 52), (10, 50), (9, 58), (15, 60)]:  # the cohort drifts and grows
        set_members(sync.cohort, members[start:end])
        assert run_now(sync).status == SyncRun.Status.SUCCEEDED
    set_members(sync.cohort, members[12:64])
    receiver.reply(Reply(status=401, body={"status": "failure",
                                           "error": {"code": 401, "message": "Invalid API key: it was revoked"}}))
    assert run_now(sync).status == SyncRun.Status.PAUSED
    SyncFactory(cohort__project=project, cohort__name="Trial users", connection__name="Braze webhook",
                snapshot_size=1840)
    SyncFactory(cohort__project=project, cohort__name="Power users", connection__name="Ads audience",
                last_error_message="502 Bad Gateway", last_error_status=502)
    return sync


def test_a_user_resumes_a_paused_sync_and_watches_a_run_appear(
    page, live_server, paused_sync, queued_runs, receiver, artifacts
):
    log_in(page, live_server.url, "ada")

    # The dashboard: the paused sync first, its receiver's message beside it.
    expect(page.get_by_role("heading", name="Your syncs")).to_be_visible()
    first_row = page.locator("tr.sync-row").first
    expect(first_row).to_contain_text("Paused")
    expect(first_row).to_contain_text("Churn risk")
    expect(first_row).to_contain_text("Invalid API key: it was revoked")
    expect(first_row).to_contain_text("HTTP 401")
    expect(page.locator("tr.sync-row").nth(1)).to_contain_text("Failing")
    page.screenshot(path=artifacts / "dashboard.png", full_page=True)

    # The sync page: the error, the history, the chart.
    first_row.get_by_role("link", name=re.compile("Churn risk")).click()
    expect(page).to_have_url(f"{live_server.url}/syncs/{paused_sync.pk}/")
    expect(page.locator(".alert")).to_contain_text("Invalid API key: it was revoked")
    expect(page.locator("table.runs tbody.run")).to_have_count(8)
    expect(page.locator("svg.chart__svg")).to_be_visible()
    expect(page.get_by_role("button", name="Run now")).to_have_count(0)
    page.screenshot(path=artifacts / "sync-page-paused.png", full_page=True)

    page.get_by_role("button", name="Resume").click()
    expect(page.locator(".messages")).to_contain_text("Resumed")
    # Active again, still marked failing until a run succeeds.
    expect(page.locator(".page-head .badge")).to_have_text(re.compile("Failing"))
    paused_sync.refresh_from_db()
    assert paused_sync.state == Sync.State.ACTIVE

    page.get_by_role("button", name="Run now").click()
    expect(page.locator(".messages")).to_contain_text("is queued")
    newest = page.locator("table.runs tbody.run").first
    expect(newest).to_contain_text("Queued")
    ((args, kwargs),) = queued_runs
    tasks.run_sync(*args, **kwargs)  # the worker's part, in the foreground

    page.reload()
    newest = page.locator("table.runs tbody.run").first
    expect(page.locator("table.runs tbody.run")).to_have_count(9)
    expect(newest).to_contain_text("Succeeded")
    expect(newest).to_contain_text("manual")
    newest.locator("summary").click()
    expect(newest.locator("table.attempts")).to_contain_text("add_members")
    expect(page.locator(".alert")).to_have_count(0)  # the success cleared the stored error
    expect(page.locator(".page-head .badge")).to_have_text(re.compile("Active"))
    assert receiver.requests[-1].action == "remove_members"
    page.screenshot(path=artifacts / "sync-page.png", full_page=True)


def test_a_user_cannot_see_another_projects_sync(page, live_server):
    user_with_project("ada", "Growth")
    other = SyncFactory(cohort__name="Someone else's cohort")

    log_in(page, live_server.url, "ada")
    expect(page.get_by_role("heading", name="Your syncs")).to_be_visible()
    expect(page.locator("main")).not_to_contain_text("Someone else's cohort")

    response = page.goto(f"{live_server.url}/syncs/{other.pk}/")
    assert response.status == 404
    expect(page.locator("main")).not_to_contain_text("Someone else's cohort")


def test_an_operator_creates_a_connection_and_sends_a_test(page, live_server, receiver, artifacts):
    operator = UserFactory(username="root", is_staff=True, is_superuser=True)
    operator.set_password(PASSWORD)
    operator.save()
    project = Project.objects.create(name="Growth")

    page.goto(f"{live_server.url}/admin/login/")
    page.get_by_label("Username:").fill("root")
    page.get_by_label("Password:").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.goto(f"{live_server.url}/admin/integrations/connection/add/")
    page.get_by_label("Project:", exact=True).select_option(str(project.pk))
    page.get_by_label("Name:", exact=True).fill("CRM webhook")
    page.get_by_label("Url:", exact=True).fill(receiver.url())
    page.get_by_label("API key (sent as x-api-key):", exact=True).fill("sk_live_secret_key")
    headers = page.get_by_label("Custom headers:", exact=True)
    headers.fill('{"X-1": "a", "X-2": "b", "X-3": "c", "X-4": "d", "X-5": "e", "X-6": "f"}')
    page.get_by_role("button", name="Save and continue editing").click()

    # Six headers: a clear error, and the key typed is not sent back to the page.
    expect(page.locator(".errorlist")).to_contain_text("At most 5 custom headers are allowed (got 6).")
    assert page.get_by_label("API key (sent as x-api-key):", exact=True).input_value() == ""
    page.get_by_label("API key (sent as x-api-key):", exact=True).fill("sk_live_secret_key")
    headers.fill('{"X-Team": "growth"}')
    page.get_by_role("button", name="Save and continue editing").click()
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")
    connection = Connection.objects.get(name="CRM webhook")
    assert (connection.api_key, connection.headers) == ("sk_live_secret_key", {"X-Team": "growth"})
    assert "sk_live_secret_key" not in page.content()

    page.get_by_role("button", name="Send a test page").click()
    message = page.locator(".messagelist .success")
    expect(message).to_contain_text("Test page to “CRM webhook”: success, HTTP 200")
    expect(message).to_contain_text('"status": "success"')
    ((request),) = receiver.requests
    assert (request.action, request.headers["x-team"], request.headers["x-api-key"]) == (
        "add_members", "growth", "sk_live_secret_key"
    )
    page.screenshot(path=artifacts / "admin-connection-test.png", full_page=True)


def test_the_test_receiver_inbox_shows_pages_pretty_printed(page, live_server, client):
    user_with_project("ada", "Growth")
    client.post("/receiver/demo/", data='{"action": "members", "parameters": {"mixpanel_session_id": "s-1", '
                '"members": [{"mixpanel_distinct_id": "A"}]}}', content_type="application/json")

    log_in(page, live_server.url, "ada", path="/receiver/demo/")

    expect(page.get_by_role("heading", name="Test receiver inbox “demo”")).to_be_visible()
    body = page.locator(".inbox-item pre").first
    expect(body).to_contain_text('"mixpanel_distinct_id": "A"')
    assert "\n" in body.inner_text()  # indented, one key a line
