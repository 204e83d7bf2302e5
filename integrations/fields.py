"""Encryption at rest for connection secrets (cryptography's MultiFernet)."""

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import models


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key.encode()) for key in keys])


def fernet() -> MultiFernet:
    # The first key encrypts; every key decrypts, so keys rotate by prepending a new one.
    return _fernet(tuple(settings.COHORTSYNC_ENCRYPTION_KEYS))


class EncryptedTextField(models.TextField):
    """Stores a Fernet token; Python code only ever sees the plaintext."""

    def from_db_value(self, value, expression, connection):
        if not value:
            return ""
        try:
            return fernet().decrypt(value.encode()).decode()
        except InvalidToken as exc:  # a key was removed before its tokens were rotated
            raise ValueError(f"cannot decrypt {self.name}: no configured key matches") from exc

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if not value:
            return ""
        return fernet().encrypt(value.encode()).decode()
