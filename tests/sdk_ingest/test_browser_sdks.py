"""The vendors' own BROWSER libraries (analytics.js 2.0 `@segment/analytics-next` and
mixpanel-js `mixpanel-browser`, the pinned bundles in browser_sdks/) in Debian's headless
chromium, pointed at a live Cohortsync from a page of another origin: CORS, the preflights and
the libraries' own wire formats are the real ones. What they send is stored; a wrong key stores
nothing, and the library can read the refusal (the 401 carries the CORS headers too)."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from cohorts.models import Event, Profile
from tests.pages.conftest import _async_unsafe_allowed, _playwright, browser, page  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db(transaction=True)

BUNDLES = Path(__file__).parent / "browser_sdks"
ANALYTICS_JS = BUNDLES / "analytics-next-1.84.3.min.js"
MIXPANEL_JS = BUNDLES / "mixpanel-browser-2.83.0.min.js"
MIXPANEL_SNIPPET = BUNDLES / "mixpanel-browser-2.83.0-snippet.min.js"
WAIT_SECONDS = 15


class Site:
    """The shop's own site: a loopback server of its own (another origin, so every call to
    Cohortsync is cross-origin; a real loopback server, as Chrome refuses a page it sees as public
    the loopback address space) serving a page and the bundles. A request anywhere but Cohortsync
    and this site is refused and recorded: the libraries must not need Segment's or Mixpanel's hosts."""

    def __init__(self, tab, live_server):
        self.page, self.api, self.exclusive = tab, live_server.url, live_server.exclusive
        api = self.api
        self.files: dict[str, tuple[str, bytes]] = {}
        self.elsewhere: list[str] = []
        self.answers: list[tuple[str, str, int]] = []  # (method, path, status) of Cohortsync's answers
        self.console: list[str] = []
        files = self.files

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                content_type, body = files.get(urlsplit(self.path).path, ("text/plain", None))
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        tab.context.route("**/*", self._route)
        tab.on("response", lambda r: r.url.startswith(api) and self.answers.append(
            (r.request.method, urlsplit(r.url).path, r.status)))
        tab.on("console", lambda message: self.console.append(message.text))

    def _route(self, route):
        if route.request.url.startswith((self.api, self.origin)):
            route.continue_()
        else:
            self.elsewhere.append(route.request.url)
            route.abort()

    def open(self, html: str, **files: Path) -> None:
        for name, file in files.items():
            self.files[f"/{name}"] = ("text/javascript", file.read_bytes())
        self.files["/"] = ("text/html", f"<!doctype html><title>shop</title>{html}".encode())
        self.page.goto(self.origin + "/")

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def site(page, live_server):  # noqa: F811  (the fixture imported above)
    site = Site(page, live_server)
    yield site
    site.close()


def wait_for(condition, what: str, site: Site):
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        with site.exclusive:  # SQLite: not while a request uses the one test connection
            value = condition()
        if value:
            break
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {WAIT_SECONDS} s; Cohortsync answered {site.answers}; "
                        f"refused elsewhere: {site.elsewhere}; console: {site.console[-10:]}")
        site.page.wait_for_timeout(100)  # the page's timers run meanwhile
    return value


# --- analytics.js ------------------------------------------------------------------------------

# The README's configuration: `cdnURL` is Cohortsync, whose settings name it as the API host.
SEGMENT_CALLS = """async ({writeKey, cdnURL, batching}) => {
  const options = batching ? {integrations: {'Segment.io': {
    deliveryStrategy: {strategy: 'batching', config: {size: 4, timeout: 100}}}}} : {};
  const [analytics] = await AnalyticsNext.AnalyticsBrowser.load({writeKey, cdnURL}, options);
  const calls = [
    analytics.identify('ada', {email: 'ada@example.com', firstName: 'Ada', plan: 'pro'}),
    analytics.track('Played song', {song: 's1'}),
    analytics.page('Docs', 'Pricing', {path: '/pricing'}),
    analytics.track('Played song', {song: 's2'}),
  ];
  const contexts = await Promise.all(calls);
  return contexts.map((ctx) => (ctx.failedDelivery() ? String(ctx.failedDelivery().reason) : null));
}"""


@pytest.mark.parametrize("batching", [False, True], ids=["standard", "batching"])
def test_analytics_js_sends_to_cohortsync(site, ingest_project, write_key, batching):
    site.open("<script src='/analytics.js'></script>", **{"analytics.js": ANALYTICS_JS})
    failures = site.page.evaluate(SEGMENT_CALLS, {"writeKey": write_key, "cdnURL": site.api, "batching": batching})

    assert failures == [None] * 4
    events = Event.objects.filter(project=ingest_project)
    wait_for(lambda: events.count() == 3 and Profile.objects.filter(project=ingest_project).exists(),
             "3 events and a profile stored", site)
    ada = Profile.objects.get(project=ingest_project, distinct_id="ada")
    assert (ada.email, ada.first_name, ada.properties) == ("ada@example.com", "Ada", {"plan": "pro"})
    assert sorted(events.values_list("name", flat=True)) == ["$page", "Played song", "Played song"]
    assert {event.distinct_id for event in events} == {"ada"}  # analytics.js keeps the user id
    page_event = events.get(name="$page")
    assert page_event.properties["path"] == "/pricing" and page_event.properties["name"] == "Pricing"
    assert page_event.properties["$context"]["page"]["url"] == site.origin + "/"
    for event in events:  # analytics.js's own fields are not properties
        assert not {"writeKey", "sentAt", "_metadata", "messageId"} & event.properties.keys()
    paths = {path for _, path, _ in site.answers}
    assert paths == ({"/v1/projects/%s/settings" % write_key, "/v1/b"} if batching
                     else {"/v1/projects/%s/settings" % write_key, "/v1/i", "/v1/t", "/v1/p"})
    assert not [answer for answer in site.answers if answer[2] >= 400]  # no refusal, no failure retried
    assert site.elsewhere == []


def test_analytics_js_with_a_wrong_write_key_stores_nothing(site, ingest_project, write_key):
    site.open("<script src='/analytics.js'></script>", **{"analytics.js": ANALYTICS_JS})
    failures = site.page.evaluate(SEGMENT_CALLS, {"writeKey": "csw_not-a-key", "cdnURL": site.api, "batching": False})

    # The library read the 401 (had the answer no CORS headers, it would see a network error and retry).
    assert failures == ["NonRetryableError: Non-retryable error: 401"] * 4
    assert not Event.objects.filter(project=ingest_project).exists()
    assert not Profile.objects.filter(project=ingest_project).exists()


# --- mixpanel-js -------------------------------------------------------------------------------


def open_mixpanel(site: Site, token: str, **config) -> None:
    """Mixpanel's snippet, loading the library from this site (MIXPANEL_CUSTOM_LIB_URL), and the
    README's configuration: `api_host` is Cohortsync."""
    config = {"api_host": site.api, "batch_flush_interval_ms": 100, **config}
    site.open(
        "<script>var MIXPANEL_CUSTOM_LIB_URL = '/mixpanel.js';</script>"
        f"<script>{MIXPANEL_SNIPPET.read_text()}</script>"
        f"<script>mixpanel.init({json.dumps(token)}, {json.dumps(config)});</script>",
        **{"mixpanel.js": MIXPANEL_JS},
    )
    site.page.wait_for_function("() => window.mixpanel && window.mixpanel.__loaded")


def test_mixpanel_js_sends_to_cohortsync(site, ingest_project, mixpanel_token):
    open_mixpanel(site, mixpanel_token)
    site.page.evaluate("""() => {
      mixpanel.identify('ada');
      mixpanel.people.set({$email: 'ada@example.com', $first_name: 'Ada', plan: 'pro'});
      mixpanel.track('Played song', {song: 's1'});
      mixpanel.track('Played song', {song: 's2'});
    }""")

    events = Event.objects.filter(project=ingest_project, name="Played song")
    wait_for(lambda: events.count() == 2 and Profile.objects.filter(project=ingest_project, distinct_id="ada",
                                                                    email="ada@example.com").exists(),
             "2 events and ada's profile stored", site)
    ada = Profile.objects.get(project=ingest_project, distinct_id="ada")
    assert ada.first_name == "Ada" and ada.properties["plan"] == "pro"
    assert {event.distinct_id for event in events} == {"ada"}
    assert sorted(event.properties["song"] for event in events) == ["s1", "s2"]
    assert "token" not in events[0].properties
    paths = {path for method, path, _ in site.answers if method == "POST"}
    assert {"/track/", "/engage/"} <= paths  # batched, base64 `data=` (Mixpanel's default off its own hosts)
    assert not [answer for answer in site.answers if answer[2] >= 400]
    assert site.elsewhere == []


def test_mixpanel_js_with_a_wrong_token_stores_nothing(site, ingest_project, mixpanel_token):
    open_mixpanel(site, "cst_not-a-token", verbose=True)  # the callback gets the HTTP status
    answer = site.page.evaluate("""() => new Promise((resolve) => {
      mixpanel.track('Played song', {song: 's1'}, {send_immediately: true}, resolve);
    })""")

    # Read by the library (withCredentials: the origin reflected, credentials allowed, on the 401 too).
    # (Without CORS headers on the refusal the browser hides it: "Bad HTTP status: 0".)
    assert answer["status"] == 0 and answer["error"] == "Bad HTTP status: 401 Unauthorized"
    assert not Event.objects.filter(project=ingest_project).exists()
