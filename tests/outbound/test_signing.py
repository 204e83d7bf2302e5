"""Signed requests: what the loopback receiver got verifies with the third-party
`standardwebhooks` package, never with our own code (outbound/signing.py, sender.py,
integrations/services.py rotation)."""

import base64
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone as django_timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from deliveries.models import SyncRun
from integrations.models import Connection
from integrations.send_test import connection_send_test
from integrations.services import connection_disable_signing, connection_rotate_signing_secret, connection_update
from integrations.templating import PRESETS
from outbound import sender
from outbound.signing import SECRET_PREFIX, signing_secret_generate
from tests.conftest import run_now, set_members
from tests.support.receiver import Reply

pytestmark = pytest.mark.django_db


def verify(secret: str, request) -> None:
    """Raises WebhookVerificationError unless the request is signed with this secret."""
    Webhook(secret).verify(request.body, request.headers, json_parse=False)


def verifies(secret: str, request) -> bool:
    try:
        verify(secret, request)
    except WebhookVerificationError:
        return False
    return True


def rotate(sync, overlap_hours: float = 0) -> str:
    secret = connection_rotate_signing_secret(connection=sync.connection, overlap_hours=overlap_hours)
    sync.connection.refresh_from_db()
    return secret


def test_generated_secrets_are_standard_webhooks_secrets():
    secret = signing_secret_generate()
    assert secret.startswith(SECRET_PREFIX)
    assert len(base64.b64decode(secret.removeprefix(SECRET_PREFIX))) == 32
    assert signing_secret_generate() != secret
    Webhook(secret)  # the library accepts it


@pytest.mark.parametrize("format", ["mixpanel", "amplitude", "template"])
def test_every_request_of_a_run_verifies_with_the_secret(make_sync, receiver, format):
    sync = make_sync(members=["A", "B", "C"])
    connection_update(connection=sync.connection, format=format, page_size=2,
                      body_template=PRESETS["amplitude_user_ids"] if format == "template" else "")
    secret = rotate(sync)

    run = run_now(sync)

    assert run.status == SyncRun.Status.SUCCEEDED
    assert len(receiver.requests) == 2
    for request in receiver.requests:
        verify(secret, request)
        assert request.headers["webhook-signature"].startswith("v1,")
        assert " " not in request.headers["webhook-signature"]  # one secret, one signature
        assert abs(int(request.headers["webhook-timestamp"]) - datetime.now(UTC).timestamp()) < 60


def test_without_a_secret_requests_carry_the_page_id_but_no_signature(make_sync, receiver):
    sync = make_sync(members=["A"])

    run_now(sync)

    (request,) = receiver.requests
    assert request.headers["webhook-id"]
    assert "webhook-signature" not in request.headers
    assert "webhook-timestamp" not in request.headers
    with pytest.raises(WebhookVerificationError):
        verify(signing_secret_generate(), request)


def test_disabling_signing_stops_the_signatures(make_sync, receiver):
    sync = make_sync(members=["A"])
    rotate(sync)
    connection_disable_signing(connection=sync.connection)

    run_now(sync)

    assert "webhook-signature" not in receiver.requests[0].headers


def test_a_request_signed_with_another_secret_does_not_verify(make_sync, receiver):
    sync = make_sync(members=["A"])
    rotate(sync)

    run_now(sync)

    assert not verifies(signing_secret_generate(), receiver.requests[0])


def test_during_a_rotation_overlap_both_secrets_verify_every_request(make_sync, receiver):
    sync = make_sync(members=["A", "B", "C"])
    connection_update(connection=sync.connection, page_size=1)
    old = rotate(sync)
    run_now(sync)
    assert all(verifies(old, request) for request in receiver.requests)
    receiver.clear()

    new = rotate(sync, overlap_hours=24)
    set_members(sync.cohort, ["B", "C", "D", "E"])
    run_now(sync)

    assert new != old
    assert sync.connection.previous_signing_secret == old
    requests = receiver.requests
    assert [request.action for request in requests] == ["add_members", "add_members", "remove_members"]
    for request in requests:
        assert verifies(old, request) and verifies(new, request)
        assert len(request.headers["webhook-signature"].split(" ")) == 2


def test_after_the_overlap_only_the_new_secret_verifies(make_sync, receiver):
    sync = make_sync(members=["A", "B"])
    old = rotate(sync)
    new = rotate(sync, overlap_hours=24)
    Connection.objects.filter(pk=sync.connection.pk).update(
        previous_signing_secret_expires_at=django_timezone.now() - timedelta(seconds=1))

    run_now(sync)

    (request,) = receiver.requests
    assert verifies(new, request)
    assert not verifies(old, request)
    assert " " not in request.headers["webhook-signature"]


def test_rotating_without_overlap_drops_the_old_secret_at_once(make_sync, receiver):
    sync = make_sync(members=["A"])
    old = rotate(sync)
    new = rotate(sync, overlap_hours=0)

    run_now(sync)

    assert verifies(new, receiver.requests[0])
    assert not verifies(old, receiver.requests[0])


class SteppingClock(datetime):
    """`datetime.now()` for the sender: each try seven seconds after the previous one."""

    calls = 0

    @classmethod
    def now(cls, tz=None):
        cls.calls += 1
        return datetime.now(tz) + timedelta(seconds=7 * cls.calls)


def test_retries_carry_the_same_page_id_and_a_fresh_valid_signature(make_sync, receiver, monkeypatch):
    sync = make_sync(members=["A"])
    secret = rotate(sync)
    monkeypatch.setattr(SteppingClock, "calls", 0)
    monkeypatch.setattr(sender, "datetime", SteppingClock)
    receiver.reply(Reply(status=500), Reply(status=429))

    run = run_now(sync)

    assert run.status == SyncRun.Status.SUCCEEDED
    requests = receiver.requests
    assert len(requests) == 3
    assert len({request.headers["webhook-id"] for request in requests}) == 1
    assert len({request.body for request in requests}) == 1
    timestamps = [int(request.headers["webhook-timestamp"]) for request in requests]
    assert timestamps[0] < timestamps[1] < timestamps[2]  # each try is signed afresh, at its own time
    assert len({request.headers["webhook-signature"] for request in requests}) == 3
    for request in requests:
        verify(secret, request)


def test_tampering_with_the_body_id_or_timestamp_fails_verification(make_sync, receiver):
    sync = make_sync(members=["A"])
    secret = rotate(sync)
    run_now(sync)
    (request,) = receiver.requests
    verify(secret, request)

    tampered_body = request.body.replace(b'"A"', b'"Z"')
    assert tampered_body != request.body
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(tampered_body, request.headers)
    for header, value in [("webhook-id", "00000000-0000-0000-0000-000000000000"),
                          ("webhook-timestamp", str(int(request.headers["webhook-timestamp"]) + 1))]:
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(request.body, {**request.headers, header: value})


def test_an_old_request_is_refused_by_the_library_as_a_replay(make_sync, receiver, monkeypatch):
    sync = make_sync(members=["A"])
    secret = rotate(sync)

    class LongAgo(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.now(tz) - timedelta(minutes=10)

    monkeypatch.setattr(sender, "datetime", LongAgo)
    run_now(sync)

    with pytest.raises(WebhookVerificationError, match="too old"):
        verify(secret, receiver.requests[0])


def test_signatures_cover_non_ascii_bodies(make_sync, receiver):
    sync = make_sync()
    sync.cohort.name = "Café ☕ «VIP» 漢字"
    sync.cohort.save()
    set_members(sync.cohort, ["é-user", "😀"])
    secret = rotate(sync)

    run_now(sync)

    (request,) = receiver.requests
    verify(secret, request)
    assert request.json["parameters"]["mixpanel_cohort_name"] == "Café ☕ «VIP» 漢字"


def test_the_connection_test_page_is_signed_too(make_sync, receiver):
    sync = make_sync()
    secret = rotate(sync)

    result = connection_send_test(connection=sync.connection)

    assert result.outcome == "success"
    verify(secret, receiver.requests[0])
