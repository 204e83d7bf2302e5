"""End to end in a real browser (Debian's headless chromium): an operator adds a sync in the admin
and its first run lands at a loopback receiver. The add goes through sync_create, so the sync is
due at once and the dispatcher picks it up. Screenshots go to test-artifacts/."""

import re

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the `_playwright` fixture skips (or, in CI, fails) these tests
    expect = None

from deliveries import dispatch, tasks
from deliveries.models import Sync, SyncRun
from tests.conftest import set_members
from tests.factories import CohortFactory, ConnectionFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "correct-horse-battery"


def test_an_operator_adds_a_sync_in_the_admin_and_its_first_run_lands(page, live_server, receiver, sent_run_tasks,
                                                                      artifacts):
    operator = UserFactory(username="root", is_staff=True, is_superuser=True)
    operator.set_password(PASSWORD)
    operator.save()
    cohort = CohortFactory(name="Churn risk")
    set_members(cohort, [f"person-{n:03d}" for n in range(30)])
    connection = ConnectionFactory(project=cohort.project, name="CRM webhook", url=receiver.url())

    page.goto(f"{live_server.url}/admin/login/")
    page.get_by_label("Username:").fill("root")
    page.get_by_label("Password:").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.goto(f"{live_server.url}/admin/deliveries/sync/add/")
    # What runs keep up to date is not the operator's to type.
    for internal in ("Next run at:", "State:", "Snapshot generation:", "Force full"):
        expect(page.get_by_label(internal)).to_have_count(0)
    page.get_by_label("Cohort:", exact=True).select_option(str(cohort.pk))
    page.get_by_label("Connection:", exact=True).select_option(str(connection.pk))
    page.get_by_label("Profile properties to export:", exact=True).fill('["plan"]')
    page.get_by_role("button", name="Save and continue editing").click()
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")

    sync = Sync.objects.get()
    assert sync.next_run_at is not None and sync.state == Sync.State.ACTIVE
    assert sync.created_by == operator
    # The change page shows the schedule and the snapshot, read-only.
    expect(page.locator(".field-next_run_at .readonly")).not_to_have_text("-")
    expect(page.locator(".field-snapshot_generation .readonly")).to_have_text("0")
    expect(page.locator(".field-cohort .readonly")).to_contain_text("Churn risk")

    # Beat's minute: the dispatcher finds the new sync due; the worker's part runs in the foreground.
    assert dispatch.syncs_dispatch_due() == [sync.pk]
    ((args, kwargs, _expires),) = sent_run_tasks  # what the dispatcher handed the broker
    tasks.run_sync(*args, **kwargs)

    ((request),) = receiver.requests
    assert request.action == "members"
    assert sorted(m["mixpanel_distinct_id"] for m in request.members) == [f"person-{n:03d}" for n in range(30)]

    page.reload()
    expect(page.locator(".field-snapshot_size .readonly")).to_have_text("30")
    page.locator(".field-status_page a").click()
    expect(page).to_have_url(f"{live_server.url}/syncs/{sync.pk}/")
    newest = page.locator("table.runs tbody.run").first
    expect(newest).to_contain_text("Succeeded")
    expect(page.locator(".page-head .badge")).to_have_text(re.compile("Active"))
    page.screenshot(path=artifacts / "admin-added-sync-first-run.png", full_page=True)

    page.goto(f"{live_server.url}/admin/deliveries/syncrun/?sync__id__exact={sync.pk}")
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    expect(page.locator("#result_list tbody tr").first).to_contain_text("Succeeded")
    assert SyncRun.objects.get().status == SyncRun.Status.SUCCEEDED
