"""Production settings refuse to start without their secrets (config/settings.py), and API clients
get JSON errors in every mode (access/api.py)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from tests.api.conftest import key_client
from tests.factories import ProjectFactory

ROOT = Path(__file__).resolve().parents[2]


def manage_check(**env) -> subprocess.CompletedProcess:
    """`manage.py check` in a clean environment (no DJANGO_*/COHORTSYNC_* from the caller) plus `env`."""
    base = {name: value for name, value in os.environ.items() if not name.startswith(("DJANGO_", "COHORTSYNC_"))}
    return subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env={**base, **env},
                          capture_output=True, text=True, timeout=120)


def test_production_refuses_the_default_secret_key():
    result = manage_check(DJANGO_DEBUG="false", COHORTSYNC_ENCRYPTION_KEYS=Fernet.generate_key().decode())

    assert result.returncode != 0
    assert "ImproperlyConfigured: DJANGO_SECRET_KEY must be set when DJANGO_DEBUG=false" in result.stderr


def test_production_refuses_to_run_without_encryption_keys():
    result = manage_check(DJANGO_DEBUG="false", DJANGO_SECRET_KEY="a-real-secret-for-this-test")

    assert result.returncode != 0
    assert "ImproperlyConfigured: COHORTSYNC_ENCRYPTION_KEYS must be set when DJANGO_DEBUG=false" in result.stderr


def test_a_malformed_encryption_key_is_refused():
    result = manage_check(COHORTSYNC_ENCRYPTION_KEYS="not-a-key")

    assert result.returncode != 0
    assert "COHORTSYNC_ENCRYPTION_KEYS holds a value that is not a Fernet key" in result.stderr


def test_production_starts_with_both_set():
    result = manage_check(DJANGO_DEBUG="false", DJANGO_SECRET_KEY="a-real-secret-for-this-test",
                          COHORTSYNC_ENCRYPTION_KEYS=Fernet.generate_key().decode())

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.django_db
@pytest.mark.parametrize("debug", [True, False])
def test_api_errors_are_json_with_or_without_debug(settings, monkeypatch, debug):
    settings.DEBUG = debug
    api = key_client(ProjectFactory())
    api.raise_request_exception = False

    def crash(**kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr("integrations.api.connection_list", crash)
    for path, status, detail in [("/api/v1/no-such-thing/", 404, "Not found."),
                                 ("/api/v1/connections/", 500, "Server error.")]:
        response = api.get(path)
        assert (response.status_code, response["Content-Type"]) == (status, "application/json")
        assert response.json() == {"detail": detail}
