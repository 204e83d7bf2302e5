"""The built-in test receiver's page after real runs (Debian's headless chromium): a sync of
1,200 members delivers to /receiver/demo/ on the live server, then a churn run; the page shows
each page's member count and folds the long bodies. Screenshot: test-artifacts/receiver-page.png."""

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the `_playwright` fixture skips (or, in CI, fails) these tests
    expect = None

from deliveries.models import SyncRun
from tests.conftest import run_now, set_members
from tests.factories import CohortFactory, ConnectionFactory, SyncFactory
from tests.pages.test_browser import log_in, user_with_project

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def delivered(live_server):
    """A full load of 1,200 members (pages of 1000 and 200), then 3 in and 3 out."""
    user, project = user_with_project("ada", "Growth")
    cohort = CohortFactory(project=project, name="Demo cohort")
    people = [f"demo-user-{n:04d}" for n in range(1_200)]
    set_members(cohort, people)
    connection = ConnectionFactory(project=project, url=f"{live_server.url}/receiver/demo/")
    sync = SyncFactory(cohort=cohort, connection=connection)
    assert run_now(sync).status == SyncRun.Status.SUCCEEDED
    set_members(cohort, people[3:] + ["new-1", "new-2", "new-3"])
    assert run_now(sync).status == SyncRun.Status.SUCCEEDED
    return sync


def test_the_receiver_page_counts_each_pages_members_and_folds_long_bodies(page, live_server, delivered, artifacts):
    log_in(page, live_server.url, "ada", path="/receiver/demo/")

    items = page.locator(".inbox-item")
    expect(items).to_have_count(4)  # newest first: remove, add, members 2/2, members 1/2
    expect(items.locator("h2 code")).to_have_text(["remove_members", "add_members", "members", "members"])
    expect(items.locator(".inbox-count")).to_have_text(["3 members", "3 members", "200 members", "1000 members"])

    short, long = items.nth(0), items.nth(3)
    expect(short.locator("pre")).to_be_visible()  # a short body is shown as it is
    expect(short.locator("details.inbox-body")).to_have_count(0)
    body = long.locator("details.inbox-body")
    expect(body.locator("summary")).to_have_text("Body (4016 lines)")
    expect(body.locator("pre")).to_be_hidden()
    page.screenshot(path=artifacts / "receiver-page.png", full_page=True)

    body.locator("summary").click()

    expect(body.locator("pre")).to_be_visible()
    expect(body.locator("pre")).to_contain_text('"mixpanel_distinct_id": "demo-user-0000"')


def test_the_size_chart_reads_well_with_one_run(page, live_server, make_sync, artifacts):
    """The demo's first minute: one full load. Its bar, its dot and their numbers and time show."""
    user, _ = user_with_project("ada", "Growth")
    sync = make_sync(members=[f"demo-user-{n:03d}" for n in range(25)])
    sync.cohort.project.members.add(user)
    (run,) = [run_now(sync)]
    assert run.status == SyncRun.Status.SUCCEEDED

    log_in(page, live_server.url, "ada", path=f"/syncs/{sync.pk}/")

    chart = page.locator("svg.chart__svg")
    expect(chart.locator("rect")).to_have_count(1)  # the full load's bar
    expect(chart.locator("circle")).to_have_count(1)  # the size measured by the run
    numbers = chart.locator("g[font-weight='600'] text")
    expect(numbers).to_have_text(["25", "25"])  # the size above its dot, the members above the bar
    expect(chart).to_contain_text(f"{run.started_at:%Y-%m-%d %H:%M}")
    bar, dot = chart.locator("rect").bounding_box(), chart.locator("circle").bounding_box()
    assert bar["height"] > 20 and bar["width"] >= 10 and dot["width"] >= 8  # plainly visible
    chart.screenshot(path=artifacts / "size-chart-one-run.png")
