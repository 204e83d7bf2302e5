"""connections/: CRUD with write-only secrets, header rules, the test send."""

import base64
import json

import pytest
from cryptography.fernet import Fernet

from integrations.models import Connection
from tests.factories import ConnectionFactory, SyncFactory
from tests.support.receiver import Reply

pytestmark = pytest.mark.django_db

URL = "/api/v1/connections/"


def test_create_keeps_secrets_and_never_shows_them(api):
    response = api.post(URL, {
        "name": "CRM", "url": "https://crm.example.com/hook", "auth_username": "cohortsync",
        "auth_password": "s3cret-pass", "api_key": "k-123456", "headers": {"X-Team": "growth"},
    })
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["has_password"] is True and body["has_api_key"] is True
    assert "auth_password" not in body and "api_key" not in body
    assert "s3cret-pass" not in response.content.decode() and "k-123456" not in response.content.decode()
    connection = Connection.objects.get(pk=body["id"])
    assert (connection.project, connection.auth_password, connection.api_key) == (api.project, "s3cret-pass",
                                                                                   "k-123456")
    for read in (api.get(f"{URL}{connection.pk}/"), api.get(URL)):
        assert "s3cret-pass" not in read.content.decode() and "k-123456" not in read.content.decode()
    assert api.get(f"{URL}{connection.pk}/").json() == body


def test_list_and_read(api):
    connection = ConnectionFactory(project=api.project, name="Hooks", url="https://hooks.example.com/in")
    listed = api.get(URL).json()
    assert listed["count"] == 1
    assert listed["results"][0] == api.get(f"{URL}{connection.pk}/").json()
    assert listed["results"][0]["has_password"] is False
    assert listed["results"][0]["url"] == "https://hooks.example.com/in"


def test_update_changes_given_fields_and_keeps_omitted_secrets(api):
    connection = ConnectionFactory(project=api.project, auth_username="u", auth_password="old", api_key="key")
    response = api.patch(f"{URL}{connection.pk}/", {"name": "Renamed", "auth_password": "new"})
    assert response.status_code == 200, response.json()
    connection.refresh_from_db()
    assert (connection.name, connection.auth_password, connection.api_key) == ("Renamed", "new", "key")
    response = api.patch(f"{URL}{connection.pk}/", {"api_key": ""})
    assert response.json()["has_api_key"] is False
    connection.refresh_from_db()
    assert connection.api_key == "" and connection.auth_password == "new"


def test_put_is_not_offered(api):
    connection = ConnectionFactory(project=api.project)
    assert api.put(f"{URL}{connection.pk}/", {"name": "x", "url": "https://example.com"}).status_code == 405


def test_delete(api):
    connection = ConnectionFactory(project=api.project)
    assert api.delete(f"{URL}{connection.pk}/").status_code == 204
    assert not Connection.objects.filter(pk=connection.pk).exists()


def test_delete_of_a_connection_in_use_is_a_409(api):
    sync = SyncFactory(cohort__project=api.project)
    response = api.delete(f"{URL}{sync.connection_id}/")
    assert response.status_code == 409
    assert response.json() == {"detail": f"Cannot delete it: it is used by 1 sync ({sync.pk}); delete it first."}


@pytest.mark.parametrize("headers, message", [
    ({"Content-Type": "text/plain"}, "Header 'Content-Type' is set by Cohortsync and cannot be overridden."),
    ({"Authorization": "Bearer x"}, "Header 'Authorization' is set by Cohortsync and cannot be overridden."),
    ({"Bad Name": "x"}, "Header name 'Bad Name' is not a valid HTTP header name."),
    ({f"X-H{i}": "v" for i in range(6)}, "At most 5 custom headers are allowed (got 6)."),
    ({"X-Space": " padded"}, "Header 'X-Space' starts or ends with whitespace."),
])
def test_header_rules_are_400s_on_the_headers_field(api, headers, message):
    response = api.post(URL, {"name": "x", "url": "https://example.com/h", "headers": headers})
    assert response.status_code == 400
    assert message in response.json()["headers"]


def test_x_api_key_header_is_refused_when_an_api_key_is_set(api):
    response = api.post(URL, {"name": "x", "url": "https://example.com/h", "api_key": "k",
                              "headers": {"X-Api-Key": "other"}})
    assert response.json() == {"headers": ["Header 'X-Api-Key' is set by Cohortsync and cannot be overridden."]}


@pytest.mark.parametrize("payload, field", [
    ({"name": "x", "url": "ftp://example.com"}, "url"),
    ({"name": "x", "url": "https://user:pw@example.com"}, "url"),
    ({"name": "x", "url": "https://example.com", "auth_password": "pw"}, "auth_username"),
    ({"url": "https://example.com"}, "name"),
    ({"name": "x", "url": "https://example.com", "format": "csv"}, "format"),
    ({"name": "x", "url": "https://example.com", "headers": ["X-A"]}, "headers"),
])
def test_validation_errors_name_the_field(api, payload, field):
    response = api.post(URL, payload)
    assert response.status_code == 400
    assert list(response.json()) == [field]


def test_private_destinations_are_refused_unless_allowed(api, settings):
    settings.COHORTSYNC_ALLOW_PRIVATE_URLS = False
    response = api.post(URL, {"name": "x", "url": "http://10.0.0.5/hook"})
    assert response.json() == {"url": ["Destination address 10.0.0.5 is private, loopback or reserved."]}


def test_the_test_action_reports_the_receivers_answer(api, receiver):
    connection = ConnectionFactory(project=api.project, url=receiver.url(), api_key="secret-key")
    response = api.post(f"{URL}{connection.pk}/test/")
    assert response.status_code == 200
    result = response.json()
    assert result["outcome"] == "success" and result["http_status"] == 200
    assert result["latency_ms"] >= 0
    assert '"status": "success"' in result["response_excerpt"]
    sent = receiver.requests[0]
    assert sent.action == "add_members" and sent.members == []
    assert sent.headers["x-api-key"] == "secret-key"
    assert "secret-key" not in response.content.decode()


def test_the_test_action_reports_a_refusal(api, receiver):
    receiver.reply(Reply(status=401, body={"status": "failure", "error": {"message": "bad token", "code": 401}}))
    connection = ConnectionFactory(project=api.project, url=receiver.url())
    result = api.post(f"{URL}{connection.pk}/test/").json()
    assert (result["outcome"], result["http_status"], result["message"]) == ("pause", 401, "bad token")
    assert "bad token" in result["response_excerpt"]


def test_the_test_action_reports_an_unreachable_receiver(api):
    connection = ConnectionFactory(project=api.project, url="http://127.0.0.1:9/hook")
    result = api.post(f"{URL}{connection.pk}/test/").json()
    assert result["http_status"] is None and result["outcome"] == "transient"


def test_another_projects_connection_cannot_be_tested(api, other_project, receiver):
    connection = ConnectionFactory(project=other_project, url=receiver.url())
    assert api.post(f"{URL}{connection.pk}/test/").status_code == 404
    assert receiver.requests == []


def test_no_credentials(db, client):
    assert client.get(URL).status_code == 401
    assert client.post(URL, {}, content_type="application/json").status_code == 401


# --- Formats and signing --------------------------------------------------------------------


def test_template_format_page_size_and_content_type(api, receiver):
    template = '{"event": {{ input.action | json }}, "ids": [{% for u in input.users %}{{ u.user_id | json }}' \
               '{% if not loop.last %},{% endif %}{% endfor %}]}'
    response = api.post(URL, {"name": "Custom", "url": receiver.url(), "format": "template",
                              "body_template": template, "page_size": 200, "content_type": "application/json"})
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["format"], body["body_template"], body["page_size"]) == ("template", template, 200)
    result = api.post(f"{URL}{body['id']}/test/").json()
    assert result["outcome"] == "success"
    assert receiver.requests[0].json == {"event": "add_members", "ids": []}


@pytest.mark.parametrize("payload, field", [
    ({"format": "template"}, "body_template"),
    ({"format": "template", "body_template": "{{ input.users | json"}, "body_template"),
    ({"page_size": 0}, "page_size"),
    ({"page_size": 1001}, "page_size"),
    ({"content_type": "json"}, "content_type"),
])
def test_format_validation_names_the_field(api, payload, field):
    response = api.post(URL, {"name": "x", "url": "https://example.com/h", **payload})
    assert response.status_code == 400
    assert list(response.json()) == [field]


def test_signing_secrets_are_shown_once_and_rotate_with_an_overlap(api, receiver):
    connection = ConnectionFactory(project=api.project, url=receiver.url())
    assert api.get(f"{URL}{connection.pk}/").json()["has_signing_secret"] is False
    first = api.post(f"{URL}{connection.pk}/signing-secret/").json()
    assert first["signing_secret"].startswith("whsec_") and first["previous_signing_secret_expires_at"] is None
    read = api.get(f"{URL}{connection.pk}/")
    assert read.json()["has_signing_secret"] is True and first["signing_secret"] not in read.content.decode()
    second = api.post(f"{URL}{connection.pk}/signing-secret/", {"overlap_hours": 2}).json()
    assert second["signing_secret"] != first["signing_secret"]
    assert second["previous_signing_secret_expires_at"] is not None
    connection.refresh_from_db()
    assert connection.active_signing_secrets == (second["signing_secret"], first["signing_secret"])
    api.post(f"{URL}{connection.pk}/test/")
    assert len(receiver.requests[0].headers["webhook-signature"].split()) == 2  # one signature a secret
    assert api.delete(f"{URL}{connection.pk}/signing-secret/").status_code == 204
    assert api.get(f"{URL}{connection.pk}/").json()["has_signing_secret"] is False


def test_signing_overlap_bounds(api):
    connection = ConnectionFactory(project=api.project)
    response = api.post(f"{URL}{connection.pk}/signing-secret/", {"overlap_hours": -1})
    assert response.status_code == 400 and list(response.json()) == ["overlap_hours"]


def test_another_projects_signing_secret_cannot_be_touched(api, other_project):
    connection = ConnectionFactory(project=other_project)
    assert api.post(f"{URL}{connection.pk}/signing-secret/").status_code == 404
    assert api.delete(f"{URL}{connection.pk}/signing-secret/").status_code == 404
    connection.refresh_from_db()
    assert connection.signing_secret == ""


# --- A changed destination cannot be used to read the stored secrets (issue #15, part 1) --


def secret_connection(project, url):
    from integrations.services import connection_create, connection_rotate_signing_secret

    connection = connection_create(project=project, name="CRM", url=url, auth_username="bot",
                                   auth_password="basic-pass-123", api_key="key-456789",
                                   headers={"X-Token": "header-secret-789"})
    connection_rotate_signing_secret(connection=connection)
    return connection


def test_moving_a_connection_to_another_host_drops_its_secrets_before_the_test_send(api, receiver):
    # The attacker's host: another port on loopback, here the test receiver.
    connection = secret_connection(api.project, "http://127.0.0.1:9/hook")

    response = api.patch(f"{URL}{connection.pk}/", {"url": receiver.url("/steal")})

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["dropped_secrets"] == ["auth_password", "api_key", "signing_secret", "headers.X-Token"]
    assert (body["has_password"], body["has_api_key"], body["has_signing_secret"]) == (False, False, False)
    assert body["headers"] == [{"name": "X-Token", "has_value": False}]
    assert api.post(f"{URL}{connection.pk}/test/").json()["outcome"] == "success"
    sent = receiver.requests[0]
    wire = str(sent.headers) + sent.body.decode()
    for secret in ("basic-pass-123", "key-456789", "header-secret-789"):
        assert secret not in wire
    assert sent.headers["authorization"] == "Basic " + base64.b64encode(b"bot:").decode()  # the name is no secret
    assert "webhook-signature" not in {name.lower() for name in sent.headers}


def test_secrets_given_again_with_the_new_url_are_kept(api, receiver):
    connection = secret_connection(api.project, "http://127.0.0.1:9/hook")

    body = api.patch(f"{URL}{connection.pk}/", {"url": receiver.url(), "auth_password": "new-pass-1",
                                                "headers": {"X-Token": "new-token-1"}}).json()

    assert body["dropped_secrets"] == ["api_key", "signing_secret"]
    api.post(f"{URL}{connection.pk}/test/")
    sent = receiver.requests[0]
    assert sent.headers["x-token"] == "new-token-1" and "x-api-key" not in sent.headers


def test_a_new_path_on_the_same_origin_keeps_the_secrets(api):
    connection = secret_connection(api.project, "https://crm.example.com/hook")

    body = api.patch(f"{URL}{connection.pk}/", {"url": "https://crm.example.com:443/other?x=1"}).json()

    assert body["dropped_secrets"] == []
    assert (body["has_password"], body["has_api_key"], body["has_signing_secret"]) == (True, True, True)
    connection.refresh_from_db()
    assert connection.headers == {"X-Token": "header-secret-789"}


@pytest.mark.parametrize("url", ["https://crm.example.com/hook", "http://crm.example.com:443/hook",
                                 "http://crm.example.com:8443/hook"])
def test_scheme_and_port_changes_count_as_a_move(api, url):
    connection = secret_connection(api.project, "http://crm.example.com:443/hook")

    assert "api_key" in api.patch(f"{URL}{connection.pk}/", {"url": url}).json()["dropped_secrets"] or (
        url == "http://crm.example.com:443/hook")


def test_header_values_are_write_only_and_null_keeps_one(api, receiver):
    connection = secret_connection(api.project, receiver.url())
    assert "header-secret-789" not in api.get(f"{URL}{connection.pk}/").content.decode()

    body = api.patch(f"{URL}{connection.pk}/", {"headers": {"X-Token": None, "X-Extra": "more"}}).json()

    assert body["headers"] == [{"name": "X-Token", "has_value": True}, {"name": "X-Extra", "has_value": True}]
    connection.refresh_from_db()
    assert connection.headers == {"X-Token": "header-secret-789", "X-Extra": "more"}
    response = api.patch(f"{URL}{connection.pk}/", {"headers": {"X-Unknown": None}})
    assert response.status_code == 400
    assert response.json() == {"headers": ["Header 'X-Unknown' has no stored value to keep: give its value."]}


def test_a_receiver_echoing_our_secrets_gets_them_redacted(api, receiver):
    connection = secret_connection(api.project, receiver.url())
    receiver.respond_with(lambda request: Reply(status=400, body=json.dumps(
        {"status": "failure", "error": {"message": f"you sent {dict(request.headers)}"}})))

    result = api.post(f"{URL}{connection.pk}/test/").json()

    assert "[redacted]" in result["response_excerpt"]
    encoded = base64.b64encode(b"bot:basic-pass-123").decode()
    for secret in ("key-456789", "header-secret-789", encoded):
        assert secret not in result["response_excerpt"] and secret not in result["message"]


def test_an_unreadable_secret_is_a_409_naming_the_connection(api, settings):
    connection = ConnectionFactory(project=api.project, name="CRM", api_key="key-456789")
    settings.COHORTSYNC_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]

    assert api.get(URL).status_code == 200 and api.get(f"{URL}{connection.pk}/").json()["has_api_key"] is True
    response = api.post(f"{URL}{connection.pk}/test/")

    assert response.status_code == 409
    assert response.json()["detail"].startswith(f"Connection {connection.pk} (“CRM”): its api_key cannot be "
                                                 "decrypted with any key in COHORTSYNC_ENCRYPTION_KEYS.")
