"""Staff who are not superusers see, change and choose only their projects' objects in the admin
(cohorts/admin_scope.py, applied to every ModelAdmin)."""

import pytest
from django.contrib.auth.models import Permission

from tests.factories import (
    CohortFactory,
    ConnectionFactory,
    DeliveryAttemptFactory,
    ProjectFactory,
    SyncFactory,
    SyncRunFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def ours():
    return ProjectFactory(name="Ours")


@pytest.fixture
def theirs():
    return ProjectFactory(name="Theirs-Private")


@pytest.fixture
def staff_client(client, ours):
    """Staff with every model permission, member of `ours` only."""
    user = UserFactory(username="staffer", is_staff=True)
    user.user_permissions.set(Permission.objects.all())
    ours.members.add(user)
    client.force_login(user)
    return client


def test_lists_show_only_the_staffs_projects(staff_client, ours, theirs):
    mine = SyncFactory(cohort=CohortFactory(project=ours, name="our-cohort"),
                       connection=ConnectionFactory(project=ours, name="our-hook"))
    other = SyncFactory(cohort=CohortFactory(project=theirs, name="their-cohort"),
                        connection=ConnectionFactory(project=theirs, name="their-hook"))
    DeliveryAttemptFactory(source=SyncRunFactory(sync=other), response_excerpt="their-answer")

    for path, visible, hidden in [
        ("/admin/cohorts/project/", "Ours", "Theirs-Private"),
        ("/admin/cohorts/cohort/", "our-cohort", "their-cohort"),
        ("/admin/integrations/connection/", "our-hook", "their-hook"),
        ("/admin/deliveries/sync/", "our-cohort", "their-cohort"),
    ]:
        html = staff_client.get(path).content.decode()
        assert visible in html and hidden not in html, path
    assert "Theirs-Private" not in staff_client.get("/admin/integrations/connection/").content.decode()  # filter
    assert staff_client.get("/admin/outbound/deliveryattempt/").context["cl"].result_count == 0
    assert staff_client.get(f"/admin/deliveries/sync/{mine.pk}/change/").status_code == 200
    # Another project's object does not exist for them (the admin redirects with "doesn't exist").
    assert staff_client.get(f"/admin/deliveries/sync/{other.pk}/change/").status_code == 302
    assert staff_client.get(f"/admin/integrations/connection/{other.connection_id}/change/").status_code == 302


def test_form_choices_offer_only_the_staffs_projects(staff_client, ours, theirs):
    CohortFactory(project=ours, name="our-cohort")
    CohortFactory(project=theirs, name="their-cohort")
    ConnectionFactory(project=ours, name="our-hook")
    ConnectionFactory(project=theirs, name="their-hook")
    outsider = UserFactory(username="outsider-user")
    theirs.members.add(outsider)

    connection_form = staff_client.get("/admin/integrations/connection/add/").context["adminform"].form
    assert [p.name for p in connection_form.fields["project"].queryset] == ["Ours"]
    sync_form = staff_client.get("/admin/deliveries/sync/add/").context["adminform"].form
    assert [c.name for c in sync_form.fields["cohort"].queryset] == ["our-cohort"]
    assert [c.name for c in sync_form.fields["connection"].queryset] == ["our-hook"]
    # The alert form sets its own choices in __init__: still scoped.
    alert_form = staff_client.get("/admin/alerts/alert/add/").context["adminform"].form
    assert [c.name for c in alert_form.fields["webhooks"].queryset] == ["our-hook"]
    assert [c.name for c in alert_form.fields["cohort"].queryset] == ["our-cohort"]
    assert "outsider-user" not in {u.username for u in alert_form.fields["notify_users"].queryset}


def test_a_submitted_id_of_another_project_is_refused(staff_client, ours, theirs):
    response = staff_client.post("/admin/integrations/connection/add/", {
        "project": theirs.pk, "name": "sneaky", "url": "https://example.com/h", "format": "mixpanel", "headers": "{}",
    })

    assert response.status_code == 200
    assert "project" in response.context["adminform"].form.errors
    assert not theirs.connections.exists()


def test_superusers_see_everything(client, ours, theirs):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    ConnectionFactory(project=theirs, name="their-hook")

    assert "their-hook" in client.get("/admin/integrations/connection/").content.decode()


def test_ingestion_keys_are_listed_only_for_the_staffs_projects(staff_client, ours, theirs):
    from sdk_ingest.services import ingest_key_create

    ingest_key_create(project=ours, kind="segment_write_key", name="our-write-key")
    theirs_key, _ = ingest_key_create(project=theirs, kind="segment_write_key", name="their-write-key")

    html = staff_client.get("/admin/sdk_ingest/ingestkey/").content.decode()

    assert "our-write-key" in html and "their-write-key" not in html
    assert staff_client.get(f"/admin/sdk_ingest/ingestkey/{theirs_key.pk}/change/").status_code in (302, 404)
