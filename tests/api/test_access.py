"""API keys, authentication, project scoping, throttling, the admin and the command."""

import hashlib
import re
from io import StringIO

import pytest
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from access.models import ApiKey
from access.services import api_key_create, hashed_key_revoke
from tests.api.conftest import key_client
from tests.factories import CohortFactory, ConnectionFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db

CONNECTIONS = "/api/v1/connections/"


# --- Keys ---------------------------------------------------------------------------------


def test_a_key_is_shown_once_and_stored_as_its_sha256(project):
    api_key, key = api_key_create(project=project, name="CRM")
    assert key.startswith("cs_") and len(key) > 40
    assert api_key.prefix == key[:11]
    assert api_key.key_hash == hashlib.sha256(key.encode()).hexdigest()
    stored = ApiKey.objects.filter(pk=api_key.pk).values().get()
    assert key not in [str(value) for value in stored.values()]


def test_two_keys_differ(project):
    assert api_key_create(project=project, name="a")[1] != api_key_create(project=project, name="b")[1]


def test_requests_with_a_key_record_when_it_was_last_used(api):
    assert api.api_key.last_used_at is None
    assert api.get(CONNECTIONS).status_code == 200
    api.api_key.refresh_from_db()
    assert api.api_key.last_used_at is not None


# --- Authentication: 401 for every failure to say who you are -----------------------------


def test_no_credentials_is_401_with_a_bearer_challenge(db):
    response = APIClient().get(CONNECTIONS)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert response.json() == {"detail": "Authentication credentials were not provided."}


@pytest.mark.parametrize("header", ["Bearer cs_not-a-key", "Bearer " + "x" * 5000, "bearer cs_nope"])
def test_an_unknown_key_is_401(db, header):
    response = APIClient().get(CONNECTIONS, HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid API key."}


@pytest.mark.parametrize("header", ["Bearer", "Bearer two words"])
def test_a_malformed_authorization_header_is_401(db, header):
    response = APIClient().get(CONNECTIONS, HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert "Malformed Authorization header" in response.json()["detail"]


def test_invalid_keys_are_throttled_per_address(api, settings):
    settings.COHORTSYNC_INVALID_API_KEY_RATE = "3/min"
    guesser = APIClient(REMOTE_ADDR="203.0.113.9")
    for attempt in range(3):
        assert guesser.get(CONNECTIONS, HTTP_AUTHORIZATION=f"Bearer cs_guess{attempt}").status_code == 401

    refused = guesser.get(CONNECTIONS, HTTP_AUTHORIZATION=f"Bearer {api.key}", HTTP_X_FORWARDED_FOR="10.9.9.9")

    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert refused.json()["detail"].startswith("Too many requests with an invalid API key from this address (at "
                                               "most 3/min).")
    # Other addresses, and valid keys from them, are untouched.
    assert api.get(CONNECTIONS).status_code == 200


def test_a_revoked_key_is_refused_at_once(api):
    assert api.get(CONNECTIONS).status_code == 200
    hashed_key_revoke(hashed_key=api.api_key)
    response = api.get(CONNECTIONS)
    assert response.status_code == 401
    assert response.json()["detail"] == f"This API key ({api.api_key.prefix}…) was revoked."


def test_revoking_twice_keeps_the_first_time(api):
    first = hashed_key_revoke(hashed_key=api.api_key).revoked_at
    assert hashed_key_revoke(hashed_key=api.api_key).revoked_at == first


def test_other_schemes_are_not_taken_for_keys(db):
    response = APIClient().get(CONNECTIONS, HTTP_AUTHORIZATION="Basic dXNlcjpwYXNz")
    assert response.status_code == 401
    assert response.json()["detail"] == "Authentication credentials were not provided."


# --- Scoping: a client sees only its projects' objects --------------------------------------


def test_a_key_sees_only_its_projects_objects(api, other_project):
    mine = ConnectionFactory(project=api.project)
    theirs = ConnectionFactory(project=other_project)
    assert [c["id"] for c in api.get(CONNECTIONS).json()["results"]] == [mine.pk]
    assert api.get(f"{CONNECTIONS}{theirs.pk}/").status_code == 404
    assert api.delete(f"{CONNECTIONS}{theirs.pk}/").status_code == 404
    assert api.patch(f"{CONNECTIONS}{theirs.pk}/", {"name": "mine now"}).status_code == 404


def test_a_key_cannot_create_in_another_project(api, other_project):
    response = api.post(CONNECTIONS, {"project": other_project.pk, "name": "x", "url": "https://example.com/h"})
    assert response.status_code == 400
    assert "project" in response.json()


def test_a_session_user_acts_for_the_projects_they_belong_to(session_api, project, other_project):
    mine = CohortFactory(project=project)
    CohortFactory(project=other_project)
    assert [c["id"] for c in session_api.get("/api/v1/cohorts/").json()["results"]] == [mine.pk]
    response = session_api.post("/api/v1/cohorts/", {"name": "Trial users"})
    assert response.status_code == 201
    assert response.json()["project"] == project.pk


def test_a_user_of_several_projects_names_the_project(session_api, session_user, other_project):
    other_project.members.add(session_user)
    response = session_api.post("/api/v1/cohorts/", {"name": "Trial users"})
    assert response.status_code == 400
    assert response.json() == {"project": ["You are a member of several projects: give the project id."]}
    response = session_api.post("/api/v1/cohorts/", {"name": "Trial users", "project": other_project.pk})
    assert response.status_code == 201
    assert response.json()["project"] == other_project.pk


def test_a_user_of_no_project_sees_nothing_and_creates_nothing(db, project):
    CohortFactory(project=project)
    client = APIClient()
    client.force_login(UserFactory(username="outsider"))
    assert client.get("/api/v1/cohorts/").json()["results"] == []
    response = client.post("/api/v1/cohorts/", {"name": "x", "project": project.pk})
    assert response.status_code == 400
    assert "project" in response.json()
    assert client.post("/api/v1/cohorts/", {"name": "x"}).json() == {
        "project": ["You are not a member of any project."]}


def test_session_writes_need_the_csrf_token(session_user):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(session_user)
    assert client.get("/api/v1/cohorts/").status_code == 200
    response = client.post("/api/v1/cohorts/", {"name": "x"})
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]


def test_key_requests_need_no_csrf_token(project):
    client = key_client(project)
    client.handler.enforce_csrf_checks = True
    assert client.post("/api/v1/cohorts/", {"name": "x"}).status_code == 201


# --- Throttling ---------------------------------------------------------------------------


def test_too_many_requests_is_a_429_that_says_when_to_come_back(api, other_api, settings):
    settings.COHORTSYNC_API_THROTTLE_RATE = "2/min"
    assert api.get(CONNECTIONS).status_code == 200
    assert api.get(CONNECTIONS).status_code == 200
    response = api.get(CONNECTIONS)
    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 60
    assert re.fullmatch(
        r"Too many requests: this API key may make 2 requests per min\. Expected available in \d+ seconds?\.",
        response.json()["detail"],
    )
    assert other_api.get(CONNECTIONS).status_code == 200  # a budget per key


def test_session_users_have_their_own_budget(session_api, settings):
    settings.COHORTSYNC_API_THROTTLE_RATE = "1/hour"
    assert session_api.get(CONNECTIONS).status_code == 200
    response = session_api.get(CONNECTIONS)
    assert response.status_code == 429
    assert response.json()["detail"].startswith("Too many requests: this client may make 1 requests per hour.")
    assert int(response["Retry-After"]) > 60


# --- Admin and command --------------------------------------------------------------------


@pytest.fixture
def admin_client(client, project):
    admin = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(admin)
    client.user = admin
    return client


def test_the_admin_shows_a_new_key_once(admin_client, project):
    response = admin_client.post("/admin/access/apikey/add/", {"project": project.pk, "name": "CRM export"})
    assert response.status_code == 200
    key = re.search(r'value="(cs_[^"]+)"', response.content.decode()).group(1)
    api_key = ApiKey.objects.get()
    assert (api_key.name, api_key.project, api_key.created_by) == ("CRM export", project, admin_client.user)
    assert api_key.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert "shown only this once" in response.content.decode()
    # It works, and it is never shown again.
    assert APIClient().get(CONNECTIONS, HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 200
    for page in ("/admin/access/apikey/", f"/admin/access/apikey/{api_key.pk}/change/"):
        content = admin_client.get(page).content.decode()
        assert api_key.prefix in content and key not in content and api_key.key_hash not in content


def test_the_admin_revokes_keys(admin_client, project):
    api_key, key = api_key_create(project=project, name="old")
    response = admin_client.post("/admin/access/apikey/", {"action": "revoke", "_selected_action": [api_key.pk]})
    assert response.status_code == 302
    api_key.refresh_from_db()
    assert api_key.revoked_at is not None
    assert APIClient().get(CONNECTIONS, HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 401


def test_the_command_prints_a_working_key_once(project):
    out, err = StringIO(), StringIO()
    call_command("create_api_key", "--project", str(project.pk), "--name", "newcomer", stdout=out, stderr=err)
    key = out.getvalue().strip()
    assert ApiKey.objects.get().key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert "shown only now" in err.getvalue()
    assert APIClient().get(CONNECTIONS, HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 200


def test_the_command_refuses_an_unknown_project(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="Project 999 does not exist"):
        call_command("create_api_key", "--project", "999", "--name", "x")


# --- Schema, docs and errors outside views --------------------------------------------------


def test_the_schema_is_openapi_3_and_public(db):
    response = APIClient().get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert "/api/v1/syncs/{id}/run/" in schema["paths"]
    assert schema["components"]["securitySchemes"]["apiKey"] == {
        "type": "http", "scheme": "bearer", "description": schema["components"]["securitySchemes"]["apiKey"][
            "description"]}


def test_the_docs_page_uses_only_local_assets(db):
    response = APIClient().get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    assert not re.search(r"https?://", html)  # no CDN: the page works with no internet access
    assets = re.findall(r'(?:src|href)="/static/([^"]+)"', html)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets)
    for asset in assets:
        assert finders.find(asset), asset


def test_unknown_api_urls_are_json_404s(api):
    response = api.get("/api/v1/nothing-here/")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


def test_keys_of_deleted_projects_go_with_them(project):
    api_key, key = api_key_create(project=ProjectFactory(), name="x")
    api_key.project.delete()
    assert not ApiKey.objects.filter(pk=api_key.pk).exists()
    assert APIClient().get(CONNECTIONS, HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 401


def test_last_used_is_written_at_most_once_a_minute(api):
    api.get(CONNECTIONS)
    api.api_key.refresh_from_db()
    first = api.api_key.last_used_at
    api.get(CONNECTIONS)
    api.api_key.refresh_from_db()
    assert api.api_key.last_used_at == first
    ApiKey.objects.filter(pk=api.api_key.pk).update(last_used_at=timezone.now() - timezone.timedelta(minutes=5))
    api.get(CONNECTIONS)
    api.api_key.refresh_from_db()
    assert api.api_key.last_used_at > first
