"""Auto-pause of a user message (outbound.autopause through campaigns.services): the same rules as a sync's."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from campaigns.models import Message, MessageRun
from campaigns.sending import message_run
from campaigns.services import message_resume
from tests.api.conftest import key_client
from tests.support.receiver import Reply

pytestmark = pytest.mark.django_db


def test_n_failed_runs_pause_the_message_and_email_its_creator(receiver, make_message, settings):
    settings.COHORTSYNC_AUTO_PAUSE_FAILED_RUNS = 2
    message = make_message(members=["a"])
    receiver.respond_with(lambda request: Reply(status=502))

    runs = [message_run(message_id=message.pk) for _ in range(2)]

    assert [run.status for run in runs] == [MessageRun.Status.FAILED, MessageRun.Status.PAUSED]
    message.refresh_from_db()
    assert (message.state, message.auto_paused) == (Message.State.PAUSED, True)
    assert message.last_error_message.startswith("Paused automatically: 2 runs failed in a row")
    (email,) = mail.outbox
    assert "kept failing" in email.body
    message_resume(message=message)
    message.refresh_from_db()
    assert (message.consecutive_failed_runs, message.failing_since, message.auto_paused) == (0, None, False)


def test_a_success_resets_and_hours_pause(receiver, make_message, settings):
    message = make_message(members=["a"], schedule="recurring", limit_count=100, limit_days=1)
    receiver.respond_with(lambda request: Reply(status=500))
    message_run(message_id=message.pk)
    message.refresh_from_db()
    assert message.consecutive_failed_runs == 1
    receiver.respond_with(None)
    assert message_run(message_id=message.pk).status == MessageRun.Status.SUCCEEDED
    message.refresh_from_db()
    assert (message.consecutive_failed_runs, message.failing_since) == (0, None)
    receiver.respond_with(lambda request: Reply(status=500))
    message_run(message_id=message.pk)
    Message.objects.filter(pk=message.pk).update(failing_since=timezone.now() - timedelta(hours=80))
    assert message_run(message_id=message.pk).status == MessageRun.Status.PAUSED
    message.refresh_from_db()
    assert "no successful run for 72 hours" in message.last_error_message


def test_the_api_edits_a_message_s_overrides(make_message):
    message = make_message(members=["a"])
    client = key_client(message.cohort.project)
    response = client.patch(f"/api/v1/messages/{message.pk}/", {"auto_pause_failed_runs": 0}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["auto_pause_failed_runs"] == 0
    assert client.patch(f"/api/v1/messages/{message.pk}/", {"auto_pause_hours": "x"},
                        format="json").status_code == 400
