"""Browser fixtures: Debian's headless chromium driven by Playwright's sync API, against
pytest-django's live server. No browser download: Playwright launches /usr/bin/chromium."""

from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections

from tests.conftest import _needs
from tests.support.pages import member, member_client, project  # noqa: F401  (the status pages' fixtures)

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 900}
TIMEOUT_MS = 15_000


@pytest.fixture(autouse=True)
def _async_unsafe_allowed(monkeypatch):
    """Playwright's sync API keeps an event loop in the test's thread; Django would then refuse
    the test's own ORM calls. Only these tests, which never share a connection across threads, allow it."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def _playwright():
    """Per test, not per session: while it runs, the thread holds an event loop that would trip
    other tests' ORM calls."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    _needs("Playwright for Python", sync_playwright is not None, how="pip install -e '.[test]'")
    with sync_playwright() as running:
        yield running
        # Django keeps connections per context, and Playwright's running loop gives the test a
        # context of its own: close the connections opened in it, or they outlive the test.
        connections.close_all()


@pytest.fixture
def browser(require_chromium, _playwright):
    browser = _playwright.chromium.launch(executable_path=require_chromium, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def artifacts() -> Path:
    """Screenshots land in test-artifacts/ (gitignored) at the repository root."""
    folder = Path(settings.BASE_DIR) / "test-artifacts"
    folder.mkdir(exist_ok=True)
    return folder
