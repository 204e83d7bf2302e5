"""The cohort screens (cohorts/admin.py): last measured size in the list; live count, preview and
size history on the change page."""

import pytest

from cohorts.models import Cohort
from cohorts.services import cohort_size_record
from tests.conftest import make_profiles, set_members
from tests.factories import CohortFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


def test_the_list_shows_the_last_measured_size_in_one_query(admin_client, django_assert_max_num_queries):
    cohorts = CohortFactory.create_batch(5)
    for cohort in cohorts:
        cohort_size_record(cohort=cohort, size=10)
        cohort_size_record(cohort=cohort, size=12)

    with django_assert_max_num_queries(8):
        response = admin_client.get("/admin/cohorts/cohort/")

    assert response.status_code == 200
    assert [c.last_size for c in response.context["cl"].result_list] == [12] * 5


def test_a_static_cohort_shows_its_count_a_preview_and_its_size_history(admin_client):
    cohort = CohortFactory(name="Trial users")
    set_members(cohort, ["b-2", "a-1", "c-3"])
    for size in (1, 2, 3):
        cohort_size_record(cohort=cohort, size=size)

    response = admin_client.get(f"/admin/cohorts/cohort/{cohort.pk}/change/")

    html = response.content.decode()
    assert response.status_code == 200
    assert "Members now:" in html
    assert html.index("a-1@example.com") < html.index("b-2@example.com") < html.index("c-3@example.com")
    assert "<svg" in html and "Cohort size went from 1 to 3" in html
    assert "Last 3 measurements (UTC)" in html


def test_a_rule_cohort_previews_its_definition(admin_client):
    project = ProjectFactory()
    make_profiles(project, ["x-1", "x-2"], first_name="Grace")
    make_profiles(project, ["y-1"], first_name="Alan")
    cohort = Cohort.objects.create(
        project=project, name="Graces", kind=Cohort.Kind.RULES,
        definition={"match": "all", "conditions": [
            {"type": "property", "property": "first_name", "operator": "equals", "value": "Grace"}]},
    )
    cohort.full_clean()

    html = admin_client.get(f"/admin/cohorts/cohort/{cohort.pk}/change/").content.decode()

    assert "x-1" in html and "x-2" in html and "y-1" not in html
    assert "Not measured yet" in html


def test_the_add_page_still_works(admin_client):
    assert admin_client.get("/admin/cohorts/cohort/add/").status_code == 200
