"""The HTTP layer against a real loopback receiver: headers, secrets, keep-alive, the SSRF
guard and Retry-After (outbound/sender.py)."""

import base64
import ipaddress
import logging
import socket
from datetime import datetime, timedelta, timezone as dt_timezone
from email.utils import format_datetime

import pytest
import urllib3.util.connection

from deliveries.models import Notification, Sync, SyncRun
from integrations.models import Connection
from outbound.models import DeliveryAttempt
from outbound.policy import RESPONSE_EXCERPT_BYTES, Outcome
from outbound.sender import Destination, open_session, parse_retry_after, post_page
from tests.conftest import run_now, set_members
from tests.factories import CohortFactory, ConnectionFactory, SyncFactory
from tests.support.receiver import Reply

PASSWORD = "pw-9f3c1b7e-secret"
API_KEY = "key-5d2a8c41-secret"


@pytest.fixture
def outbound_connects(monkeypatch):
    """Every TCP connect urllib3 makes; anything but loopback is refused before a packet leaves,
    so a broken SSRF guard shows up as a failed assertion, not as traffic to a real address."""
    seen: list[str] = []
    real_create_connection = urllib3.util.connection.create_connection

    def guarded(address, *args, **kwargs):
        host = address[0]
        seen.append(host)
        try:
            loopback = ipaddress.ip_address(host.strip("[]")).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise OSError(f"test refused a connection to {host}")
        return real_create_connection(address, *args, **kwargs)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", guarded)
    return seen


def post(destination: Destination, body: bytes = b'{"action": "members"}', page_id: str = "page-1"):
    with open_session() as session:
        return post_page(session, destination, body, page_id)


# --- parse_retry_after ------------------------------------------------------------------


@pytest.mark.parametrize("value, seconds", [("1", 1.0), (" 120 ", 120.0), ("0", 0.0), ("0.25", 0.25), ("-5", 0.0)])
def test_retry_after_in_seconds(value, seconds):
    assert parse_retry_after(value) == seconds


def test_retry_after_as_an_http_date_in_the_future():
    when = datetime.now(dt_timezone.utc) + timedelta(seconds=30)

    seconds = parse_retry_after(format_datetime(when, usegmt=True))

    assert 27 <= seconds <= 30.5


def test_retry_after_as_an_http_date_in_the_past_means_now():
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


@pytest.mark.parametrize("value", [None, "", "   ", "soon", "Mon, 99 Foo 20xx", "1 hour"])
def test_retry_after_garbage_is_ignored(value):
    assert parse_retry_after(value) is None


# --- post_page against the receiver -----------------------------------------------------


def test_post_page_sends_the_body_and_the_contract_headers(receiver):
    destination = Destination(url=receiver.url(), headers=(("X-Tenant", "acme"), ("X-Trace", "t-1")))

    result = post(destination, body=b'{"action": "members"}', page_id="3f2c-page")

    assert result.verdict.outcome is Outcome.SUCCESS
    assert result.http_status == 200
    (request,) = receiver.requests
    assert request.method == "POST"
    assert request.path == "/hook"
    assert request.body == b'{"action": "members"}'
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("Cohortsync/")
    assert request.headers["webhook-id"] == "3f2c-page"
    assert request.headers["x-tenant"] == "acme"
    assert request.headers["x-trace"] == "t-1"
    assert "authorization" not in request.headers
    assert "x-api-key" not in request.headers


def test_post_page_sends_basic_auth_and_the_api_key(receiver):
    destination = Destination(url=receiver.url(), auth_username="hook-user", auth_password=PASSWORD, api_key=API_KEY)

    post(destination)

    (request,) = receiver.requests
    assert request.headers["authorization"] == "Basic " + base64.b64encode(f"hook-user:{PASSWORD}".encode()).decode()
    assert request.headers["x-api-key"] == API_KEY


def test_post_page_keeps_only_an_excerpt_of_a_large_answer(receiver):
    receiver.reply(Reply(status=200, body="x" * (RESPONSE_EXCERPT_BYTES * 4)))

    result = post(Destination(url=receiver.url()))

    assert result.verdict.outcome is Outcome.SUCCESS
    assert result.response_excerpt == "x" * 1000


def test_post_page_passes_retry_after_on(receiver):
    receiver.reply(Reply(status=429, headers={"Retry-After": "7"}))

    result = post(Destination(url=receiver.url()))

    assert result.verdict.outcome is Outcome.TRANSIENT
    assert result.http_status == 429
    assert result.retry_after == 7.0


def test_post_page_read_timeout_is_transient(receiver, settings):
    settings.COHORTSYNC_READ_TIMEOUT = 0.2
    receiver.reply(Reply(delay=0.6))

    result = post(Destination(url=receiver.url()))

    assert result.verdict.outcome is Outcome.TRANSIENT
    assert result.verdict.message == "timed out"
    assert result.http_status is None
    assert len(receiver.requests) == 1


def test_post_page_connection_refused_is_transient():
    with socket.socket() as unused:  # a port nobody listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]

    result = post(Destination(url=f"http://127.0.0.1:{port}/hook"))

    assert result.verdict.outcome is Outcome.TRANSIENT
    assert result.verdict.message.startswith("connection error")


def test_post_page_does_not_follow_redirects(receiver):
    receiver.reply(Reply(status=302, headers={"Location": receiver.url("/elsewhere")}))

    result = post(Destination(url=receiver.url()))

    assert result.http_status == 302
    assert result.verdict.outcome is Outcome.PAUSE
    assert result.verdict.message == (
        f"the receiver redirects to {receiver.url('/elsewhere')}; redirects are not followed: update the URL"
    )
    assert [r.path for r in receiver.requests] == ["/hook"]


# --- Through the engine: what the receiver saw and what the database holds --------------


@pytest.mark.django_db
def test_custom_headers_user_agent_and_content_type_on_every_page(make_sync, receiver):
    sync = make_sync(members=[f"u{i:04d}" for i in range(1500)])
    Connection.objects.filter(pk=sync.connection_id).update(
        headers={"X-Tenant": "acme", "X-Region": "eu-1"}
    )

    run = run_now(sync)

    assert run.status == SyncRun.Status.SUCCEEDED
    assert len(receiver.requests) == 2
    for request in receiver.requests:
        assert request.headers["x-tenant"] == "acme"
        assert request.headers["x-region"] == "eu-1"
        assert request.headers["user-agent"].startswith("Cohortsync/")
        assert request.headers["content-type"] == "application/json"


@pytest.mark.django_db
def test_a_five_page_run_uses_one_keep_alive_connection(make_sync, receiver):
    sync = make_sync(members=[f"u{i:04d}" for i in range(4500)])

    run = run_now(sync)

    assert run.status == SyncRun.Status.SUCCEEDED
    assert [r.page_info["page_count"] for r in receiver.requests] == [1, 2, 3, 4, 5]
    assert receiver.connections == 1


@pytest.mark.django_db
def test_secrets_reach_the_receiver_but_are_never_recorded(receiver, caplog):
    caplog.set_level(logging.DEBUG)
    cohort = CohortFactory()
    set_members(cohort, ["A", "B"])
    connection = ConnectionFactory(
        project=cohort.project, url=receiver.url(), auth_username="hook-user", auth_password=PASSWORD, api_key=API_KEY
    )
    sync = SyncFactory(cohort=cohort, connection=connection)
    receiver.reply(Reply(status=503, body={"status": "failure", "error": {"message": "busy", "code": 503}}))

    run = run_now(sync)

    assert run.status == SyncRun.Status.SUCCEEDED
    assert len(receiver.requests) == 2
    for request in receiver.requests:
        assert request.headers["authorization"] == "Basic " + base64.b64encode(
            f"hook-user:{PASSWORD}".encode()).decode()
        assert request.headers["x-api-key"] == API_KEY
    recorded = [
        *DeliveryAttempt.objects.filter(run__sync=sync).values(),
        *SyncRun.objects.filter(sync=sync).values(),
        *Sync.objects.filter(pk=sync.pk).values(),
    ]
    assert len(recorded) == 4  # two attempts, one run, one sync
    text = repr(recorded) + "\n".join(record.getMessage() for record in caplog.records)
    assert any(record.name.startswith("urllib3") for record in caplog.records)  # the HTTP layer's logs were seen
    assert "busy" in text  # the attempt's error and excerpt were recorded...
    for secret in (PASSWORD, API_KEY, base64.b64encode(f"hook-user:{PASSWORD}".encode()).decode()):
        assert secret not in text  # ...but never a secret


# --- The SSRF guard (requests-hardened): refuse before connecting -----------------------


def blocked_sync(url: str) -> Sync:
    cohort = CohortFactory()
    set_members(cohort, ["A"])
    # Straight to the table: the model's URL validation would refuse these already.
    connection = ConnectionFactory(project=cohort.project, url=url)
    return SyncFactory(cohort=cohort, connection=connection)


@pytest.mark.django_db
@pytest.mark.parametrize("address", ["127.0.0.1:{port}", "localhost:{port}", "169.254.169.254", "10.0.0.1:{port}"])
def test_private_destinations_are_blocked_and_pause_the_sync(address, receiver, settings, outbound_connects):
    settings.COHORTSYNC_ALLOW_PRIVATE_URLS = False
    settings.COHORTSYNC_CONNECT_TIMEOUT = 0.5
    sync = blocked_sync(f"http://{address.format(port=receiver.port)}/latest/meta-data")

    run = run_now(sync)

    assert run.status == SyncRun.Status.PAUSED
    assert sync.state == Sync.State.PAUSED
    assert "COHORTSYNC_ALLOW_PRIVATE_URLS" in sync.last_error_message
    assert sync.last_error_status is None
    assert outbound_connects == []
    assert receiver.requests == []
    assert receiver.connections == 0
    (attempt,) = DeliveryAttempt.objects.filter(run=run)
    assert attempt.outcome == Outcome.PAUSE
    assert attempt.http_status is None
    assert Notification.objects.filter(sync=sync, reason="sync_paused").count() == 1


@pytest.mark.django_db
def test_private_destinations_are_allowed_when_the_operator_allows_them(receiver, outbound_connects):
    sync = blocked_sync(receiver.url())  # the autouse settings allow private URLs

    run = run_now(sync)

    assert run.status == SyncRun.Status.SUCCEEDED
    assert len(receiver.requests) == 1
    assert outbound_connects == ["127.0.0.1"]
