"""Connection secrets are encrypted at rest and rotate by prepending a key (integrations/fields.py)."""

import json

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.db import connection as db

from integrations.fields import UnreadableSecret
from integrations.models import Connection
from tests.factories import ConnectionFactory

pytestmark = pytest.mark.django_db

PASSWORD = "hunter2-basic-auth"
API_KEY = "sk_live_0123456789abcdef"


def new_key() -> str:
    return Fernet.generate_key().decode()


def raw_secrets(connection: Connection) -> tuple[str, str]:
    """The stored columns, bypassing the field's decryption."""
    table = Connection._meta.db_table
    with db.cursor() as cursor:
        cursor.execute(f"SELECT auth_password, api_key FROM {table} WHERE id = %s", [connection.pk])
        return cursor.fetchone()


def decrypts_with(key: str, token: str) -> str:
    return Fernet(key.encode()).decrypt(token.encode()).decode()


@pytest.fixture
def key_a(settings):
    key = new_key()
    settings.COHORTSYNC_ENCRYPTION_KEYS = [key]
    return key


def test_secrets_are_stored_encrypted_and_read_back_as_plaintext(key_a):
    connection = ConnectionFactory(auth_username="bot", auth_password=PASSWORD, api_key=API_KEY)

    stored_password, stored_key = raw_secrets(connection)
    assert PASSWORD not in stored_password
    assert API_KEY not in stored_key
    assert decrypts_with(key_a, stored_password) == PASSWORD
    assert decrypts_with(key_a, stored_key) == API_KEY
    reloaded = Connection.objects.get(pk=connection.pk)
    assert (reloaded.auth_password, reloaded.api_key) == (PASSWORD, API_KEY)
    assert reloaded.has_password and reloaded.has_api_key


def test_equal_secrets_do_not_give_equal_ciphertexts(key_a):
    first = ConnectionFactory(api_key=API_KEY)
    second = ConnectionFactory(api_key=API_KEY)

    assert raw_secrets(first)[1] != raw_secrets(second)[1]


def test_empty_secrets_are_stored_empty(key_a):
    connection = ConnectionFactory(auth_password="", api_key="")

    assert raw_secrets(connection) == ("", "")
    reloaded = Connection.objects.get(pk=connection.pk)
    assert (reloaded.auth_password, reloaded.api_key) == ("", "")
    assert not reloaded.has_password and not reloaded.has_api_key


def test_prepending_a_key_keeps_old_secrets_readable_and_resaving_moves_them_to_it(settings, key_a):
    connection = ConnectionFactory(auth_username="bot", auth_password=PASSWORD, api_key=API_KEY)
    key_b = new_key()

    settings.COHORTSYNC_ENCRYPTION_KEYS = [key_b, key_a]
    reloaded = Connection.objects.get(pk=connection.pk)
    assert (reloaded.auth_password, reloaded.api_key) == (PASSWORD, API_KEY)
    old_password_token, _ = raw_secrets(connection)
    assert decrypts_with(key_a, old_password_token) == PASSWORD

    reloaded.save()

    new_password_token, new_key_token = raw_secrets(connection)
    assert decrypts_with(key_b, new_password_token) == PASSWORD
    assert decrypts_with(key_b, new_key_token) == API_KEY
    with pytest.raises(InvalidToken):
        decrypts_with(key_a, new_password_token)
    # Once every row is re-saved, the old key can go.
    settings.COHORTSYNC_ENCRYPTION_KEYS = [key_b]
    assert Connection.objects.get(pk=connection.pk).api_key == API_KEY


def test_a_removed_key_gives_a_clear_error_naming_the_connection(settings, key_a):
    connection = ConnectionFactory(name="CRM", api_key=API_KEY)

    settings.COHORTSYNC_ENCRYPTION_KEYS = [new_key()]

    reloaded = Connection.objects.get(pk=connection.pk)  # loading decrypts nothing yet
    assert reloaded.has_api_key
    with pytest.raises(UnreadableSecret, match=rf"Connection {connection.pk} \(“CRM”\): its api_key cannot be "
                                               "decrypted with any key in COHORTSYNC_ENCRYPTION_KEYS"):
        reloaded.api_key  # noqa: B018


def test_header_values_are_stored_encrypted_and_names_readable(key_a):
    connection = ConnectionFactory(headers={"X-Team": "growth-secret", "X-Empty": ""})

    with db.cursor() as cursor:
        cursor.execute(f"SELECT headers FROM {Connection._meta.db_table} WHERE id = %s", [connection.pk])
        raw = cursor.fetchone()[0]
    stored = json.loads(raw) if isinstance(raw, str) else raw
    assert set(stored) == {"X-Team", "X-Empty"} and "growth-secret" not in str(raw)
    assert decrypts_with(key_a, stored["X-Team"]) == "growth-secret" and stored["X-Empty"] == ""
    reloaded = Connection.objects.get(pk=connection.pk)
    assert reloaded.header_names == {"X-Team": True, "X-Empty": False}
    assert reloaded.headers == {"X-Team": "growth-secret", "X-Empty": ""}


def test_connections_without_secrets_load_under_any_key(settings, key_a):
    connection = ConnectionFactory(api_key="", auth_password="")

    settings.COHORTSYNC_ENCRYPTION_KEYS = [new_key()]

    assert Connection.objects.get(pk=connection.pk).name == connection.name
