"""The connection admin's "send a test page" button and action (integrations/admin.py), against a
loopback receiver: the operator sees the receiver's answer, and no secret."""

import pytest
from django.contrib.messages import get_messages

from integrations.models import Connection
from tests.factories import ConnectionFactory, UserFactory
from tests.support.receiver import Reply

pytestmark = pytest.mark.django_db

API_KEY = "sk_live_never_shown"


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def connection(receiver) -> Connection:
    return ConnectionFactory(name="CRM webhook", url=receiver.url(), api_key=API_KEY)


def shown_messages(response) -> list[tuple[str, str]]:
    return [(m.level_tag, m.message) for m in get_messages(response.wsgi_request)]


def test_the_button_posts_one_empty_page_and_shows_the_answer(admin_client, connection, receiver):
    change = f"/admin/integrations/connection/{connection.pk}/change/"
    assert "Send a test page" in admin_client.get(change).content.decode()

    response = admin_client.post(f"/admin/integrations/connection/{connection.pk}/send-test/")

    assert response.status_code == 302 and response["Location"] == change
    ((request),) = receiver.requests
    assert request.action == "add_members" and request.members == []
    assert request.headers["x-api-key"] == API_KEY
    ((level, text),) = shown_messages(response)
    assert level == "success"
    assert "Test page to “CRM webhook”: success, HTTP 200 in" in text
    assert '"status": "success"' in text
    assert API_KEY not in text


def test_a_refusal_shows_the_receivers_message_as_an_error(admin_client, connection, receiver):
    receiver.reply(Reply(status=401, body={"status": "failure", "error": {"code": 401, "message": "bad token"}}))

    response = admin_client.post(f"/admin/integrations/connection/{connection.pk}/send-test/")

    ((level, text),) = shown_messages(response)
    assert level == "error"
    assert "pause, HTTP 401" in text and "bad token" in text


def test_the_button_refuses_get(admin_client, connection, receiver):
    response = admin_client.get(f"/admin/integrations/connection/{connection.pk}/send-test/")

    assert response.status_code == 405
    assert receiver.requests == []


def test_the_list_action_tests_each_selected_connection(admin_client, connection, receiver):
    other = ConnectionFactory(project=connection.project, name="Second", url=receiver.url("/second"))

    response = admin_client.post(
        "/admin/integrations/connection/", {"action": "send_test", "_selected_action": [connection.pk, other.pk]}
    )

    assert sorted(r.path for r in receiver.requests) == ["/hook", "/second"]
    assert len(shown_messages(response)) == 2


def test_staff_without_change_permission_cannot_send(client, connection, receiver):
    viewer = UserFactory(username="viewer", is_staff=True)
    connection.project.members.add(viewer)  # a member: only the missing permission stops it
    client.force_login(viewer)

    response = client.post(f"/admin/integrations/connection/{connection.pk}/send-test/")

    assert response.status_code in (302, 403)
    assert receiver.requests == []
