"""scripts/quickstart.sh's setup in a copy of the checkout, then the README's second-terminal
commands run there with nothing but the .env it wrote (no variable from this test's
environment), against a loopback receiver. The long-running processes are not started
(QUICKSTART_SERVE=false) and the installed .venv is reused (QUICKSTART_INSTALL=false)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.wait_for_web import wait_for
from tests.support.receiver import LoopbackReceiver

ROOT = Path(__file__).resolve().parents[2]
NOT_COPIED = shutil.ignore_patterns(
    ".git", ".venv", "var", ".env", "test-artifacts", "__pycache__", "*.egg-info", ".pytest_cache", ".hypothesis",
    "node_modules",
)


@pytest.fixture
def checkout(tmp_path) -> Path:
    """A copy of the repository sharing this test's virtualenv as its .venv."""
    copy = tmp_path / "checkout"
    shutil.copytree(ROOT, copy, ignore=NOT_COPIED)
    (copy / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    return copy


def clean_environment() -> dict[str, str]:
    """A newcomer's shell: none of the project's settings, so only .env can set them."""
    prefixes = ("COHORTSYNC_", "DJANGO_", "DATABASE_URL", "CELERY_", "CACHE_URL", "EMAIL_URL")
    env = {name: value for name, value in os.environ.items() if not name.startswith(prefixes)}
    return env | {"QUICKSTART_INSTALL": "false", "QUICKSTART_SERVE": "false"}


def run(checkout: Path, *command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=checkout, env=clean_environment(), capture_output=True, text=True, timeout=300)


def quickstart(checkout: Path, *arguments: str) -> str:
    done = run(checkout, "bash", "scripts/quickstart.sh", *arguments)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_second_terminal_shares_the_env_that_quickstart_wrote(checkout):
    with LoopbackReceiver() as receiver:
        output = quickstart(checkout, "--url", receiver.url("/hook"))

        env_file = (checkout / ".env").read_text()
        assert "COHORTSYNC_ALLOW_PRIVATE_URLS=true" in env_file
        assert "COHORTSYNC_TEST_RECEIVER=true" in env_file
        assert "SECRET" not in env_file.upper()  # nothing that matters if it leaks
        assert ".venv/bin/python manage.py changepassword admin" in output
        assert ".venv/bin/python manage.py runsync 1" in output

        # The README's second terminal, word for word.
        churn = run(checkout, ".venv/bin/python", "manage.py", "demo", "--churn", "20")
        sent = run(checkout, ".venv/bin/python", "manage.py", "runsync", "1")

        assert churn.returncode == 0, churn.stderr
        assert "removed 5, added 5 new ones" in churn.stdout
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert "succeeded" in sent.stdout and "paus" not in sent.stdout.lower()
        assert [r.action for r in receiver.requests] == ["members"]  # the first run is a full load


def test_a_rerun_keeps_the_env_and_says_how_to_reset_the_password(checkout):
    (checkout / ".env").write_text("COHORTSYNC_ALLOW_PRIVATE_URLS=true\n# mine\n")
    with LoopbackReceiver() as receiver:
        quickstart(checkout, "--url", receiver.url())
        output = quickstart(checkout)

        assert "Keeping the existing .env." in output
        assert (checkout / ".env").read_text() == "COHORTSYNC_ALLOW_PRIVATE_URLS=true\n# mine\n"
        assert "password unchanged; to reset it: .venv/bin/python manage.py changepassword admin" in output

        # What the .env fixes: the same kind of command in the checkout without it.
        (checkout / ".env").unlink()
        refused = run(checkout, ".venv/bin/python", "manage.py", "demo", "--url", receiver.url("/other"))

    assert refused.returncode != 0
    assert "COHORTSYNC_ALLOW_PRIVATE_URLS=true" in refused.stderr


def test_env_is_git_ignored():
    assert "/.env" in (ROOT / ".gitignore").read_text().splitlines()


def test_the_worker_waits_for_the_web_server():
    """Procfile.dev starts the worker behind scripts/wait_for_web.py."""
    worker = next(line for line in (ROOT / "Procfile.dev").read_text().splitlines() if line.startswith("worker:"))
    assert worker.split(":", 1)[1].split("&&")[0].split() == [
        "python", "scripts/wait_for_web.py", "http://127.0.0.1:8000/login/"]
    with LoopbackReceiver() as receiver:
        assert wait_for(receiver.url("/login/"), timeout=5)
        url = receiver.url("/login/")
    assert not wait_for(url, timeout=0.5, interval=0.1)  # closed port: gives up after the timeout
