"""manage.py rotate_encryption_keys: every stored secret moves to the first key, so old keys can go."""

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command

from integrations.models import Connection
from integrations.services import connection_rotate_signing_secret
from tests.factories import ConnectionFactory

pytestmark = pytest.mark.django_db


def new_key() -> str:
    return Fernet.generate_key().decode()


def test_rotation_moves_every_secret_to_the_first_key(settings, capsys):
    old = new_key()
    settings.COHORTSYNC_ENCRYPTION_KEYS = [old]
    connection = ConnectionFactory(auth_username="bot", auth_password="pass-1", api_key="key-1",
                                   headers={"X-Token": "tok-1", "X-Empty": ""})
    connection_rotate_signing_secret(connection=connection)
    signing_secret = Connection.objects.get(pk=connection.pk).signing_secret
    ConnectionFactory()  # no secrets: nothing to do

    settings.COHORTSYNC_ENCRYPTION_KEYS = [new_key(), old]
    call_command("rotate_encryption_keys")

    assert "Re-encrypted the secrets of 1 connection(s)" in capsys.readouterr().out
    settings.COHORTSYNC_ENCRYPTION_KEYS = settings.COHORTSYNC_ENCRYPTION_KEYS[:1]  # the old key dropped
    rotated = Connection.objects.get(pk=connection.pk)
    assert (rotated.auth_password, rotated.api_key, rotated.signing_secret) == ("pass-1", "key-1", signing_secret)
    assert rotated.headers == {"X-Token": "tok-1", "X-Empty": ""}


def test_a_secret_no_key_decrypts_names_the_connection_and_changes_nothing(settings):
    old = new_key()
    settings.COHORTSYNC_ENCRYPTION_KEYS = [old]
    lost = ConnectionFactory(name="Lost", api_key="key-1")  # its key `old` is dropped below
    settings.COHORTSYNC_ENCRYPTION_KEYS = [new_key()]
    readable = ConnectionFactory(name="Readable", api_key="key-2")
    settings.COHORTSYNC_ENCRYPTION_KEYS = [new_key(), settings.COHORTSYNC_ENCRYPTION_KEYS[0]]
    before = Connection.objects.filter(pk=readable.pk).values_list("api_key", flat=True).get()

    with pytest.raises(CommandError) as raised:
        call_command("rotate_encryption_keys")

    assert f"Connection {lost.pk} (“Lost”): its api_key cannot be decrypted" in str(raised.value)
    assert "Nothing was changed." in str(raised.value) and "Readable" not in str(raised.value)
    assert Connection.objects.filter(pk=readable.pk).values_list("api_key", flat=True).get() == before
