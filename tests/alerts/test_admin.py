"""The operators' alert and firing screens (alerts/admin.py): saving through the services, choices
limited to the alert's project, the firings with their payload, and attempts naming firings."""

import pytest
from django.utils import timezone

from alerts.models import Alert, AlertFiring
from alerts.selectors import alert_condition_in_words
from alerts.services import alert_create, alert_firing_deliver, alerts_evaluate_cohort
from cohorts.models import CohortSize
from tests.factories import CohortFactory, ConnectionFactory, SyncFactory, UserFactory

pytestmark = pytest.mark.django_db

API_KEY = "sk_live_never_shown"


@pytest.fixture
def root():
    return UserFactory(username="root", is_staff=True, is_superuser=True)


@pytest.fixture
def admin_client(client, root):
    client.force_login(root)
    return client


@pytest.fixture
def webhook(cohort, make_webhook):
    return make_webhook(cohort.project, api_key=API_KEY)


def size_alert(cohort, **fields) -> Alert:
    fields = {"name": "Big", "kind": Alert.Kind.COHORT_SIZE, "operator": Alert.Operator.GREATER_THAN,
              "threshold": 1000, **fields}
    return alert_create(project=cohort.project, cohort=cohort, **fields)


def fire(alert, size) -> AlertFiring:
    CohortSize.objects.create(cohort=alert.cohort, size=size, computed_at=timezone.now())
    (firing,) = alerts_evaluate_cohort(cohort_id=alert.cohort_id)
    return firing


def form_data(watched, **fields) -> dict:
    data = {"project": watched.project_id, "name": "Pro users above 1,000", "kind": "cohort_size",
            "operator": "greater_than", "threshold": "1000", "cohort": watched.pk, "sync": "", "webhooks": [],
            "notify_users": [], "is_active": "on"}
    data.update(fields)
    return data


# --- Add and change through the services ----------------------------------------------------


def test_adding_an_alert_goes_through_the_service(admin_client, root, cohort, webhook):
    assert admin_client.get("/admin/alerts/alert/add/").status_code == 200

    response = admin_client.post("/admin/alerts/alert/add/", form_data(cohort, webhooks=[webhook.pk]))

    assert response.status_code == 302, response.context["adminform"].form.errors
    alert = Alert.objects.get()
    assert (alert.kind, alert.operator, alert.threshold, alert.cohort) == ("cohort_size", "greater_than", 1000, cohort)
    assert list(alert.webhooks.all()) == [webhook] and alert.created_by == root and alert.is_active


def test_the_add_page_opened_for_a_project_offers_only_its_objects(admin_client, cohort, webhook):
    sync = SyncFactory(cohort=cohort)
    theirs = SyncFactory()
    ConnectionFactory(name="Elsewhere")

    form = admin_client.get(f"/admin/alerts/alert/add/?project={cohort.project_id}").context["adminform"].form

    assert list(form.fields["cohort"].queryset) == [cohort]
    assert set(form.fields["sync"].queryset) == {sync}
    assert set(form.fields["webhooks"].queryset) == {webhook, sync.connection}
    unscoped = admin_client.get("/admin/alerts/alert/add/").context["adminform"].form
    assert theirs in unscoped.fields["sync"].queryset
    assert f"{cohort.name} ({cohort.project.name})" in admin_client.get("/admin/alerts/alert/add/").content.decode()


@pytest.mark.parametrize("fields, field", [
    ({"operator": "is"}, "operator"),
    ({"cohort": ""}, "cohort"),
    ({"threshold": "-5"}, "threshold"),
    ({"kind": "sync_failing", "operator": "at_least", "threshold": "2", "cohort": ""}, "sync"),
])
def test_invalid_values_show_next_to_their_field(admin_client, cohort, fields, field):
    response = admin_client.post("/admin/alerts/alert/add/", form_data(cohort, **fields))

    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert not Alert.objects.exists()


def test_another_projects_cohort_and_webhooks_are_refused_by_field(admin_client, cohort):
    theirs_cohort, theirs_webhook = CohortFactory(), ConnectionFactory(name="Theirs")

    response = admin_client.post("/admin/alerts/alert/add/",
                                 form_data(cohort, cohort=theirs_cohort.pk, webhooks=[theirs_webhook.pk]))

    errors = response.context["adminform"].form.errors
    assert errors["cohort"] == ["The cohort belongs to another project."]
    assert "“Theirs”" in errors["webhooks"][0]
    assert not Alert.objects.exists()


def test_changing_the_condition_re_arms_the_alert_and_renaming_does_not(admin_client, cohort, webhook):
    alert = size_alert(cohort)
    fire(alert, 1500)
    change = f"/admin/alerts/alert/{alert.pk}/change/"
    form = admin_client.get(change).context["adminform"].form
    assert "project" not in form.fields  # read-only once created
    assert list(form.fields["webhooks"].queryset) == [webhook]

    renamed = admin_client.post(change, form_data(cohort, name="Bigger", webhooks=[webhook.pk]))
    alert.refresh_from_db()
    assert renamed.status_code == 302
    assert (alert.name, alert.is_triggered, list(alert.webhooks.all())) == ("Bigger", True, [webhook])

    admin_client.post(change, form_data(cohort, name="Bigger", threshold="2000"))
    alert.refresh_from_db()
    assert (alert.threshold, alert.is_triggered, list(alert.webhooks.all())) == (2000, False, [])


# --- Lists ------------------------------------------------------------------------------------


def test_alert_list_says_condition_watched_object_and_webhooks_in_few_queries(admin_client, cohort, webhook,
                                                                             django_assert_max_num_queries):
    alert = size_alert(cohort, webhooks=[webhook, ConnectionFactory(project=cohort.project)])
    fire(alert, 1500)
    sync = SyncFactory(cohort=cohort)
    for n in range(10):
        failing = alert_create(project=cohort.project, name=f"Sync {n}", kind="sync_failing", operator="at_least",
                               threshold=3, sync=sync, webhooks=[webhook])

    with django_assert_max_num_queries(8):
        response = admin_client.get("/admin/alerts/alert/")

    html = response.content.decode()
    # The status pages' wording of a condition ("… greater than 1,000"), shared with them.
    assert alert_condition_in_words(alert=alert) in html and "1,000" in alert_condition_in_words(alert=alert)
    assert alert_condition_in_words(alert=failing) in html
    assert f'cohort <a href="/admin/cohorts/cohort/{cohort.pk}/change/">Pro users</a>' in html
    assert '<td class="field-webhook_count">2</td>' in html
    assert API_KEY not in html


def test_a_firing_shows_its_pretty_payload_and_attempts_and_is_listed_on_its_alert(admin_client, cohort, webhook,
                                                                                  notifications):
    alert = size_alert(cohort, webhooks=[webhook])
    firing = fire(alert, 1234)
    alert_firing_deliver(firing_id=firing.pk)

    listed = admin_client.get("/admin/alerts/alertfiring/?status__exact=delivered")
    detail = admin_client.get(f"/admin/alerts/alertfiring/{firing.pk}/change/").content.decode()
    alert_page = admin_client.get(f"/admin/alerts/alert/{alert.pk}/change/").content.decode()
    attempts = admin_client.get("/admin/outbound/deliveryattempt/?source=alert")

    assert list(listed.context["cl"].result_list) == [firing]
    assert "Cohort “Pro users” has 1,234 members, above the threshold of 1,000." in listed.content.decode()
    assert "<pre>{\n" in detail  # indented, one key a line (PostgreSQL's jsonb orders the keys its own way)
    assert "\n  &quot;event_type&quot;: &quot;custom_alert_triggered&quot;" in detail
    assert "alert_triggered" in detail  # the attempts inline
    assert f'href="/admin/alerts/alertfiring/{firing.pk}/change/"' in alert_page
    assert f"/admin/alerts/alertfiring/?alert__id__exact={alert.pk}" in alert_page
    assert API_KEY not in detail and API_KEY not in alert_page
    assert [a.source_id for a in attempts.context["cl"].result_list] == [firing.pk]
    assert (f'<a href="/admin/alerts/alertfiring/{firing.pk}/change/">alert “Big” firing #{firing.pk}</a>'
            "&nbsp;delivered") in attempts.content.decode()
    assert admin_client.get("/admin/alerts/alertfiring/add/").status_code == 403
