"""The admin: write-only connection secrets (integrations/admin.py) and the sync screens
(deliveries/admin.py), driven through Django's test client as a superuser."""

import json
import re

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from deliveries.engine import sync_run
from deliveries.models import Sync, SyncRun
from integrations import services
from integrations.models import Connection
from outbound.models import DeliveryAttempt
from tests.factories import ConnectionFactory, ProjectFactory, SyncFactory, UserFactory
from tests.support.receiver import Reply

pytestmark = pytest.mark.django_db

PASSWORD = "hunter2-basic-auth"
API_KEY = "sk_live_0123456789abcdef"


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def connection():
    return ConnectionFactory(
        url="https://hooks.example.com/cohorts", auth_username="bot", auth_password=PASSWORD, api_key=API_KEY,
        headers={"X-Team": "growth"},
    )


def change_url(connection: Connection) -> str:
    return f"/admin/integrations/connection/{connection.pk}/change/"


def form_data(connection: Connection, **overrides) -> dict:
    """What the change form posts when the operator touches nothing but `overrides`."""
    data = {
        "project": connection.project_id,
        "name": connection.name,
        "url": connection.url,
        "format": connection.format,
        "auth_username": connection.auth_username,
        "auth_password": "",
        "api_key": "",
        "headers": json.dumps(connection.headers),
    }
    data.update(overrides)
    return data


# --- Connection secrets are write-only -------------------------------------------------


def test_change_page_never_shows_stored_secrets(admin_client, connection):
    response = admin_client.get(change_url(connection))

    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="auth_password"' in html and 'name="api_key"' in html
    assert PASSWORD not in html
    assert API_KEY not in html


def test_list_page_shows_whether_secrets_are_set_but_not_their_values(admin_client, connection):
    ConnectionFactory(project=connection.project, name="No secrets")

    response = admin_client.get("/admin/integrations/connection/")

    html = response.content.decode()
    assert response.status_code == 200
    # password set / API key set: True for the first, False for the second; neither is signed.
    assert html.count('alt="True"') == 2 and html.count('alt="False"') == 2 + 2
    assert PASSWORD not in html and API_KEY not in html


def test_blank_secret_fields_keep_the_stored_secrets(admin_client, connection):
    response = admin_client.post(change_url(connection), form_data(connection, name="Renamed"))

    assert response.status_code == 302
    saved = Connection.objects.get(pk=connection.pk)
    assert saved.name == "Renamed"
    assert (saved.auth_password, saved.api_key) == (PASSWORD, API_KEY)


def test_typed_secrets_replace_the_stored_ones(admin_client, connection):
    data = form_data(connection, auth_password="new-pw", api_key="new-key")

    response = admin_client.post(change_url(connection), data)

    assert response.status_code == 302
    saved = Connection.objects.get(pk=connection.pk)
    assert (saved.auth_password, saved.api_key) == ("new-pw", "new-key")


def test_clear_removes_a_stored_secret(admin_client, connection):
    response = admin_client.post(change_url(connection), form_data(connection, clear_auth_password="on"))

    assert response.status_code == 302
    saved = Connection.objects.get(pk=connection.pk)
    assert saved.auth_password == ""
    assert saved.api_key == API_KEY

    admin_client.post(change_url(connection), form_data(saved, clear_api_key="on"))

    assert Connection.objects.get(pk=connection.pk).api_key == ""


def test_six_headers_give_a_form_error_on_the_page(admin_client, connection):
    headers = {f"X-Custom-{i}": "v" for i in range(6)}

    response = admin_client.post(change_url(connection), form_data(connection, headers=json.dumps(headers)))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["headers"] == [
        "At most 5 custom headers are allowed (got 6)."
    ]
    html = response.content.decode()
    assert "At most 5 custom headers are allowed (got 6)." in html
    assert PASSWORD not in html and API_KEY not in html
    assert Connection.objects.get(pk=connection.pk).headers == {"X-Team": "growth"}


def test_kept_api_key_still_forbids_an_x_api_key_header(admin_client, connection):
    response = admin_client.post(
        change_url(connection), form_data(connection, headers=json.dumps({"X-Api-Key": "other"}))
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["headers"] == [
        "Header 'X-Api-Key' is set by Cohortsync and cannot be overridden."
    ]


def test_private_url_gives_a_form_error_when_not_allowed(admin_client, connection, settings):
    settings.COHORTSYNC_ALLOW_PRIVATE_URLS = False

    response = admin_client.post(change_url(connection), form_data(connection, url="http://169.254.169.254/latest"))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["url"] == [
        "Destination address 169.254.169.254 is private, loopback or reserved."
    ]
    assert Connection.objects.get(pk=connection.pk).url == "https://hooks.example.com/cohorts"


def test_add_form_creates_an_encrypted_connection(admin_client):
    project = ProjectFactory()

    response = admin_client.post(
        "/admin/integrations/connection/add/",
        {"project": project.pk, "name": "New", "url": "https://hooks.example.com/new", "format": "mixpanel",
         "auth_username": "bot", "auth_password": PASSWORD, "api_key": "", "headers": "{}"},
    )

    assert response.status_code == 302
    created = Connection.objects.get(name="New")
    assert created.auth_password == PASSWORD
    assert created.api_key == ""


def secret_inputs(html: str) -> dict[str, str]:
    """The rendered value of each secret field (an <input type="password">; no value attribute: "")."""
    inputs = re.findall(r'<input type="password" name="(auth_password|api_key)"([^>]*)>', html)
    return {name: (re.findall(r'value="([^"]*)"', attributes) or [""])[0] for name, attributes in inputs}


def test_a_failed_add_form_keeps_what_was_typed_into_the_secret_fields(admin_client):
    project = ProjectFactory()
    add_page = admin_client.get("/admin/integrations/connection/add/").content.decode()
    assert "Leave blank to keep" not in add_page  # nothing is stored yet on an Add form

    response = admin_client.post(
        "/admin/integrations/connection/add/",
        {"project": project.pk, "name": "New", "url": "https://hooks.example.com/new", "format": "mixpanel",
         "auth_username": "bot", "auth_password": PASSWORD, "api_key": API_KEY,
         "headers": json.dumps({f"X-Custom-{i}": "v" for i in range(6)})},
    )

    assert response.status_code == 200 and response.context["adminform"].form.errors["headers"]
    assert secret_inputs(response.content.decode()) == {"auth_password": PASSWORD, "api_key": API_KEY}
    assert not Connection.objects.filter(name="New").exists()


def test_a_failed_change_form_renders_typed_secrets_but_never_stored_ones(admin_client, connection):
    headers = json.dumps({f"X-Custom-{i}": "v" for i in range(6)})

    kept = admin_client.post(change_url(connection), form_data(connection, headers=headers))
    typed = admin_client.post(change_url(connection), form_data(connection, headers=headers, api_key="new-key"))

    assert secret_inputs(kept.content.decode()) == {"auth_password": "", "api_key": ""}
    assert secret_inputs(typed.content.decode()) == {"auth_password": "", "api_key": "new-key"}
    assert secret_inputs(admin_client.get(change_url(connection)).content.decode()) == {
        "auth_password": "", "api_key": ""}


# --- Syncs and runs --------------------------------------------------------------------


def changelist_action(admin_client, action: str, syncs) -> None:
    response = admin_client.post(
        "/admin/deliveries/sync/", {"action": action, "_selected_action": [s.pk for s in syncs], "index": 0}
    )
    assert response.status_code == 302


def test_sync_list_loads_with_each_sync(admin_client):
    syncs = [SyncFactory(), SyncFactory(state=Sync.State.PAUSED, last_error_message="Invalid API key")]

    response = admin_client.get("/admin/deliveries/sync/")

    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == sorted(syncs, key=lambda s: -s.pk)
    assert "Invalid API key" in response.content.decode()


def test_resume_action_reactivates_paused_syncs_only(admin_client):
    paused = SyncFactory(state=Sync.State.PAUSED, paused_at=timezone.now(), next_run_at=None)
    finished = SyncFactory(state=Sync.State.FINISHED, next_run_at=None)

    changelist_action(admin_client, "resume", [paused, finished])

    paused.refresh_from_db()
    finished.refresh_from_db()
    assert paused.state == Sync.State.ACTIVE
    assert paused.paused_at is None
    assert paused.next_run_at is not None and paused.next_run_at <= timezone.now()
    assert finished.state == Sync.State.FINISHED


def test_full_refresh_action_marks_the_next_run_full(admin_client, make_sync, receiver):
    sync = make_sync(members=["A", "B"])
    assert sync_run(sync_id=sync.pk, trigger="manual").status == SyncRun.Status.SUCCEEDED
    receiver.clear()

    changelist_action(admin_client, "full_refresh", [sync])

    sync.refresh_from_db()
    assert sync.force_full is True
    run = sync_run(sync_id=sync.pk, trigger="manual")
    assert (run.kind, run.reason) == (SyncRun.Kind.FULL, "full refresh")
    assert [r.action for r in receiver.requests] == ["members"]
    sync.refresh_from_db()
    assert sync.force_full is False


def test_pause_action_pauses_without_emailing(admin_client, mailoutbox):
    sync = SyncFactory()

    changelist_action(admin_client, "pause", [sync])

    sync.refresh_from_db()
    assert sync.state == Sync.State.PAUSED
    assert sync.last_error_message == "paused by an operator"
    assert mailoutbox == []


def test_run_now_action_enqueues_after_commit(admin_client, django_capture_on_commit_callbacks):
    syncs = [SyncFactory(), SyncFactory()]

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        changelist_action(admin_client, "run_now", syncs)

    assert len(callbacks) == 2


def test_sync_run_change_page_shows_its_attempts_inline(admin_client, make_sync, receiver):
    sync = make_sync(members=["A"])
    receiver.reply(Reply(status=503, body={"status": "failure", "error": {"message": "warming up", "code": 503}}))
    run = sync_run(sync_id=sync.pk, trigger="manual")
    assert run.status == SyncRun.Status.SUCCEEDED

    response = admin_client.get(f"/admin/deliveries/syncrun/{run.pk}/change/")

    assert response.status_code == 200
    (attempts,) = response.context["inline_admin_formsets"]
    shown = [form.original for form in attempts]
    assert shown == list(DeliveryAttempt.objects.filter(run=run).order_by("attempt_number"))
    assert [(a.attempt_number, a.outcome, a.http_status) for a in shown] == [(1, "transient", 503), (2, "success", 200)]
    html = response.content.decode()
    assert "warming up" in html
    assert "Delivery attempts" in html


def test_rotating_the_signing_secret_shows_it_once(admin_client, connection):
    response = admin_client.post("/admin/integrations/connection/", {
        "action": "rotate_signing_secret", "_selected_action": [connection.pk]}, follow=True)

    connection.refresh_from_db()
    assert connection.signing_secret.startswith("whsec_")
    assert connection.signing_secret in response.content.decode()  # the one time it is shown
    page = admin_client.get(change_url(connection)).content.decode()
    assert connection.signing_secret not in page


def test_a_change_goes_through_connection_update_and_its_refusal_is_a_form_error(admin_client, connection,
                                                                                   monkeypatch):
    calls = []

    def refuse(*, connection, **fields):
        calls.append(fields["name"])
        raise ValidationError({"url": "Refused by the service."})

    monkeypatch.setattr(services, "connection_update", refuse)
    response = admin_client.post(change_url(connection), form_data(connection, name="Renamed"))

    assert calls == ["Renamed"]
    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {"url": ["Refused by the service."]}
    assert Connection.objects.get(pk=connection.pk).name != "Renamed"
