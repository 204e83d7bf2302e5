"""profiles/ and events/: batches with per-item errors; read and delete a profile."""

import pytest
from django.utils import timezone

from cohorts import ingestion
from cohorts.models import CohortMember, Event, Profile
from tests.conftest import set_members
from tests.factories import CohortFactory, ProfileFactory

pytestmark = pytest.mark.django_db


def test_profiles_upsert_keeps_the_good_items_and_reports_the_bad(api):
    ProfileFactory(project=api.project, distinct_id="known", email="old@example.com", properties={"plan": "free"})
    response = api.post("/api/v1/profiles/", {"profiles": [
        {"distinct_id": "known", "email": "new@example.com", "set": {"plan": "pro"}},
        {"email": "nobody@example.com"},
        {"distinct_id": "fresh", "set_once": {"source": "ads"}},
        "not an object",
        {"distinct_id": "x", "set": {"plan": "pro"}, "colour": "blue"},
    ]})
    assert response.status_code == 200
    assert response.json() == {"accepted": 2, "rejected": 3, "errors": [
        {"index": 1, "field": "distinct_id", "message": "is required"},
        {"index": 3, "field": None, "message": "must be an object, not a string"},
        {"index": 4, "field": "colour", "message": "unknown field (expected add, append, distinct_id, email, "
                                                   "first_name, last_name, phone_number, remove, set, set_once, "
                                                   "union, unset)"},
    ]}
    known = Profile.objects.get(distinct_id="known")
    assert (known.email, known.properties) == ("new@example.com", {"plan": "pro"})
    assert Profile.objects.get(distinct_id="fresh").properties == {"source": "ads"}
    assert Profile.objects.filter(project=api.project).count() == 2


def test_profiles_upsert_adds_to_numbers_and_changes_arrays(api):
    ProfileFactory(project=api.project, distinct_id="known", properties={"logins": 4, "plan": "pro", "tags": ["a"]})
    response = api.post("/api/v1/profiles/", {"profiles": [
        {"distinct_id": "known", "add": {"logins": 1}, "union": {"tags": ["a", "b"]}},
        {"distinct_id": "known", "add": {"plan": 1}},
        {"distinct_id": "known", "append": {"tags": "c"}, "remove": {"tags": "a"}},
    ]})
    assert response.status_code == 200
    assert response.json() == {"accepted": 2, "rejected": 1, "errors": [
        {"index": 1, "field": "add.plan", "message": "the profile's value is a string, not a number to add to"},
    ]}
    assert Profile.objects.get(distinct_id="known").properties == {"logins": 5, "plan": "pro", "tags": ["b", "c"]}


def test_events_track_keeps_the_good_items_and_reports_the_bad(api):
    now = timezone.now()
    response = api.post("/api/v1/events/", {"events": [
        {"distinct_id": "a", "event": "Play", "time": now.isoformat(), "properties": {"song": "x"}},
        {"distinct_id": "a", "event": "Play"},
        {"distinct_id": "b", "event": "Play", "time": now.timestamp() * 1000},
        {"distinct_id": "b", "event": "Pause", "time": int(now.timestamp())},
    ]})
    assert response.status_code == 200
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (2, 2)
    assert [(e["index"], e["field"]) for e in body["errors"]] == [(1, "time"), (2, "time")]
    assert "milliseconds" in body["errors"][1]["message"]
    assert sorted(Event.objects.filter(project=api.project).values_list("name", flat=True)) == ["Pause", "Play"]


def test_a_lone_surrogate_refuses_its_item_and_keeps_the_batch(api):
    # Raw JSON: "\ud800" is valid JSON text that decodes to a lone surrogate (not valid Unicode).
    time = timezone.now().isoformat()
    profiles = '{"profiles": [{"distinct_id": "\\ud800"}, {"distinct_id": "ok"}, {"distinct_id": "k", "\\udc00": 1}]}'
    events = ('{"events": [{"distinct_id": "ok", "event": "P\\ud800", "time": "%s"}, '
              '{"distinct_id": "ok", "event": "Play", "time": "%s"}]}') % (time, time)

    response = api.post("/api/v1/profiles/", profiles, content_type="application/json")
    assert response.status_code == 200
    assert response.json()["accepted"] == 1
    assert [(e["index"], e["field"]) for e in response.json()["errors"]] == [(0, "distinct_id"), (2, "\\udc00")]
    response = api.post("/api/v1/events/", events, content_type="application/json")
    assert response.status_code == 200
    assert response.json()["errors"] == [{"index": 0, "field": "event", "message": (
        "must not contain a lone surrogate (U+D800 at character 2): it is not valid Unicode text")}]
    assert list(Event.objects.filter(project=api.project).values_list("name", flat=True)) == ["Play"]


def test_a_body_nested_thousands_deep_is_a_400(api):
    body = '{"profiles": ' + "[" * 5000 + "]" * 5000 + "}"

    response = api.post("/api/v1/profiles/", body, content_type="application/json")

    assert response.status_code == 400
    assert "nested more than 64 levels deep" in response.json()["detail"]


@pytest.mark.parametrize("url, field", [("/api/v1/profiles/", "profiles"), ("/api/v1/events/", "events")])
def test_an_oversize_batch_is_a_400_that_says_so(api, monkeypatch, url, field):
    monkeypatch.setattr(ingestion, "MAX_BATCH", 2)
    response = api.post(url, {field: [{"distinct_id": "a"}] * 3})
    assert response.status_code == 400
    assert response.json() == {field: ["A batch holds at most 2 items; this one has 3. Send it in smaller batches."]}
    assert not Profile.objects.exists() and not Event.objects.exists()


@pytest.mark.parametrize("url, payload, field", [
    ("/api/v1/profiles/", {}, "profiles"),
    ("/api/v1/profiles/", {"profiles": {"distinct_id": "a"}}, "profiles"),
    ("/api/v1/events/", {"events": "a"}, "events"),
])
def test_a_batch_must_be_a_list(api, url, payload, field):
    response = api.post(url, payload)
    assert response.status_code == 400
    assert list(response.json()) == [field]


def test_a_batch_goes_to_the_clients_project_only(api, other_project):
    api.post("/api/v1/profiles/", {"profiles": [{"distinct_id": "a"}]})
    assert Profile.objects.get().project == api.project
    response = api.post("/api/v1/profiles/", {"project": other_project.pk, "profiles": [{"distinct_id": "b"}]})
    assert response.status_code == 400 and "project" in response.json()


def test_read_a_profile(api):
    ProfileFactory(project=api.project, distinct_id="ada", first_name="Ada", properties={"plan": "pro"})
    body = api.get("/api/v1/profiles/ada/").json()
    assert (body["distinct_id"], body["first_name"], body["properties"]) == ("ada", "Ada", {"plan": "pro"})
    assert api.get("/api/v1/profiles/bob/").status_code == 404


@pytest.mark.parametrize("distinct_id, path", [("a/b", "a%2Fb"), ("a b?#", "a%20b%3F%23"), ("ünï", "%C3%BCn%C3%AF")])
def test_distinct_ids_with_reserved_characters(api, distinct_id, path):
    ProfileFactory(project=api.project, distinct_id=distinct_id)
    assert api.get(f"/api/v1/profiles/{path}/").json()["distinct_id"] == distinct_id
    assert api.delete(f"/api/v1/profiles/{path}/").status_code == 204


def test_delete_a_profile_removes_it_from_its_cohorts(api):
    cohort = CohortFactory(project=api.project)
    set_members(cohort, ["ada", "bob"])
    assert api.delete("/api/v1/profiles/ada/").status_code == 204
    assert not Profile.objects.filter(distinct_id="ada").exists()
    assert CohortMember.objects.filter(cohort=cohort).count() == 1
    assert api.delete("/api/v1/profiles/ada/").status_code == 404


def test_another_projects_profile_is_a_404(api, other_project):
    ProfileFactory(project=other_project, distinct_id="theirs")
    assert api.get("/api/v1/profiles/theirs/").status_code == 404
    assert api.delete("/api/v1/profiles/theirs/").status_code == 404
    assert Profile.objects.filter(distinct_id="theirs").exists()


def test_a_user_of_several_projects_names_the_profiles_project(session_api, session_user, project, other_project):
    other_project.members.add(session_user)
    ProfileFactory(project=project, distinct_id="same", first_name="Mine")
    ProfileFactory(project=other_project, distinct_id="same", first_name="Other")
    response = session_api.get("/api/v1/profiles/same/")
    assert response.status_code == 400 and "project" in response.json()
    assert session_api.get(f"/api/v1/profiles/same/?project={other_project.pk}").json()["first_name"] == "Other"
    assert session_api.delete(f"/api/v1/profiles/same/?project={project.pk}").status_code == 204
    assert Profile.objects.get(distinct_id="same").project == other_project


def test_no_credentials(client):
    assert client.post("/api/v1/profiles/", {}, content_type="application/json").status_code == 401
    assert client.post("/api/v1/events/", {}, content_type="application/json").status_code == 401
    assert client.get("/api/v1/profiles/a/").status_code == 401


def test_a_distinct_id_with_a_nul_character_is_a_404(api):
    assert api.get("/api/v1/profiles/a%00b/").status_code == 404
    assert api.delete("/api/v1/profiles/a%00b/").status_code == 404


def test_a_full_batch_fits_in_a_request(api):
    items = [{"distinct_id": f"user-{i:05d}", "email": f"user{i}@example.com", "set": {"bio": "x" * 200}}
             for i in range(ingestion.MAX_BATCH)]
    assert api.post("/api/v1/profiles/", {"profiles": items}).json()["accepted"] == ingestion.MAX_BATCH


def test_a_body_over_the_limit_is_a_json_400(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = api.post("/api/v1/events/", {"events": [{"distinct_id": "a" * 2000}]})
    assert response.status_code == 400
    assert response.json() == {"detail": "The request body is larger than the 1,000 bytes allowed: send smaller "
                                         "batches."}
