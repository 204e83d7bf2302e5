"""What the browser SDKs need besides the server SDKs' wire format: CORS on the SDK endpoints (and
only there), analytics.js's paths, body write key and settings document, and Segment's
clock-skew correction. The real libraries in a real browser: test_browser_sdks.py."""

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.urls import URLPattern

from cohorts.models import Event, Profile
from sdk_ingest import urls as sdk_urls
from tests.sdk_ingest.test_api import _basic

ORIGIN = "https://shop.example"
NOW = lambda: datetime.now(tz=UTC)  # noqa: E731


def _text(client, path: str, body: dict, **headers):
    """As analytics.js posts: JSON as text/plain, from a page of another origin."""
    return client.post(path, json.dumps(body).encode(), content_type="text/plain", HTTP_ORIGIN=ORIGIN, **headers)


def _allows_origin(answer) -> bool:
    return (answer.headers.get("Access-Control-Allow-Origin") == ORIGIN
            and answer.headers.get("Access-Control-Allow-Credentials") == "true"
            and "origin" in answer.headers.get("Vary", "").lower())


# --- CORS ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/t", "/v1/batch", "/v1/projects/csw_x/settings", "/track/", "/engage"])
def test_preflight_is_answered_for_the_sdk_endpoints(client, path):
    answer = client.options(path, HTTP_ORIGIN=ORIGIN, HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
                            HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization,content-type,x-retry-count")
    assert answer.status_code == 200
    assert _allows_origin(answer)  # the origin itself, never `*`: mixpanel-js sends withCredentials
    assert "POST" in answer.headers["Access-Control-Allow-Methods"]
    allowed = {name.strip() for name in answer.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "content-encoding", "x-retry-count"} <= allowed


def test_refusals_carry_cors_headers_so_the_page_can_read_them(client, ingest_project, write_key):
    wrong_key = _text(client, "/v1/t", {"writeKey": "csw_wrong", "userId": "ada", "event": "Played"})
    not_json = client.post("/v1/t", b"{", content_type="text/plain", HTTP_ORIGIN=ORIGIN,
                           HTTP_AUTHORIZATION=_basic(write_key))
    too_large = client.post("/track/", b"data=%7B%7D", content_type="application/x-www-form-urlencoded",
                            HTTP_ORIGIN=ORIGIN, CONTENT_LENGTH=str(11 * 1024 * 1024))
    wrong_token = client.post("/track/?verbose=1", b"data=" + json.dumps(
        {"event": "Played", "properties": {"token": "cst_wrong", "distinct_id": "ada"}}).encode(),
        content_type="application/x-www-form-urlencoded", HTTP_ORIGIN=ORIGIN)
    unknown = client.post("/v1/nothing", b"{}", content_type="text/plain", HTTP_ORIGIN=ORIGIN)
    assert [a.status_code for a in (wrong_key, not_json, too_large, wrong_token, unknown)] == [401, 400, 413, 401, 404]
    assert all(_allows_origin(a) for a in (wrong_key, not_json, too_large, wrong_token, unknown))
    assert wrong_key.json()["code"] == "unauthorized"


@pytest.mark.parametrize("path", ["/api/v1/profiles/", "/api/schema/", "/login/", "/admin/login/", "/import"])
def test_no_cors_elsewhere(client, path):
    preflight = client.options(path, HTTP_ORIGIN=ORIGIN, HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST")
    plain = client.get(path, HTTP_ORIGIN=ORIGIN)
    for answer in (preflight, plain):
        assert not any(name.lower().startswith("access-control-") for name in answer.headers)


def test_every_browser_sdk_route_has_cors_and_import_has_not():
    """A route added to sdk_ingest/urls.py (e.g. Mixpanel's /groups) must be in CORS_URLS_REGEX."""
    routes = ["/" + str(p.pattern).replace("<str:write_key>", "k") for p in sdk_urls.urlpatterns
              if isinstance(p, URLPattern)]
    assert "/import" in routes and "/v1/t" in routes
    with_cors = {route for route in routes if re.match(settings.CORS_URLS_REGEX, route)}
    assert set(routes) - with_cors == {"/import", "/import/"}
    assert re.match(settings.CORS_URLS_REGEX, "/groups/")


# --- analytics.js -------------------------------------------------------------------------------


def test_analytics_js_write_key_in_a_text_plain_body(client, ingest_project, write_key):
    sent = NOW().isoformat()
    track = _text(client, "/v1/t", {"writeKey": write_key, "type": "track", "userId": "ada", "event": "Played",
                                    "properties": {"song": "s1"}, "timestamp": sent, "sentAt": sent,
                                    "messageId": "ajs-1", "_metadata": {"bundled": ["Segment.io"]},
                                    "integrations": {}})
    batch = _text(client, "/v1/b", {"writeKey": write_key, "sentAt": sent, "batch": [
        {"writeKey": write_key, "type": "identify", "userId": "ada", "traits": {"plan": "pro"}},
        {"writeKey": write_key, "type": "page", "anonymousId": "anon-1", "name": "Home", "timestamp": sent}]})
    for answer in (track, batch):
        assert answer.status_code == 200 and answer.json()["rejected"] == 0, answer.content
        assert _allows_origin(answer)
    played = Event.objects.get(project=ingest_project, name="Played")
    assert played.properties == {"song": "s1"}  # not writeKey, sentAt, _metadata, integrations
    assert Profile.objects.get(project=ingest_project, distinct_id="ada").properties == {"plan": "pro"}
    assert Event.objects.get(project=ingest_project, name="$page").distinct_id == "anon-1"


def test_analytics_js_short_paths_are_the_long_ones(client, ingest_project, write_key):
    for path, body in [("/v1/i", {"userId": "ada"}), ("/v1/t", {"userId": "ada", "event": "T"}),
                       ("/v1/p", {"userId": "ada"}), ("/v1/s", {"userId": "ada"}),
                       ("/v1/a", {"userId": "ada", "previousId": "x"}), ("/v1/g", {"userId": "ada", "groupId": "g"})]:
        answer = _text(client, path, {"writeKey": write_key, **body})
        assert answer.json() == {"success": True, "accepted": 1, "rejected": 0, "errors": []}, path
    assert sorted(Event.objects.filter(project=ingest_project).values_list("name", flat=True)) == [
        "$page", "$screen", "T"]


def test_the_authorization_header_wins_over_the_body_and_a_missing_key_is_refused(client, ingest_project,
                                                                                   write_key):
    header = _text(client, "/v1/t", {"writeKey": "csw_stale", "userId": "ada", "event": "T"},
                   HTTP_AUTHORIZATION=_basic(write_key))
    none = _text(client, "/v1/t", {"userId": "ada", "event": "T"})
    not_a_string = _text(client, "/v1/t", {"writeKey": ["x"], "userId": "ada", "event": "T"})
    assert header.status_code == 200
    assert (none.status_code, not_a_string.status_code) == (401, 401)
    assert none.json()["code"] == "unauthorized" and none.headers["WWW-Authenticate"] == 'Basic realm="segment"'
    assert Event.objects.filter(project=ingest_project).count() == 1


def test_analytics_js_settings_name_this_host_and_say_nothing_of_the_key(client, ingest_project, write_key):
    good = client.get(f"/v1/projects/{write_key}/settings", HTTP_ORIGIN=ORIGIN)
    wrong = client.get("/v1/projects/csw_wrong/settings", HTTP_ORIGIN=ORIGIN)
    assert (good.status_code, wrong.status_code) == (200, 200)
    assert _allows_origin(good)
    segment = good.json()["integrations"]["Segment.io"]
    assert segment == {"apiKey": write_key, "apiHost": "testserver/v1", "protocol": "http"}
    assert good.json()["metrics"]["sampleRate"] == 0  # no metrics to Segment's /m
    wrong_doc = wrong.json()
    wrong_doc["integrations"]["Segment.io"]["apiKey"] = write_key
    assert wrong_doc == good.json()  # the same document for any key: not an oracle
    assert list(good.json()["integrations"]) == ["Segment.io"]


# --- Segment's clock-skew correction --------------------------------------------------------------


def _stored_time(project, name: str) -> datetime:
    return Event.objects.get(project=project, name=name).time


def test_a_device_clock_ahead_is_corrected_by_sent_at(client, ingest_project, write_key):
    ahead = timedelta(hours=3)  # the device's clock; the event happened 10 minutes before it was sent
    happened = NOW() - timedelta(minutes=10)
    device = lambda t: (t + ahead).isoformat()  # noqa: E731
    call = _text(client, "/v1/t", {"writeKey": write_key, "userId": "ada", "event": "Call",
                                   "timestamp": device(happened), "sentAt": device(NOW())})
    batch = _text(client, "/v1/b", {"writeKey": write_key, "sentAt": device(NOW()), "batch": [
        {"type": "track", "userId": "ada", "event": "Batched", "timestamp": device(happened)}]})
    original = _text(client, "/v1/t", {"writeKey": write_key, "userId": "ada", "event": "Original",
                                       "originalTimestamp": device(happened), "sentAt": device(NOW())})
    assert [a.json()["accepted"] for a in (call, batch, original)] == [1, 1, 1]
    for name in ("Call", "Batched", "Original"):  # uncorrected, each would be 3 hours ahead: refused
        assert abs(_stored_time(ingest_project, name) - happened) < timedelta(minutes=1), name


def test_without_sent_at_the_timestamp_is_kept_as_sent(client, ingest_project, write_key):
    at = (NOW() - timedelta(days=1)).replace(microsecond=0).isoformat()
    answer = _text(client, "/v1/t", {"writeKey": write_key, "userId": "ada", "event": "Kept", "timestamp": at})
    bad = _text(client, "/v1/t", {"writeKey": write_key, "userId": "ada", "event": "Bad",
                                  "timestamp": "yesterday", "sentAt": NOW().isoformat()})
    assert answer.json()["accepted"] == 1
    assert _stored_time(ingest_project, "Kept") == datetime.fromisoformat(at)
    assert bad.json()["errors"][0]["field"] == "timestamp"  # the usual check, not hidden by the correction
