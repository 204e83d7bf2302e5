"""Production serving (config/settings.py, Procfile, README "Deploying"): `check --deploy` is clean
with the README's production environment, and gunicorn, started as the Procfile starts it,
serves collected static files through whitenoise with DEBUG off."""

import base64
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from cryptography.fernet import Fernet

REPO = Path(__file__).resolve().parents[2]


def documented_production_env() -> dict[str, str]:
    """The README's production environment; `<…>` placeholders get generated secrets."""
    readme = (REPO / "README.md").read_text()
    block = re.search(r"Production environment.*?```sh\n(.*?)```", readme, re.S)
    assert block, "README's Deploying section lost its production environment block"
    env = dict(re.findall(r"^\s*([A-Z][A-Z0-9_]*)=(.*)$", block.group(1), re.M))
    secrets = {
        "DJANGO_SECRET_KEY": "k" + os.urandom(40).hex(),
        "COHORTSYNC_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "COHORTSYNC_METRICS_TOKEN": os.urandom(16).hex(),
    }
    for name, value in env.items():
        if value.startswith("<"):
            env[name] = secrets[name]
    return env


def process_env(extra: dict[str, str]) -> dict[str, str]:
    # Only what the process needs from ours: no DJANGO_*/COHORTSYNC_* leaking in from the test run.
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "COHORTSYNC_", "DATABASE_URL",
                                                                      "CELERY_", "PROMETHEUS_"))}
    base["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{base.get('PATH', '')}"
    return {**base, **extra}


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)


def test_documented_production_settings_pass_check_deploy():
    env = documented_production_env()
    assert env["DJANGO_DEBUG"] == "false"
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=process_env(env))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_development_defaults_are_not_deployable():
    """Without the production environment, check --deploy says what is missing."""
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=process_env({}))
    assert result.returncode != 0
    for check in ("security.W004", "security.W008", "security.W012", "security.W016", "security.W018"):
        assert check in result.stderr + result.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def procfile_command(name: str) -> str:
    for line in (REPO / "Procfile").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no {name} process in the Procfile")


@pytest.fixture(scope="module")
def production_web(tmp_path_factory):
    """gunicorn as the Procfile runs it, over collected static files, DEBUG off."""
    tmp_path = tmp_path_factory.mktemp("production")
    port = free_port()
    env = process_env({
        **documented_production_env(),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_STATIC_ROOT": str(tmp_path / "static"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",  # static files need no database
        "CELERY_BROKER_URL": "filesystem://",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        "PORT": str(port),
        "WEB_CONCURRENCY": "1",
    })
    collected = manage("collectstatic", "--noinput", env=env)
    assert collected.returncode == 0, collected.stderr
    access_log = (tmp_path / "access.log").open("wb")  # the Procfile's --access-logfile - is stdout
    web = subprocess.Popen(["sh", "-c", f"exec {procfile_command('web')}"], cwd=REPO, env=env,
                           stdout=access_log, stderr=subprocess.PIPE, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert web.poll() is None, web.stderr.read().decode()
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.2)
        yield base, tmp_path / "static", tmp_path / "access.log"
    finally:
        os.killpg(web.pid, signal.SIGTERM)
        web.wait(timeout=30)
        access_log.close()


def test_gunicorn_serves_static_files_through_whitenoise(production_web):
    base, static_root, _ = production_web
    https = {"X-Forwarded-Proto": "https"}  # as the TLS proxy says
    source = (REPO / "deliveries/static/deliveries/status.css").read_bytes()

    plain = requests.get(f"{base}/static/deliveries/status.css", headers={**https, "Accept-Encoding": "identity"},
                         timeout=10)
    assert plain.status_code == 200
    assert plain.content == source
    assert plain.headers["Content-Type"].startswith("text/css")

    # The page's link is the content-hashed name: cached for good, compressed when asked.
    hashed = next(static_root.glob("deliveries/status.*.css")).name
    cached = requests.get(f"{base}/static/deliveries/{hashed}", headers={**https, "Accept-Encoding": "gzip"},
                          timeout=10)
    assert cached.status_code == 200
    assert cached.content == source  # requests decodes the gzip body
    assert cached.headers["Content-Encoding"] == "gzip"
    assert "immutable" in cached.headers["Cache-Control"]

    assert requests.get(f"{base}/static/deliveries/missing.css", headers=https, timeout=10).status_code == 404


def test_production_redirects_to_https_but_not_probes(production_web):
    base, _, _ = production_web
    login = requests.get(f"{base}/login/", allow_redirects=False, timeout=10)
    assert login.status_code == 301
    assert login.headers["Location"].startswith("https://127.0.0.1")
    assert requests.get(f"{base}/login/", headers={"X-Forwarded-Proto": "https"}, timeout=10).headers[
        "Strict-Transport-Security"].startswith("max-age=31536000")
    # An unmigrated database: /healthz answers 503 over plain HTTP, not a redirect.
    health = requests.get(f"{base}/healthz", allow_redirects=False, timeout=30)
    assert health.status_code == 503
    assert health.headers["Content-Type"] == "application/json"


def test_access_log_leaves_out_basic_usernames(production_web):
    """The SDKs send their write key or project secret as the Basic username: gunicorn's default
    access log format (`%(u)s`) would write every key in full."""
    base, _, access_log = production_web
    key = "csw_" + os.urandom(12).hex()
    credentials = base64.b64encode(f"{key}:".encode()).decode()
    requests.get(f"{base}/healthz?probe={key[4:10]}", headers={"Authorization": f"Basic {credentials}"}, timeout=30)
    deadline = time.monotonic() + 10
    while key[4:10] not in access_log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)  # the line is written after the answer
    logged = access_log.read_text()
    assert f"GET /healthz?probe={key[4:10]}" in logged
    assert key not in logged


def test_a_chunked_sdk_body_is_read_whole(production_web):
    """A body without Content-Length (chunked, as a client that gzips as it sends does) is read, not
    taken as empty: here a body whose only fault is a missing write key, answered as such."""
    import gzip
    import http.client

    base, _, _ = production_web
    host, port = base.removeprefix("http://").split(":")

    def post_chunked(body: bytes, **headers) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            connection.request("POST", "/v1/batch", body=iter([body[:5], body[5:]]), encode_chunked=True,
                               headers={"Content-Type": "application/json", "X-Forwarded-Proto": "https", **headers})
            answer = connection.getresponse()
            return answer.status, answer.read()
        finally:
            connection.close()

    body = b'{"batch": [{"type": "track", "userId": "ada", "event": "Played"}]}'
    assert post_chunked(body) == (401, b'{"success":false,"code":"unauthorized","message":"Send the write key as '
                                        b'the Basic username (or the body\'s `writeKey`)."}')
    assert post_chunked(gzip.compress(body), **{"Content-Encoding": "gzip"})[0] == 401
    status, answer = post_chunked(b"x" * (600 * 1024))  # past the 500 KB a batch, counted as it arrives
    assert (status, b'"code":"payload_too_large"' in answer) == (400, True), answer  # Segment's 400
