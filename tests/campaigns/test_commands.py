from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from campaigns.models import Message, MessageSend
from tests.support.receiver import Reply

from .conftest import batch_sizes


@pytest.mark.django_db
def test_runmessage_sends_and_reports(make_message, receiver):
    message = make_message([f"u{i}" for i in range(60)])
    out = StringIO()

    call_command("runmessage", message.pk, stdout=out)

    assert batch_sizes(receiver) == [50, 10]
    assert "succeeded; 60 of 60 users sent in 2/2 batches" in out.getvalue()


@pytest.mark.django_db
def test_runmessage_test_marks_nobody(make_message, receiver):
    message = make_message(["a", "b"])
    out = StringIO()

    call_command("runmessage", message.pk, "--test", stdout=out)

    assert len(receiver.requests[0].form_users) == 2
    assert "Nobody was marked sent." in out.getvalue()
    assert not MessageSend.objects.exists()


@pytest.mark.django_db
def test_runmessage_refuses_a_paused_message_unless_resumed(make_message, receiver):
    message = make_message(["a"])
    receiver.reply(Reply(status=404, body={"error": {"message": "no such list"}}))
    with pytest.raises(CommandError, match="paused"):
        call_command("runmessage", message.pk, stdout=StringIO())
    assert Message.objects.get(pk=message.pk).state == "paused"

    with pytest.raises(CommandError, match="no such list"):
        call_command("runmessage", message.pk, stdout=StringIO())

    call_command("runmessage", message.pk, "--resume", stdout=StringIO())
    assert MessageSend.objects.filter(status="sent").count() == 1


@pytest.mark.django_db
def test_runmessage_names_an_unknown_message():
    with pytest.raises(CommandError, match="There is no message 999"):
        call_command("runmessage", 999)
