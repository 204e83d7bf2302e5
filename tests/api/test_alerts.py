"""alerts/ and alert-firings/: alerts on cohort sizes and sync health, and each time one fired."""

import pytest
from django.utils import timezone

from alerts.models import Alert, AlertFiring
from alerts.services import alert_create, alert_firing_deliver, alerts_evaluate_cohort
from cohorts.models import CohortSize
from tests.api.conftest import key_client
from tests.factories import CohortFactory, ConnectionFactory, SyncFactory, UserFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/alerts/"
FIRINGS_URL = "/api/v1/alert-firings/"
API_KEY = "sk_live_never_shown"


@pytest.fixture
def cohort(api):
    return CohortFactory(project=api.project, name="Pro users")


@pytest.fixture
def webhook(api, receiver):
    return ConnectionFactory(project=api.project, name="Ops alerts", url=receiver.url("/alerts"), api_key=API_KEY)


def size_alert(cohort, **fields) -> Alert:
    fields = {"name": "Big", "kind": Alert.Kind.COHORT_SIZE, "operator": Alert.Operator.GREATER_THAN,
              "threshold": 1000, **fields}
    return alert_create(project=cohort.project, cohort=cohort, **fields)


def fire(alert, size) -> AlertFiring:
    """Record a size that crosses the alert's threshold and evaluate, as a computation would."""
    CohortSize.objects.create(cohort=alert.cohort, size=size, computed_at=timezone.now())
    (firing,) = alerts_evaluate_cohort(cohort_id=alert.cohort_id)
    return firing


# --- Create, read, change, delete ------------------------------------------------------------


def test_create_a_cohort_size_alert(api, cohort, webhook):
    response = api.post(URL, {"name": "Pro users above 1,000", "kind": "cohort_size", "operator": "greater_than",
                              "threshold": 1000, "cohort": cohort.pk, "webhooks": [webhook.pk], "email": True})
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["project"], body["kind"], body["operator"], body["threshold"], body["cohort"], body["sync"]) == (
        api.project.pk, "cohort_size", "greater_than", 1000.0, cohort.pk, None)
    assert (body["webhooks"], body["email"], body["is_active"], body["is_triggered"]) == ([webhook.pk], True, True,
                                                                                         False)
    alert = Alert.objects.get(pk=body["id"])
    assert list(alert.webhooks.all()) == [webhook] and alert.created_by is None


def test_create_a_sync_failing_alert(api, cohort, webhook):
    sync = SyncFactory(cohort=cohort)
    response = api.post(URL, {"name": "CRM failing", "kind": "sync_failing", "operator": "at_least",
                              "threshold": 3, "sync": sync.pk})
    assert response.status_code == 201, response.json()
    assert (response.json()["sync"], response.json()["cohort"], response.json()["webhooks"]) == (sync.pk, None, [])


def test_the_keys_creator_owns_the_alert(project, cohort):
    person = UserFactory(username="grace")
    body = key_client(project, created_by=person).post(URL, {
        "name": "x", "kind": "sync_paused", "operator": "is", "sync": SyncFactory(cohort=cohort).pk}).json()
    assert Alert.objects.get(pk=body["id"]).created_by == person


@pytest.mark.parametrize("fields, field", [
    ({"operator": "is"}, "operator"),
    ({"cohort": None}, "cohort"),
    ({"threshold": -1}, "threshold"),
    ({"kind": "sync_failing", "operator": "at_least", "threshold": 1.5, "cohort": None, "sync": "SYNC"}, "threshold"),
    ({"kind": "cohort_size", "sync": "SYNC"}, "sync"),
    ({"kind": "weather"}, "kind"),
    ({"operator": "about"}, "operator"),
    ({"name": ""}, "name"),
    ({"webhooks": [999_999]}, "webhooks"),
    ({"threshold": "a lot"}, "threshold"),
])
def test_invalid_input_is_a_400_naming_the_field(api, cohort, fields, field):
    sync = SyncFactory(cohort=cohort)
    payload = {"name": "Big", "kind": "cohort_size", "operator": "greater_than", "threshold": 10, "cohort": cohort.pk}
    payload.update({name: sync.pk if value == "SYNC" else value for name, value in fields.items()})
    response = api.post(URL, payload)
    assert response.status_code == 400
    assert list(response.json()) == [field]
    assert not Alert.objects.exists()


def test_cohort_sync_and_webhooks_of_other_projects_do_not_exist(api, other_project):
    theirs_cohort = CohortFactory(project=other_project)
    theirs_sync = SyncFactory(cohort=theirs_cohort)
    theirs_webhook = ConnectionFactory(project=other_project)
    response = api.post(URL, {"name": "x", "kind": "cohort_size", "operator": "greater_than", "threshold": 1,
                              "cohort": theirs_cohort.pk, "sync": theirs_sync.pk, "webhooks": [theirs_webhook.pk]})
    assert response.status_code == 400
    assert set(response.json()) == {"cohort", "sync", "webhooks"}
    assert "does not exist" in response.json()["cohort"][0]


def test_a_webhook_of_another_of_the_users_projects_is_refused(session_api, session_user, project, other_project):
    other_project.members.add(session_user)
    cohort, webhook = CohortFactory(project=project), ConnectionFactory(project=other_project, name="Theirs")
    response = session_api.post(URL, {"project": project.pk, "name": "x", "kind": "cohort_size",
                                      "operator": "greater_than", "threshold": 1, "cohort": cohort.pk,
                                      "webhooks": [webhook.pk]})
    assert response.status_code == 400
    assert list(response.json()) == ["webhooks"] and "“Theirs”" in response.json()["webhooks"][0]
    response = session_api.post(URL, {"project": other_project.pk, "name": "x", "kind": "cohort_size",
                                      "operator": "greater_than", "threshold": 1, "cohort": cohort.pk})
    assert response.json() == {"cohort": ["The cohort belongs to another project."]}
    assert Alert.objects.get(pk=session_api.post(URL, {
        "project": project.pk, "name": "ok", "kind": "cohort_size", "operator": "greater_than", "threshold": 1,
        "cohort": cohort.pk}).json()["id"]).created_by == session_user


def test_list_and_read_are_scoped_and_show_no_secret(api, cohort, webhook, other_project):
    mine = size_alert(cohort, webhooks=[webhook])
    size_alert(CohortFactory(project=other_project))
    listed = api.get(URL)
    body = api.get(f"{URL}{mine.pk}/").json()
    assert [a["id"] for a in listed.json()["results"]] == [mine.pk]
    assert body["webhooks"] == [webhook.pk] and body["name"] == "Big"
    for text in (listed.content.decode(), api.get(f"{URL}{mine.pk}/").content.decode()):
        assert API_KEY not in text and webhook.url not in text


def test_changing_the_condition_re_arms_the_alert(api, cohort, webhook):
    alert = size_alert(cohort)
    fire(alert, 1500)
    alert.refresh_from_db()
    assert alert.is_triggered

    renamed = api.patch(f"{URL}{alert.pk}/", {"name": "Bigger", "webhooks": [webhook.pk]}).json()
    assert (renamed["name"], renamed["webhooks"], renamed["is_triggered"]) == ("Bigger", [webhook.pk], True)
    body = api.patch(f"{URL}{alert.pk}/", {"threshold": 2000}).json()
    assert (body["threshold"], body["is_triggered"]) == (2000.0, False)
    assert api.patch(f"{URL}{alert.pk}/", {"is_active": False}).json()["is_active"] is False
    assert api.patch(f"{URL}{alert.pk}/", {"webhooks": []}).json()["webhooks"] == []


def test_change_refuses_invalid_values_by_field(api, cohort, other_project):
    alert = size_alert(cohort)
    assert list(api.patch(f"{URL}{alert.pk}/", {"operator": "is"}).json()) == ["operator"]
    theirs = ConnectionFactory(project=other_project)
    assert list(api.patch(f"{URL}{alert.pk}/", {"webhooks": [theirs.pk]}).json()) == ["webhooks"]
    switched = api.patch(f"{URL}{alert.pk}/", {"kind": "sync_paused", "operator": "is", "threshold": 0,
                                               "cohort": None, "sync": SyncFactory(cohort=cohort).pk})
    assert switched.status_code == 200 and switched.json()["cohort"] is None


def test_delete(api, cohort):
    alert = size_alert(cohort)
    fire(alert, 1500)
    assert api.delete(f"{URL}{alert.pk}/").status_code == 204
    assert not Alert.objects.exists() and not AlertFiring.objects.exists()


def test_another_projects_alert_and_firings_are_404s(api, other_project):
    theirs = size_alert(CohortFactory(project=other_project))
    firing = fire(theirs, 5000)
    for method in ("get", "patch", "delete"):
        assert getattr(api, method)(f"{URL}{theirs.pk}/").status_code == 404, method
    assert api.get(f"{FIRINGS_URL}{firing.pk}/").status_code == 404
    assert api.get(f"{FIRINGS_URL}?alert={theirs.pk}").json()["results"] == []
    assert Alert.objects.filter(pk=theirs.pk, name="Big").exists()


# --- Firings ------------------------------------------------------------------------------------


def test_a_delivered_firing_is_read_back_with_its_payload_and_attempts(api, cohort, webhook, receiver):
    alert = size_alert(cohort, webhooks=[webhook])
    firing = fire(alert, 1234)
    alert_firing_deliver(firing_id=firing.pk)

    listed = api.get(f"{FIRINGS_URL}?alert={alert.pk}").json()["results"]
    response = api.get(f"{FIRINGS_URL}{firing.pk}/")

    body = response.json()
    assert [f["id"] for f in listed] == [firing.pk] and "attempts" not in listed[0]
    assert (body["alert"], body["status"], body["current_value"]) == (alert.pk, "delivered", 1234.0)
    assert body["sentence"] == "Cohort “Pro users” has 1,234 members, above the threshold of 1,000."
    assert body["payload"]["event_type"] == "custom_alert_triggered"
    assert body["payload"] == receiver.requests[0].json
    assert [(a["page_number"], a["outcome"], a["http_status"]) for a in body["attempts"]] == [(1, "success", 200)]
    assert API_KEY not in response.content.decode()


def test_firings_newest_first_filtered_by_alert(api, cohort):
    first, second = size_alert(cohort), size_alert(cohort, name="Small", operator="less_than", threshold=10)
    big = fire(first, 5000)
    CohortSize.objects.create(cohort=cohort, size=1, computed_at=timezone.now())
    (small,) = alerts_evaluate_cohort(cohort_id=cohort.pk)
    assert small.alert == second

    assert [f["id"] for f in api.get(FIRINGS_URL).json()["results"]] == [small.pk, big.pk]
    assert [f["id"] for f in api.get(f"{FIRINGS_URL}?alert={first.pk}").json()["results"]] == [big.pk]
    assert api.get(f"{FIRINGS_URL}?alert=x").status_code == 400


def test_firings_are_read_only(api, cohort):
    firing = fire(size_alert(cohort), 5000)
    assert api.delete(f"{FIRINGS_URL}{firing.pk}/").status_code == 405
    assert api.post(FIRINGS_URL, {}).status_code == 405


def test_no_credentials(client):
    assert client.get(URL).status_code == 401
    assert client.get(FIRINGS_URL).status_code == 401
