"""The built-in test receiver at /receiver/<inbox>/ (integrations/views.py)."""

import json
from urllib.parse import urlencode

import pytest
from django.urls import reverse

from integrations.models import ReceivedWebhook
from tests.factories import ConnectionFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db

SESSION_ID = "6f1c5a52-96a4-4d8b-9a3e-0d0c1b7e2a11"
PAGE_ID = "2d4e9f0a-4f0e-5b1a-9c55-8a3e6b1f0c22"


def page(action="add_members", members=({"mixpanel_distinct_id": "A", "email": "a@example.com"},)):
    return {
        "action": action,
        "parameters": {
            "mixpanel_project_id": "1",
            "mixpanel_cohort_id": "2",
            "mixpanel_cohort_name": "Cohort",
            "mixpanel_cohort_description": "",
            "mixpanel_session_id": SESSION_ID,
            "page_info": {"total_pages": 1, "page_count": 1},
            "members": list(members),
        },
    }


def post(client, body, inbox="demo", content_type="application/json", **headers):
    data = json.dumps(body) if isinstance(body, dict) else body
    return client.post(f"/receiver/{inbox}/", data=data, content_type=content_type, headers=headers)


def inbox_owner(username="viewer", inboxes=("demo", "nothing-here", "msgs")):
    """A member of a project whose connections deliver to these inboxes (which makes them its)."""
    user = UserFactory(username=username)
    project = ProjectFactory()
    project.members.add(user)
    for inbox in inboxes:
        ConnectionFactory(project=project, url=f"http://127.0.0.1:8000/receiver/{inbox}/")
    return user


@pytest.fixture
def staff_client(client):
    client.force_login(inbox_owner())
    return client


def test_url_name_matches_the_path():
    assert reverse("receiver:inbox", kwargs={"inbox": "demo"}) == "/receiver/demo/"


def test_post_stores_the_page_and_echoes_success(client):
    body = page("remove_members")

    response = post(client, body, inbox="team-a", **{"webhook-id": PAGE_ID})

    assert response.status_code == 200
    assert response.json() == {"action": "remove_members", "status": "success"}
    stored = ReceivedWebhook.objects.get()
    assert stored.inbox == "team-a"
    assert stored.action == "remove_members"
    assert stored.session_id == SESSION_ID
    assert stored.page_id == PAGE_ID
    assert json.loads(stored.body) == body
    assert stored.headers["Webhook-Id"] == PAGE_ID


def test_credentials_in_headers_are_redacted_before_storing(client):
    response = post(
        client, page(), Authorization="Basic Ym90Omh1bnRlcjI=", **{"x-api-key": "sk_live_secret", "X-Team": "growth"}
    )

    assert response.status_code == 200
    stored = ReceivedWebhook.objects.get()
    assert stored.headers["Authorization"] == "[redacted]"
    assert stored.headers["X-Api-Key"] == "[redacted]"
    assert stored.headers["X-Team"] == "growth"
    everything = json.dumps(stored.headers) + stored.body
    assert "Ym90Omh1bnRlcjI=" not in everything
    assert "sk_live_secret" not in everything


def test_non_json_post_is_stored_and_answered_200(client):
    response = post(client, "users=%5B%5D", content_type="application/x-www-form-urlencoded")

    assert response.status_code == 200
    assert response.json() == {"action": None, "status": "success"}
    stored = ReceivedWebhook.objects.get()
    assert stored.body == "users=%5B%5D"
    assert (stored.action, stored.session_id, stored.page_id) == ("", "", "")


@pytest.mark.parametrize("body", ["[1, 2, 3]", '{"action": "members", "parameters": "not an object"}', ""])
def test_odd_json_shapes_are_stored_without_error(client, body):
    response = post(client, body)

    assert response.status_code == 200
    stored = ReceivedWebhook.objects.get()
    assert stored.body == body
    assert stored.session_id == ""


def test_binary_post_is_stored_and_answered_200(client):
    response = post(client, b"\x00\x01binary\xff", content_type="application/octet-stream")

    assert response.status_code == 200
    assert "binary" in ReceivedWebhook.objects.get().body


def test_get_redirects_anonymous_visitors_to_login(client):
    post(client, page())

    response = client.get("/receiver/demo/")

    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/receiver/demo/"  # the status pages' login


def test_get_shows_pretty_printed_pages_newest_first_when_logged_in(client, staff_client):
    post(client, page("members"))
    post(client, page("add_members", members=[{"mixpanel_distinct_id": "Z-last"}]))
    post(client, page("members"), inbox="other-inbox")

    response = staff_client.get("/receiver/demo/")

    assert response.status_code == 200
    html = response.content.decode()
    received = response.context["received"]
    assert [item.action for item in received] == ["add_members", "members"]
    # orjson's OPT_INDENT_2: two spaces a level, quotes escaped by the template.
    assert '  &quot;action&quot;: &quot;add_members&quot;,\n  &quot;parameters&quot;: {' in html
    assert "Z-last" in html
    assert html.index("Z-last") < html.index("&quot;action&quot;: &quot;members&quot;")
    assert SESSION_ID in html


def test_get_escapes_what_was_received(client, staff_client):
    post(client, "<script>alert('inbox')</script>", content_type="text/plain")

    html = staff_client.get("/receiver/demo/").content.decode()

    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#x27;inbox&#x27;)&lt;/script&gt;" in html


def test_get_of_an_empty_inbox_says_so(staff_client):
    response = staff_client.get("/receiver/nothing-here/")

    assert response.status_code == 200
    assert "Nothing has arrived yet." in response.content.decode()


def test_a_user_message_batch_is_shown_decoded(client):
    body = urlencode({"users": '[{"$distinct_id": "ada", "$properties": {"plan": "pro"}}]'})
    answer = client.post("/receiver/msgs/", data=body, content_type="application/x-www-form-urlencoded")
    assert answer.status_code == 200
    client.force_login(inbox_owner())

    page = client.get("/receiver/msgs/").content.decode()

    assert "&quot;$distinct_id&quot;: &quot;ada&quot;" in page


def test_each_page_shows_its_member_count(client, staff_client):
    post(client, page("members", members=[{"mixpanel_distinct_id": f"m-{n}"} for n in range(3)]))
    post(client, {"cohort_id": "2", "in_cohort": True, "users": [{"user_id": "a"}, {"user_id": "b"}]})
    post(client, urlencode({"users": '[{"$distinct_id": "ada"}]'}), content_type="application/x-www-form-urlencoded")
    post(client, "not json", content_type="text/plain")

    response = staff_client.get("/receiver/demo/")

    assert [item.member_count for item in response.context["received"]] == [None, 1, 2, 3]
    html = response.content.decode()
    assert '<strong class="inbox-count">3 members</strong>' in html
    assert '<strong class="inbox-count">1 member</strong>' in html


def test_a_long_body_is_folded_and_a_short_one_is_not(client, staff_client):
    post(client, page("members", members=[{"mixpanel_distinct_id": f"m-{n}"} for n in range(20)]))
    post(client, page("add_members"))

    response = staff_client.get("/receiver/demo/")

    short, long = response.context["received"]
    assert (short.folded, long.folded) == (False, True)
    html = response.content.decode()
    assert html.count('<details class="inbox-body">') == 1
    assert f"<summary>Body ({long.body_lines} lines)</summary>" in html


# --- Open doors closed (issue #15, part 5) ----------------------------------------------


def test_the_receiver_is_off_unless_turned_on(client, staff_client, settings):
    settings.COHORTSYNC_TEST_RECEIVER = False

    assert post(client, page()).status_code == 404
    assert staff_client.get("/receiver/demo/").status_code == 404
    assert not ReceivedWebhook.objects.exists()


def test_only_members_of_the_owning_project_read_an_inbox(client):
    post(client, page(members=[{"mixpanel_distinct_id": "private-member"}]))
    client.force_login(inbox_owner("outsider", inboxes=["elsewhere"]))

    assert client.get("/receiver/demo/").status_code == 404
    client.force_login(UserFactory(username="root", is_superuser=True, is_staff=True))
    assert "private-member" in client.get("/receiver/demo/").content.decode()


def test_bodies_over_the_cap_are_refused(client, settings):
    settings.COHORTSYNC_TEST_RECEIVER_MAX_BYTES = 1000

    response = post(client, "x" * 1001, content_type="text/plain")

    assert response.status_code == 413
    assert response.json()["error"]["message"] == "The body is larger than the 1,000 bytes this test receiver keeps."
    assert not ReceivedWebhook.objects.exists()
    assert post(client, "x" * 1000, content_type="text/plain").status_code == 200
