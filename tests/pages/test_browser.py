"""End to end in a real browser (Debian's headless chromium): a user finds a paused sync and its
error, resumes it and watches a run appear; an operator creates a connection in the admin and
sends a test; nobody sees another project's sync; a user sends a test from a message page, and
follows a cohort link to its size history and an alert to the run that caused it.
Screenshots go to test-artifacts/."""

import re

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the `_playwright` fixture skips (or, in CI, fails) these tests
    expect = None

from alerts.models import Alert, AlertFiring
from campaigns.models import MessageRun, MessageSend
from campaigns.sending import message_run
from campaigns.services import message_create
from cohorts.models import Project
from deliveries import tasks
from deliveries.models import Sync, SyncRun
from integrations.models import Connection
from tests.conftest import run_now, set_members
from tests.factories import CohortFactory, ConnectionFactory, SyncFactory, UserFactory
from tests.support.receiver import Reply

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "correct-horse-battery"


@pytest.fixture
def queued_runs(monkeypatch) -> list[tuple]:
    """Run tasks the server queues are kept here, for the test to run in the foreground."""
    queued = []
    monkeypatch.setattr(tasks.run_sync, "apply_async", lambda args, kwargs, **options: queued.append((args, kwargs)))
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
    first_row.get_by_role("link", name="Churn risk to CRM webhook").click()
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

    # The refused run stopped with its pages left: running now resumes it, in the same row.
    page.get_by_role("button", name="Run now").click()
    expect(page.locator(".messages")).to_contain_text("is queued")
    newest = page.locator("table.runs tbody.run").first
    expect(newest).to_contain_text("Queued")
    expect(page.locator("table.runs tbody.run")).to_have_count(8)
    ((args, kwargs),) = queued_runs
    tasks.run_sync(*args, **kwargs)  # the worker's part, in the foreground

    page.reload()
    newest = page.locator("table.runs tbody.run").first
    expect(page.locator("table.runs tbody.run")).to_have_count(8)
    expect(newest).to_contain_text("Succeeded")
    expect(newest).to_contain_text("manual")
    expect(newest).to_contain_text("resumed 1×")
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

    # Six headers: a clear error, and the key typed is still there: no need to type it again.
    expect(page.locator(".errorlist")).to_contain_text("At most 5 custom headers are allowed (got 6).")
    assert page.get_by_label("API key (sent as x-api-key):", exact=True).input_value() == "sk_live_secret_key"
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
    _, project = user_with_project("ada", "Growth")
    ConnectionFactory(project=project, url=f"{live_server.url}/receiver/demo/")  # makes the inbox Growth's
    client.post("/receiver/demo/", data='{"action": "members", "parameters": {"mixpanel_session_id": "s-1", '
                '"members": [{"mixpanel_distinct_id": "A"}]}}', content_type="application/json")

    log_in(page, live_server.url, "ada", path="/receiver/demo/")

    expect(page.get_by_role("heading", name="Test receiver inbox “demo”")).to_be_visible()
    body = page.locator(".inbox-item pre").first
    expect(body).to_contain_text('"mixpanel_distinct_id": "A"')
    assert "\n" in body.inner_text()  # indented, one key a line


def test_a_user_sends_a_test_from_a_message_page_and_sees_the_receivers_answer(
    page, live_server, receiver, artifacts
):
    user, project = user_with_project("ada", "Growth")
    cohort = CohortFactory(project=project, name="Lapsed buyers")
    set_members(cohort, [f"buyer-{n:03d}" for n in range(120)])
    connection = ConnectionFactory(project=project, name="CRM form hook", url=receiver.url())
    message = message_create(cohort=cohort, connection=connection, name="Win back", schedule="recurring",
                             cadence="weekly", days_of_week=[0, 2], timezone="Europe/Paris", created_by=user)
    receiver.reply(Reply(status=200), Reply(status=503), Reply(status=200))  # batch 2 needs a second try
    assert message_run(message_id=message.pk).status == MessageRun.Status.SUCCEEDED
    sent_before = MessageSend.objects.filter(message=message).count()
    receiver.clear()
    receiver.reply(Reply(status=200, body={"status": "ok", "received": 5, "note": "test users parked in sandbox"}))

    log_in(page, live_server.url, "ada")
    row = page.locator("tr.message-row", has_text="Win back")
    expect(row).to_contain_text("Recurring, weekly on Mon and Wed at 09:00 Europe/Paris, at most 1 per 7 days per user")
    expect(row).to_contain_text("120")  # users sent
    row.get_by_role("link", name="Win back").click()

    expect(page).to_have_url(f"{live_server.url}/messages/{message.pk}/")
    expect(page.get_by_role("heading", name="Win back")).to_be_visible()
    expect(page.locator("#users-sent")).to_have_text("120")
    run = page.locator("table.runs tbody.run").first
    expect(run).to_contain_text("Succeeded")
    run.locator("summary").click()
    expect(run.locator("table.attempts tr.attempt")).to_have_count(4)  # 3 batches, one tried twice
    expect(run.locator("tr.attempt--transient")).to_contain_text("503")

    page.get_by_role("button", name="Send test").click()
    answer = page.locator("#test-send")
    expect(answer).to_contain_text("success")
    expect(answer).to_contain_text("HTTP 200")
    expect(answer).to_contain_text("test users parked in sandbox")
    expect(answer).to_contain_text("Nobody was marked sent")
    ((request),) = receiver.requests
    sent_ids = [user["$distinct_id"] for user in request.form_users]
    assert len(sent_ids) == 5
    expect(answer.locator(".test-send__users li")).to_have_text(sent_ids)
    assert MessageSend.objects.filter(message=message).count() == sent_before
    page.screenshot(path=artifacts / "message-page.png", full_page=True)

    page.reload()  # the answer is shown once; a reload does not post again
    expect(page.locator("#test-send")).to_have_count(0)
    assert len(receiver.requests) == 1


def test_a_user_follows_a_cohort_link_to_its_size_history_and_an_alert_to_its_run(
    page, live_server, paused_sync, artifacts
):
    refused = SyncRun.objects.filter(sync=paused_sync, status=SyncRun.Status.PAUSED).get()
    cohort = paused_sync.cohort
    size_alert = Alert.objects.create(project=cohort.project, name="Churn risk over 50", cohort=cohort,
                                      kind=Alert.Kind.COHORT_SIZE, operator=Alert.Operator.GREATER_THAN, threshold=50)
    latest = cohort.sizes.order_by("-computed_at", "-id").first()
    AlertFiring.objects.create(alert=size_alert, fired_at=latest.computed_at, current_value=latest.size,
                               sentence=f"Churn risk has {latest.size} users, above 50", payload={},
                               status=AlertFiring.Status.DELIVERED, cohort_size=latest)
    pause_alert = Alert.objects.create(project=cohort.project, name="CRM sync paused", sync=paused_sync,
                                       kind=Alert.Kind.SYNC_PAUSED, operator=Alert.Operator.IS)
    AlertFiring.objects.create(alert=pause_alert, fired_at=refused.started_at, current_value=1,
                               sentence="The sync Churn risk → CRM webhook paused: Invalid API key", payload={},
                               status=AlertFiring.Status.DELIVERED, sync_run=refused)

    log_in(page, live_server.url, "ada")
    page.locator("tr.sync-row").first.get_by_role("link", name="Churn risk", exact=True).click()

    expect(page).to_have_url(f"{live_server.url}/cohorts/{cohort.pk}/")
    history = page.locator("#size-history")
    expect(history.locator("svg.chart__svg")).to_be_visible()
    expect(history.locator("table.sizes tbody tr")).to_have_count(cohort.sizes.count())
    expect(history.locator("table.sizes tbody tr").first).to_contain_text(str(latest.size))
    expect(page.locator("#alerts")).to_contain_text(f"Churn risk has {latest.size} users, above 50")
    page.screenshot(path=artifacts / "cohort-page.png", full_page=True)

    page.locator("#syncs").get_by_role("link", name="Churn risk to CRM webhook").click()
    expect(page).to_have_url(f"{live_server.url}/syncs/{paused_sync.pk}/")
    page.locator("#alerts").get_by_role("link", name="The run that caused it").click()
    expect(page).to_have_url(f"{live_server.url}/syncs/{paused_sync.pk}/?run={refused.pk}#run-{refused.pk}")
    root_cause = page.locator(f"#run-{refused.pk}")
    expect(root_cause).to_contain_text("Paused")
    expect(root_cause.locator("table.attempts")).to_be_visible()  # unfolded: its refused page attempts
    expect(root_cause.locator("table.attempts")).to_contain_text("401")
    page.screenshot(path=artifacts / "sync-page-alert-root-cause.png", full_page=True)
