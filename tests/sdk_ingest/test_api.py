"""The SDK endpoints' wire details: limits, answers and error shapes, credentials, and the REST
API for ingestion keys."""

import base64
import gzip
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
from django.test import Client

from access.services import hashed_key_revoke
from cohorts.models import Event, Profile
from sdk_ingest.models import IngestKey, ReceivedInsertId
from sdk_ingest.services import ingest_key_create, insert_ids_prune
from tests.api.conftest import key_client

NOW = lambda: datetime.now(tz=UTC)  # noqa: E731


def _basic(username: str, password: str = "") -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def _segment(client: Client, path: str, body, write_key: str, **headers):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(path, data, content_type="application/json", HTTP_AUTHORIZATION=_basic(write_key), **headers)


def _form(client: Client, path: str, records, **params):
    body = urlencode({"data": json.dumps(records), **params})
    return client.post(path, body, content_type="application/x-www-form-urlencoded")


# --- Segment ------------------------------------------------------------------------------------


def test_segment_identify_maps_traits_and_answers_success(client, ingest_project, write_key):
    answer = _segment(client, "/v1/identify", {"userId": "ada", "traits": {
        "email": "ada@example.com", "firstName": "Ada", "lastName": None, "phone": "+1", "plan": "pro"}}, write_key)
    assert answer.status_code == 200
    assert answer.json() == {"success": True, "accepted": 1, "rejected": 0, "errors": []}
    ada = Profile.objects.get(project=ingest_project, distinct_id="ada")
    assert (ada.email, ada.first_name, ada.last_name, ada.phone_number) == ("ada@example.com", "Ada", "", "+1")
    assert ada.properties == {"plan": "pro"}
    assert IngestKey.objects.get().last_used_at is not None


def test_segment_batch_reports_per_message_errors_in_segment_names(client, ingest_project, write_key):
    batch = [
        {"type": "track", "userId": "ada", "event": "Played", "timestamp": NOW().isoformat(), "messageId": "m1"},
        {"type": "track", "anonymousId": "anon-1", "properties": {"x": 1}},  # no event name
        {"type": "identify", "userId": "bob", "traits": {"email": 42}},
        {"type": "identify"},
        {"type": "group", "userId": "ada", "groupId": "acme"},
        {"type": "explode", "userId": "ada"},
        {"type": "track", "userId": "ada", "event": "Played", "timestamp": "2001-01-01T00:00:00Z"},
        {"type": "track", "userId": "ada", "event": "Played", "messageId": "m\u0000"},
    ]
    answer = _segment(client, "/v1/batch", {"batch": batch}, write_key)
    assert answer.status_code == 200
    body = answer.json()
    assert body["success"] is True and (body["accepted"], body["rejected"]) == (2, 6)
    assert [(e["index"], e["field"]) for e in body["errors"]] == [
        (1, "event"), (2, "traits.email"), (3, "userId"), (5, "type"), (6, "timestamp"), (7, "messageId")]
    assert list(Event.objects.values_list("distinct_id", "name")) == [("ada", "Played")]


def test_segment_message_id_is_stored_once_and_a_refused_one_can_be_resent(client, ingest_project, write_key):
    message = {"userId": "ada", "event": "Played", "messageId": "m-1", "timestamp": "not a time"}
    assert _segment(client, "/v1/track", message, write_key).json()["rejected"] == 1
    message["timestamp"] = NOW().isoformat()
    for _ in range(2):
        assert _segment(client, "/v1/track", message, write_key).json()["accepted"] == 1
    assert Event.objects.count() == 1
    assert list(ReceivedInsertId.objects.values_list("insert_id", flat=True)) == ["m-1"]


@pytest.mark.parametrize("timestamp", ["9999-12-31T23:59:59.999999-23:59", "0001-01-01T00:00:00+23:59"])
def test_segment_timestamp_out_of_range_in_utc_is_refused_by_its_field(client, ingest_project, write_key, timestamp):
    """A valid ISO date-time whose offset takes it past datetime's range once in UTC: a per-message
    error, not a 500."""
    message = {"type": "track", "userId": "ada", "event": "Played", "timestamp": timestamp}
    answer = _segment(client, "/v1/batch", {"batch": [message, {**message, "timestamp": NOW().isoformat()}]}, write_key)
    assert answer.status_code == 200
    assert answer.json()["errors"] == [{"index": 0, "field": "timestamp", "message": "is out of range"}]
    assert Event.objects.filter(project=ingest_project).count() == 1


def test_segment_limits_answer_400_in_segment_shape(client, write_key):
    big = {"userId": "ada", "event": "Played", "properties": {"blob": "x" * (33 * 1024)}}
    answer = _segment(client, "/v1/track", big, write_key)
    assert answer.status_code == 400 and answer.json()["code"] == "payload_too_large"
    answer = _segment(client, "/v1/batch", {"batch": [big]}, write_key)
    assert answer.status_code == 400 and "batch[0]" in answer.json()["message"]
    many = {"batch": [{**big, "properties": {"blob": "x" * 20_000}} for _ in range(30)]}  # ~600 KB
    answer = _segment(client, "/v1/batch", many, write_key)
    assert answer.status_code == 400 and answer.json() == {
        "success": False, "code": "payload_too_large",
        "message": "The request body is larger than the 512,000 bytes allowed: send smaller batches."}
    # Under 500 KB, past Segment's 2,500 messages a batch: as Segment, 200 and those past it refused.
    tiny = {"batch": [{"type": "track", "userId": f"u{n}", "event": "E"} for n in range(2_502)]}
    answer = _segment(client, "/v1/batch", tiny, write_key)
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert (body["accepted"], body["rejected"]) == (2_500, 2)
    assert [error["index"] for error in body["errors"]] == [2_500, 2_501]
    assert "2,500 messages a batch" in body["errors"][0]["message"]
    assert Event.objects.count() == 2_500 and not Event.objects.filter(distinct_id__in=["u2500", "u2501"]).exists()
    answer = _segment(client, "/v1/batch", b"{not json", write_key)
    assert answer.status_code == 400 and answer.json()["code"] == "invalid_json"


def test_segment_gzip_body_and_its_bomb(client, ingest_project, write_key):
    body = gzip.compress(json.dumps({"batch": [{"type": "identify", "userId": "ada"}]}).encode())
    answer = _segment(client, "/v1/batch", body, write_key, HTTP_CONTENT_ENCODING="gzip")
    assert answer.json()["accepted"] == 1
    bomb = gzip.compress(b"[" + b" " * (2 * 1024 * 1024) + b"]")
    answer = _segment(client, "/v1/batch", bomb, write_key, HTTP_CONTENT_ENCODING="gzip")
    assert answer.status_code == 400 and answer.json()["code"] == "payload_too_large"


def test_gzip_of_several_members_is_read_whole_and_a_broken_one_refused(client, ingest_project, mixpanel_secret):
    """A gzip stream may hold several members (concatenated .gz files of ndjson): every record is
    imported. A truncated member or bytes after the last one are refused, not silently dropped."""
    now = int(NOW().timestamp())
    lines = [json.dumps({"event": "Played", "properties": {"distinct_id": f"u{i}", "time": now}}).encode() + b"\n"
             for i in range(4)]
    auth = {"HTTP_AUTHORIZATION": _basic(mixpanel_secret), "HTTP_CONTENT_ENCODING": "gzip"}

    def post(body):
        return client.post("/import", body, content_type="application/x-ndjson", **auth)

    answer = post(gzip.compress(lines[0] + lines[1]) + gzip.compress(lines[2] + lines[3]))
    assert answer.status_code == 200 and answer.json()["num_records_imported"] == 4
    assert Event.objects.filter(project=ingest_project).count() == 4
    for broken in (gzip.compress(lines[0]) + b"trailing bytes", gzip.compress(lines[0] + lines[1])[:-4]):
        answer = post(broken)
        assert answer.status_code == 400 and "gzip" in answer.json()["error"]
    assert Event.objects.filter(project=ingest_project).count() == 4


def test_segment_credentials(client, ingest_project, write_key):
    revoked, revoked_key = ingest_key_create(project=ingest_project, kind=IngestKey.Kind.SEGMENT_WRITE_KEY, name="x")
    hashed_key_revoke(hashed_key=revoked)
    token = ingest_key_create(project=ingest_project, kind=IngestKey.Kind.MIXPANEL_TOKEN, name="x")[1]
    for key in (revoked_key, token, "nope"):
        answer = _segment(client, "/v1/identify", {"userId": "ada"}, key)
        assert answer.status_code == 401, key
        assert answer.json()["code"] == "unauthorized" and answer["WWW-Authenticate"].startswith("Basic")
    answer = client.post("/v1/identify", {"userId": "ada"}, content_type="application/json")
    assert answer.status_code == 401
    api = key_client(ingest_project)
    assert api.post("/v1/identify", {"userId": "ada"}, format="json").json()["accepted"] == 1


# --- Mixpanel -----------------------------------------------------------------------------------


def _event(token, distinct_id="ada", name="Opened", **properties):
    return {"event": name, "properties": {"token": token, "distinct_id": distinct_id,
                                          "time": int(NOW().timestamp() * 1000), **properties}}


def test_mixpanel_track_plain_and_verbose_answers(client, ingest_project, mixpanel_token):
    answer = _form(client, "/track", [_event(mixpanel_token)])
    assert (answer.status_code, answer.content, answer["Content-Type"]) == (200, b"1", "text/plain")
    answer = _form(client, "/track/", _event(mixpanel_token), verbose=1)
    assert answer.json() == {"status": 1, "error": None}
    encoded = base64.b64encode(json.dumps([_event(mixpanel_token, "bob")]).encode()).decode()
    answer = client.post("/track?verbose=1", urlencode({"data": encoded}),
                         content_type="application/x-www-form-urlencoded")
    assert answer.json() == {"status": 1, "error": None}
    assert sorted(Event.objects.values_list("distinct_id", flat=True)) == ["ada", "ada", "bob"]
    stored = Event.objects.filter(distinct_id="bob").get()
    assert stored.properties == {} and abs(stored.time - NOW()) < timedelta(minutes=1)  # milliseconds read


def test_mixpanel_track_refusals(client, ingest_project, mixpanel_token, other_token):
    old = _event(mixpanel_token, time=int((NOW() - timedelta(days=6)).timestamp()))
    answer = _form(client, "/track", [_event(mixpanel_token), old, _event(other_token)], verbose=1)
    body = answer.json()
    assert answer.status_code == 200 and body["status"] == 0
    assert [(r["index"], r["field"]) for r in body["failed_records"]] == [
        (1, "properties.time"), (2, "properties.token")]
    assert "/import" in body["failed_records"][0]["message"]
    assert _form(client, "/track", [_event(mixpanel_token), old]).content == b"0"
    answer = _form(client, "/track", [_event("cst_unknown")], verbose=1)
    assert answer.status_code == 401 and answer.json()["status"] == 0
    answer = _form(client, "/track", [_event(mixpanel_token)] * 2001, verbose=1)
    assert answer.status_code == 400 and "2,000" in answer.json()["error"]
    answer = client.post("/track", urlencode({"data": "%%%"}), content_type="application/x-www-form-urlencoded")
    assert (answer.status_code, answer.content) == (400, b"0")


@pytest.fixture
def other_token(db):
    from tests.factories import ProjectFactory
    return ingest_key_create(project=ProjectFactory(), kind=IngestKey.Kind.MIXPANEL_TOKEN, name="other")[1]


def test_mixpanel_engage_operations(client, ingest_project, mixpanel_token):
    updates = [
        {"$token": mixpanel_token, "$distinct_id": "ada", "$set": {"$email": "a@x.io", "$phone": "+1", "plan": "pro"}},
        {"$token": mixpanel_token, "$distinct_id": "ada", "$set_once": {"plan": "free", "since": 2020}},
        {"$token": mixpanel_token, "$distinct_id": "ada", "$unset": ["$phone", "nothing"]},
        {"$token": mixpanel_token, "$distinct_id": "ada", "$append": {"tags": "x"}, "$add": {"logins": 2}},
        {"$token": mixpanel_token, "$distinct_id": "ada", "$frobnicate": {}},
        {"$token": mixpanel_token, "$distinct_id": "bob", "$set": {"plan": "pro"}},
        {"$token": mixpanel_token, "$distinct_id": "bob", "$delete": ""},
        {"$token": mixpanel_token, "$distinct_id": "cy", "$delete": ""},
        {"$token": mixpanel_token, "$distinct_id": "cy", "$set": {"$first_name": 7}},
        {"$token": mixpanel_token, "$distinct_id": "ada", "$add": {"plan": 1}},
        {"$token": mixpanel_token, "$distinct_id": "ada", "$add": {"logins": True}},
        {"$token": mixpanel_token, "$distinct_id": "ada", "$union": {"$email": ["b@x.io"]}},
        {"$token": mixpanel_token, "$distinct_id": "ada", "$union": {"tags": ["x", "y"]}, "$remove": {"tags": "x"}},
    ]
    body = _form(client, "/engage", updates, verbose=1).json()
    assert body["status"] == 0
    assert [(r["index"], r["field"]) for r in body["failed_records"]] == [
        (4, "$frobnicate"), (8, "$set.$first_name"), (9, "$add.plan"), (10, "$add.logins"), (11, "$union.$email")]
    assert body["failed_records"][2]["message"] == "the profile's value is a string, not a number to add to"
    ada = Profile.objects.get(distinct_id="ada")
    assert (ada.email, ada.phone_number) == ("a@x.io", "")
    assert ada.properties == {"plan": "pro", "since": 2020, "logins": 2, "tags": ["y"]}
    assert not Profile.objects.filter(distinct_id__in=["bob", "cy"]).exists()


@pytest.mark.parametrize("path", ["/groups", "/groups/"])
def test_mixpanel_groups_are_checked_and_acknowledged_not_stored(client, ingest_project, mixpanel_token, path):
    group = {"$token": mixpanel_token, "$group_key": "company", "$group_id": "Acme"}
    assert _form(client, path, [{**group, "$set": {"plan": "pro"}}, {**group, "$group_id": 7, "$delete": ""},
                                {**group, "$union": {"tags": ["a"]}}]).content == b"1"
    body = _form(client, path, [
        {**group, "$set": {"plan": "pro"}, "$unset": ["x"]},
        {**group, "$group_key": ""},
        {**group, "$union": {"tags": "a"}},
        {**group, "$add": {"n": 1}},
        {**group, "$set_once": {"since": 2020}},
    ], verbose=1).json()
    assert body["status"] == 0
    assert [(r["index"], r["field"]) for r in body["failed_records"]] == [
        (0, None), (1, "$group_key"), (2, "$union.tags"), (3, "$add")]
    assert _form(client, path, [{**group, "$token": "cst_unknown", "$set": {}}]).status_code == 401
    assert not Profile.objects.exists()


def test_mixpanel_import_answers_and_errors(client, ingest_project, mixpanel_secret):
    old = int((NOW() - timedelta(days=30)).timestamp())
    good = {"event": "Paid", "properties": {"distinct_id": "ada", "time": old, "$insert_id": "i-1"}}
    auth = {"HTTP_AUTHORIZATION": _basic(mixpanel_secret)}
    answer = client.post("/import", json.dumps([good]), content_type="application/json", **auth)
    assert answer.json() == {"code": 200, "num_records_imported": 1, "status": 1}
    ndjson = "\n".join(json.dumps(r) for r in [
        good, {"event": "Paid", "properties": {"distinct_id": "bob", "$insert_id": "i-2"}}])
    answer = client.post("/import", ndjson, content_type="application/x-ndjson", **auth)
    assert answer.status_code == 400
    assert answer.json() == {"code": 400, "error": "some data points in the request failed validation",
                             "failed_records": [{"index": 1, "field": "properties.time", "insert_id": "i-2",
                                                 "message": "is required (unix seconds or milliseconds)"}],
                             "num_records_imported": 1, "status": "Bad Request"}
    assert Event.objects.count() == 1  # i-1 again: a duplicate, acknowledged
    answer = client.post("/import", json.dumps([good]), content_type="application/json")
    assert answer.status_code == 401 and answer.json()["status"] == "Unauthorized"
    answer = client.post("/import", json.dumps([good] * 2001), content_type="application/json", **auth)
    assert answer.status_code == 400 and answer.json()["code"] == 400
    answer = client.post("/import", b"x", content_type="application/json", CONTENT_LENGTH=11 * 1024 * 1024, **auth)
    assert answer.status_code == 413 and answer.json()["status"] == "Request Entity Too Large"


def test_mixpanel_import_takes_the_project_token_as_username_too(client, ingest_project, mixpanel_token,
                                                                 other_token, write_key):
    good = [{"event": "Paid", "properties": {"distinct_id": "ada", "time": int(NOW().timestamp())}}]
    answer = client.post("/import", json.dumps(good), content_type="application/json",
                         HTTP_AUTHORIZATION=_basic(mixpanel_token))
    assert answer.json() == {"code": 200, "num_records_imported": 1, "status": 1}
    assert Event.objects.get().project == ingest_project
    for wrong in (write_key, mixpanel_token + "x"):  # a Segment write key is no Mixpanel credential
        answer = client.post("/import", json.dumps(good), content_type="application/json",
                             HTTP_AUTHORIZATION=_basic(wrong))
        assert answer.status_code == 401 and answer.json()["status"] == "Unauthorized"
    answer = client.post("/import", json.dumps(good), content_type="application/json",
                         HTTP_AUTHORIZATION=_basic(other_token))
    assert answer.json()["num_records_imported"] == 1
    assert Event.objects.exclude(project=ingest_project).count() == 1  # stored in the token's own project
    IngestKey.objects.filter(kind=IngestKey.Kind.MIXPANEL_TOKEN).update(revoked_at=NOW())
    answer = client.post("/import", json.dumps(good), content_type="application/json",
                         HTTP_AUTHORIZATION=_basic(mixpanel_token))
    assert answer.status_code == 401
    assert Event.objects.count() == 2


def test_mixpanel_import_service_account_must_match_project_id(client, ingest_project):
    api = key_client(ingest_project)
    good = [{"event": "Paid", "properties": {"distinct_id": "ada", "time": int(NOW().timestamp())}}]
    auth = {"HTTP_AUTHORIZATION": _basic("svc", api.key)}
    answer = client.post(f"/import?project_id={ingest_project.pk}", json.dumps(good),
                         content_type="application/json", **auth)
    assert answer.json()["num_records_imported"] == 1
    answer = client.post(f"/import?project_id={ingest_project.pk + 1}", json.dumps(good),
                         content_type="application/json", **auth)
    assert answer.status_code == 401


def test_insert_ids_are_pruned_after_the_retention_window(ingest_project, settings):
    settings.COHORTSYNC_EVENT_RETENTION_DAYS = 10
    ReceivedInsertId.objects.create(project=ingest_project, insert_id="old", received_at=NOW() - timedelta(days=11))
    ReceivedInsertId.objects.create(project=ingest_project, insert_id="new", received_at=NOW() - timedelta(days=9))
    assert insert_ids_prune() == 1
    assert list(ReceivedInsertId.objects.values_list("insert_id", flat=True)) == ["new"]


# --- Keys: REST API and admin -------------------------------------------------------------------


def test_ingest_keys_api_creates_lists_and_revokes(ingest_project, client):
    api = key_client(ingest_project)
    answer = api.post("/api/v1/ingest-keys/", {"kind": "segment_write_key", "name": "web"}, format="json")
    assert answer.status_code == 201
    key = answer.json()["key"]
    assert key.startswith("csw_") and IngestKey.objects.get().key_hash != key
    listed = api.get("/api/v1/ingest-keys/").json()["results"]
    assert [k["name"] for k in listed] == ["web"] and "key" not in listed[0] and "key_hash" not in listed[0]
    assert _segment(client, "/v1/identify", {"userId": "ada"}, key).status_code == 200
    assert api.post(f"/api/v1/ingest-keys/{listed[0]['id']}/revoke/").json()["revoked_at"]
    assert _segment(client, "/v1/identify", {"userId": "ada"}, key).status_code == 401
    answer = api.post("/api/v1/ingest-keys/", {"kind": "nope", "name": "web"}, format="json")
    assert answer.status_code == 400 and "kind" in answer.json()


def test_admin_shows_a_new_key_once_and_lists_no_secret(admin_client, ingest_project):
    answer = admin_client.post("/admin/sdk_ingest/ingestkey/add/",
                               {"project": ingest_project.pk, "kind": "mixpanel_token", "name": "web"})
    assert answer.status_code == 200
    stored = IngestKey.objects.get()
    key = answer.context["key"]
    assert key.startswith("cst_") and key in answer.content.decode()
    listing = admin_client.get("/admin/sdk_ingest/ingestkey/").content.decode()
    assert stored.prefix in listing and key not in listing


def test_mixpanel_event_limits_refuse_that_event_only(client, ingest_project, mixpanel_secret):
    now = int(NOW().timestamp())

    def event(n, **properties):
        return {"event": "E", "properties": {"distinct_id": f"u{n}", "time": now, **properties}}

    nested = {"a": [{"b": list(range(255))}]}
    deep = '{"d":' * 1000 + "{}" + "}" * 1000  # deeper than Python's recursion limit, within JSON's
    records = [
        event(0, **{f"p{n}": n for n in range(252)}),  # 254 properties with distinct_id and time: taken
        event(1, **{f"p{n}": n for n in range(253)}),  # 255: refused
        event(2, nest=nested),
        event(3, blob="x" * (1024 * 1024)),
        event(4, deep="DEEP", list=list(range(254))),
    ]
    body = json.dumps(records).replace('"DEEP"', deep)
    answer = client.post("/import", body, content_type="application/json", HTTP_AUTHORIZATION=_basic(mixpanel_secret))
    assert answer.status_code == 400, answer.content
    failed = answer.json()["failed_records"]
    assert [(r["index"], r["field"]) for r in failed] == [
        (1, "properties"), (2, "properties.nest.a.0.b"), (3, None), (4, "properties.deep")]
    assert failed[3]["message"] == "nests deeper than 254 levels"
    assert "255 properties" in failed[0]["message"] and "fewer than 255" in failed[1]["message"]
    assert "1,024 KB" in failed[2]["message"]
    assert list(Event.objects.values_list("distinct_id", flat=True)) == ["u0"]


def test_a_key_past_its_records_a_minute_gets_429_in_each_vendor_shape(client, ingest_project, write_key,
                                                                      mixpanel_token, mixpanel_secret, settings,
                                                                      monkeypatch):
    import time
    from types import SimpleNamespace

    from django.core.cache import cache

    cache.clear()  # counts of other tests' keys
    # The clock stopped 15 s into a minute, so the test never spans two budget windows.
    minute = time.time() // 60 * 60
    monkeypatch.setattr("sdk_ingest.services.time", SimpleNamespace(time=lambda: minute + 15))
    settings.COHORTSYNC_SDK_RECORDS_PER_MINUTE = 3
    now = int(NOW().timestamp())
    two = {"batch": [{"type": "track", "userId": f"u{n}", "event": "E"} for n in range(2)]}
    assert _segment(client, "/v1/batch", two, write_key).json()["accepted"] == 2
    refused = _segment(client, "/v1/batch", two, write_key)  # 4 > 3: refused whole, and not counted
    assert refused.status_code == 429 and refused["Retry-After"] == "45"
    assert refused.json()["code"] == "rate_limited" and "3 records" in refused.json()["message"]
    one = {"type": "track", "userId": "u9", "event": "E"}
    assert _segment(client, "/v1/track", one, write_key).json()["accepted"] == 1  # 3: fits
    assert _segment(client, "/v1/track", one, write_key).status_code == 429
    body_key = client.post("/v1/track", json.dumps({**one, "writeKey": write_key}), content_type="text/plain")
    assert body_key.status_code == 429  # the same key, sent in the body

    # Each key has its own budget: the token and the secret of the same project are untouched.
    events = [{"event": "E", "properties": {"token": mixpanel_token, "distinct_id": f"m{n}", "time": now}}
              for n in range(3)]
    assert _form(client, "/track", events).content == b"1"
    answer = _form(client, "/track", events[:1], verbose="1")
    assert answer.status_code == 429 and answer.json()["status"] == 0 and answer["Retry-After"]
    auth = {"HTTP_AUTHORIZATION": _basic(mixpanel_secret)}
    assert client.post("/import", json.dumps(events), content_type="application/json", **auth).json()["status"] == 1
    answer = client.post("/import", json.dumps(events[:1]), content_type="application/json", **auth)
    assert answer.status_code == 429
    assert answer.json()["status"] == "Too Many Requests" and answer.json()["code"] == 429
    assert "Project exceeded rate limits" in answer.json()["error"]
    assert Event.objects.count() == 3 + 3 + 3

    settings.COHORTSYNC_SDK_RECORDS_PER_MINUTE = 0  # the default: no budget
    assert _segment(client, "/v1/batch", two, write_key).json()["accepted"] == 2
