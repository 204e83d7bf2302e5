"""Encryption at rest for connection secrets (cryptography's MultiFernet).

A loaded row keeps its tokens and decrypts a secret only when code reads it, so a secret that
no configured key decrypts fails with an error naming its row (not a bare 500 or a 404), and
reads that only need to know whether a secret is set never decrypt anything. `values()` and
`values_list()` give the tokens as stored (key rotation works on them).
"""

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import models
from django.db.models.query_utils import DeferredAttribute

from outbound.errors import StateConflict


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key.encode()) for key in keys])


def fernet() -> MultiFernet:
    # The first key encrypts; every key decrypts, so keys rotate by prepending a new one.
    return _fernet(tuple(settings.COHORTSYNC_ENCRYPTION_KEYS))


class UnreadableSecret(StateConflict):
    """A stored secret that no key in COHORTSYNC_ENCRYPTION_KEYS decrypts (a key was dropped too soon)."""

    def __init__(self, *, instance, field: str):
        self.instance, self.field = instance, field
        meta = instance._meta
        super().__init__(
            f"{meta.verbose_name.capitalize()} {instance.pk} (“{instance}”): its {field} cannot be decrypted with "
            "any key in COHORTSYNC_ENCRYPTION_KEYS. Restore the key it was encrypted with (then run "
            "`manage.py rotate_encryption_keys`), or set the secret again."
        )


class Token(str):
    """A Fernet token as stored, not yet decrypted."""


class EncryptedHeaders(dict):
    """Custom headers as stored: names in clear, each value a Fernet token."""


def rotate_token(token: str) -> str:
    """The token re-encrypted with the first key (raises InvalidToken if no key decrypts it)."""
    return fernet().rotate(token.encode()).decode()


class _DecryptOnRead(DeferredAttribute):
    # A data descriptor (it has __set__), so reads come here even when the token is in __dict__.
    def __set__(self, instance, value):
        instance.__dict__[self.field.attname] = value

    def __get__(self, instance, cls=None):
        if instance is None:
            return self
        value = super().__get__(instance, cls)
        if isinstance(value, (Token, EncryptedHeaders)):
            try:
                value = self.field.decrypt(value)
            except InvalidToken:
                raise UnreadableSecret(instance=instance, field=self.field.name) from None
            instance.__dict__[self.field.attname] = value
        return value


def stored_value(instance, field: str):
    """A secret field's value as loaded (a token, or plaintext set since), without decrypting it."""
    if field not in instance.__dict__:  # deferred: load it
        instance.refresh_from_db(fields=[field])
    return instance.__dict__[field]


class EncryptedTextField(models.TextField):
    """Stores a Fernet token; Python code only ever sees the plaintext."""

    descriptor_class = _DecryptOnRead

    def from_db_value(self, value, expression, connection):
        return Token(value) if value else ""

    @staticmethod
    def decrypt(token: Token) -> str:
        return fernet().decrypt(token.encode()).decode()

    def get_prep_value(self, value):
        if isinstance(value, Token):
            return str(value)  # never read, so unchanged: store it as it came
        value = super().get_prep_value(value)
        if not value:
            return ""
        return fernet().encrypt(value.encode()).decode()


class EncryptedHeadersField(models.JSONField):
    """Custom headers {name: value}: the names stay readable (lists show them), each value is a
    Fernet token. Values are secrets as much as a password: receivers use them for auth."""

    descriptor_class = _DecryptOnRead

    def from_db_value(self, value, expression, connection):
        value = super().from_db_value(value, expression, connection)
        if not isinstance(value, dict):
            return value
        return EncryptedHeaders(value)

    @staticmethod
    def decrypt(headers: EncryptedHeaders) -> dict[str, str]:
        return {name: fernet().decrypt(token.encode()).decode() if token else "" for name, token in headers.items()}

    def get_prep_value(self, value):
        if isinstance(value, dict) and not isinstance(value, EncryptedHeaders):
            value = {name: fernet().encrypt(v.encode()).decode() if isinstance(v, str) and v else v
                     for name, v in value.items()}
        return super().get_prep_value(dict(value) if isinstance(value, dict) else value)
