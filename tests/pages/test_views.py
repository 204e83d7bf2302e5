"""The dashboard (pages/views.py) through Django's test client: who sees what, the order of
the dashboard, its messages and alert firings, and the login that leads to it."""


import pytest
from django.utils import timezone

from alerts.models import Alert, AlertFiring
from campaigns.models import Message, MessageSend
from deliveries import selectors
from deliveries.models import Sync
from tests.factories import ProfileFactory, ProjectFactory, SyncFactory, UserFactory
from tests.support.pages import cohort_url, fire, message_in, message_url, sync_in, sync_url

pytestmark = pytest.mark.django_db


# --- Who sees what -----------------------------------------------------------------------


def test_pages_ask_anonymous_visitors_to_log_in(client, project):
    sync = sync_in(project)

    message = message_in(project)

    for url in ("/", sync_url(sync), message_url(message), cohort_url(message.cohort)):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"] == f"/login/?next={url}"


def test_logging_in_leads_to_the_dashboard(client, member, project):
    member.set_password("a-long-password")
    member.save()

    page = client.get("/login/")
    response = client.post("/login/", {"username": "ada", "password": "a-long-password"})

    assert page.status_code == 200 and b'<label for="id_username">' in page.content
    assert response.status_code == 302 and response["Location"] == "/"


def test_the_dashboard_lists_only_syncs_of_the_users_projects(member_client, project):
    mine = sync_in(project, cohort__name="Trial users")
    other = SyncFactory(cohort__name="Someone else's cohort")

    response = member_client.get("/")

    assert response.status_code == 200
    assert list(response.context["syncs"]) == [mine]
    assert b"Trial users" in response.content
    assert b"Someone else" not in response.content
    assert member_client.get(sync_url(other)).status_code == 404


def test_superusers_see_every_sync(client, project):
    client.force_login(UserFactory(username="root", is_superuser=True, is_staff=True))
    syncs = [sync_in(project), SyncFactory()]

    response = client.get("/")

    assert sorted(s.pk for s in response.context["syncs"]) == sorted(s.pk for s in syncs)
    assert client.get(sync_url(syncs[1])).status_code == 200


# --- The dashboard -----------------------------------------------------------------------


def test_paused_then_failing_syncs_come_first_with_the_receivers_message(member_client, project):
    healthy = sync_in(project, cohort__name="A healthy one")
    failing = sync_in(project, cohort__name="B failing", last_error_message="502 Bad Gateway", last_error_status=502)
    paused = sync_in(project, cohort__name="C paused", state=Sync.State.PAUSED, next_run_at=None,
                     last_error_message="Invalid API key", last_error_status=401)

    response = member_client.get("/")

    syncs = list(response.context["syncs"])
    assert syncs == [paused, failing, healthy]
    assert [s.health for s in syncs] == ["paused", "failing", "active"]
    html = response.content.decode()
    assert html.index("C paused") < html.index("B failing") < html.index("A healthy one")
    assert "Receiver refused (HTTP 401):</span> Invalid API key" in html
    assert "Paused</span>" in html and "Failing</span>" in html  # state in words, not only colour


def test_the_dashboard_queries_do_not_grow_with_the_number_of_syncs(member_client, project,
                                                                      django_assert_max_num_queries):
    for _ in range(8):
        sync_in(project)

    for n in range(8):
        message = message_in(project, name=f"Message {n}")
        alert = Alert.objects.create(project=project, name=f"Alert {n}", kind=Alert.Kind.COHORT_SIZE,
                                     operator=Alert.Operator.GREATER_THAN, threshold=10, cohort=message.cohort)
        fire(alert, f"Size went over 10 ({n})")

    # session, user, syncs, messages (with their sent counts), firings (each with its alert and subject)
    with django_assert_max_num_queries(7):
        response = member_client.get("/")

    assert len(response.context["syncs"]) == 8
    assert len(response.context["user_messages"]) == 8 and len(response.context["firings"]) == 8


def test_sync_list_for_user_is_scoped_by_membership(member, project):
    mine = sync_in(project)
    SyncFactory()

    assert list(selectors.sync_list_for_user(user=member)) == [mine]


# --- Dashboard: messages and alerts ----------------------------------------------------------


def test_the_dashboard_lists_the_users_messages_and_alert_firings_only(member_client, project):
    paused = message_in(project, name="Win back", cohort_name="Lapsed buyers")
    Message.objects.filter(pk=paused.pk).update(state=Message.State.PAUSED, next_run_at=None,
                                                last_error_message="Invalid token", last_error_status=401)
    weekly = message_in(project, name="Weekly digest", cohort_name="Readers", schedule=Message.Schedule.RECURRING,
                        cadence=Message.Cadence.WEEKLY, days_of_week=[2, 0], timezone="Europe/Paris")
    profile = ProfileFactory(project=project)
    MessageSend.objects.create(message=weekly, profile=profile, status=MessageSend.Status.SENT,
                               reserved_at=timezone.now(), sent_at=timezone.now())
    MessageSend.objects.create(message=weekly, profile=ProfileFactory(project=project), reserved_at=timezone.now())
    others = message_in(ProjectFactory(), name="Someone else's message")
    alert = Alert.objects.create(project=project, name="Readers over 1000", kind=Alert.Kind.COHORT_SIZE,
                                 operator=Alert.Operator.GREATER_THAN, threshold=1000, cohort=weekly.cohort)
    fire(alert, "Readers has 1,204 users, above 1,000", status=AlertFiring.Status.FAILED,
         error_message="HTTP 502 from the Slack webhook")
    other_alert = Alert.objects.create(project=others.cohort.project, name="Someone else's alert",
                                       kind=Alert.Kind.COHORT_SIZE, operator=Alert.Operator.LESS_THAN, threshold=5,
                                       cohort=others.cohort)
    fire(other_alert, "Not yours")

    response = member_client.get("/")

    assert list(response.context["user_messages"]) == [paused, weekly]  # paused first
    assert [m.sent_users for m in response.context["user_messages"]] == [0, 1]  # pending sends do not count
    html = response.content.decode()
    assert f'href="{message_url(paused)}"' in html and f'href="{cohort_url(paused.cohort)}"' in html
    assert "Receiver refused (HTTP 401):</span> Invalid token" in html
    assert "Recurring, weekly on Mon and Wed at 09:00 Europe/Paris, at most 1 per 7 days per user" in html
    assert "Readers over 1000" in html and "Readers has 1,204 users, above 1,000" in html
    assert "Not delivered" in html and "HTTP 502 from the Slack webhook" in html
    assert "Someone else" not in html and "Not yours" not in html
