"""Rule cohorts that refer to rule cohorts (cohorts/rules.py): each referenced cohort is
compiled once, so the SQL grows with the number of distinct cohorts, not with the product of
the references; depth and breadth are bounded at save time with a 400, before anything is saved."""

import pytest
from django.core.exceptions import ValidationError

from cohorts.models import Cohort, Profile
from cohorts.rules import validate_definition
from cohorts.selectors import cohort_member_count, cohort_membership
from deliveries.models import SyncRun
from tests.api.conftest import key_client
from tests.conftest import make_profiles, run_now, set_members
from tests.factories import CohortFactory, ConnectionFactory, ProjectFactory, SyncFactory

pytestmark = pytest.mark.django_db
URL = "/api/v1/cohorts/"
PRO = {"type": "property", "property": "plan", "operator": "equals", "value": "pro"}


@pytest.fixture
def project():
    project = ProjectFactory()
    make_profiles(project, ["ada", "bob"], properties={"plan": "pro"})
    make_profiles(project, ["cy"], properties={"plan": "free"})
    return project


def refers(cohort: Cohort, times: int = 1, member: bool = True) -> dict:
    return {"match": "any", "conditions": [{"type": "cohort", "cohort_id": cohort.pk, "in": member}] * times}


def rules(project, definition) -> Cohort:
    return CohortFactory(project=project, kind=Cohort.Kind.RULES, definition=definition)


def fan_out(project, *, levels: int, times: int) -> Cohort:
    """A cohort of `times` references to a cohort of `times` references ... `levels` deep."""
    cohort = rules(project, {"conditions": [PRO]})
    for _ in range(levels):
        cohort = rules(project, refers(cohort, times))
    return cohort


def membership_sql(cohort: Cohort) -> str:
    sql, _ = cohort_membership(cohort=cohort).query.sql_with_params()
    return sql


def test_the_sql_grows_with_distinct_cohorts_not_with_the_product_of_references(project):
    single = membership_sql(fan_out(project, levels=1, times=1))
    # Inlined, 10 x 10 x 10 references held 1,000 copies of the innermost cohort's SQL.
    nested = membership_sql(fan_out(project, levels=3, times=10))

    assert len(nested) < 10 * len(single)
    assert len(membership_sql(fan_out(project, levels=3, times=50))) < 30 * len(single)


def test_fifty_references_to_fifty_references_to_fifty_references_count_right(project):
    top = fan_out(project, levels=3, times=50)

    assert cohort_member_count(cohort=top) == 2
    assert set(Profile.objects.filter(pk__in=cohort_membership(cohort=top)).values_list("distinct_id", flat=True)) \
        == {"ada", "bob"}


def test_a_chain_of_ten_references_reads_on_every_database(project, settings):
    # Inlined, each level nested a subquery: SQLite's parser overflowed its stack at ten.
    settings.COHORTSYNC_RULE_MAX_REFERENCE_DEPTH = 10
    top = fan_out(project, levels=10, times=1)
    not_top = rules(project, refers(top, member=False))

    assert cohort_member_count(cohort=top) == 2
    assert cohort_member_count(cohort=not_top) == 1


def test_a_shared_reference_is_compiled_once_under_in_and_not_in(project):
    pros = rules(project, {"conditions": [PRO]})
    static = CohortFactory(project=project)
    set_members(static, ["bob", "cy"])
    both = rules(project, {"conditions": [
        {"type": "cohort", "cohort_id": pros.pk}, {"type": "cohort", "cohort_id": static.pk, "in": False}]})
    top = rules(project, {"match": "any", "conditions": [
        {"type": "cohort", "cohort_id": both.pk}, {"type": "cohort", "cohort_id": pros.pk, "in": False}]})

    assert membership_sql(top).count(f"cohort_{pros.pk}_members") <= 3
    members = Profile.objects.filter(pk__in=cohort_membership(cohort=top)).values_list("distinct_id", flat=True)
    assert set(members) == {"ada", "cy"}


def test_a_sync_of_a_cohort_of_many_references_sends_its_members(project, receiver):
    top = fan_out(project, levels=3, times=50)
    sync = SyncFactory(cohort=top, connection=ConnectionFactory(project=project, url=receiver.url()))

    run = run_now(sync)

    assert run.status == SyncRun.Status.SUCCEEDED
    assert sorted(m["mixpanel_distinct_id"] for m in receiver.requests[0].members) == ["ada", "bob"]


# --- Limits, checked before saving -------------------------------------------------------------


def test_a_chain_deeper_than_the_limit_is_a_400_and_nothing_is_saved(project, settings):
    settings.COHORTSYNC_RULE_MAX_REFERENCE_DEPTH = 3
    api = key_client(project)
    deepest = fan_out(project, levels=3, times=1)
    before = Cohort.objects.count()

    response = api.post(URL, {"name": "too deep", "kind": "rules", "definition": refers(deepest)})

    assert response.status_code == 400
    assert response.json()["definition"] == [
        "definition: this cohort would refer through 4 levels of cohorts; at most 3 "
        "(COHORTSYNC_RULE_MAX_REFERENCE_DEPTH)"]
    assert Cohort.objects.count() == before


def test_more_distinct_cohorts_than_the_limit_is_a_400(project, settings):
    settings.COHORTSYNC_RULE_MAX_REFERENCED_COHORTS = 3
    api = key_client(project)
    leaves = [rules(project, {"conditions": [PRO]}) for _ in range(4)]
    definition = {"match": "any", "conditions": [{"type": "cohort", "cohort_id": c.pk} for c in leaves]}

    response = api.post(URL, {"name": "wide", "kind": "rules", "definition": definition})

    assert response.status_code == 400
    assert "would refer to 4 cohorts" in response.json()["definition"][0]
    assert api.post(URL, {"name": "ok", "kind": "rules", "definition": refers(leaves[0], 40)}).status_code == 201


def test_an_edit_that_pushes_a_referring_cohort_past_the_limit_is_refused(project, settings):
    settings.COHORTSYNC_RULE_MAX_REFERENCE_DEPTH = 2
    api = key_client(project)
    bottom = rules(project, {"conditions": [PRO]})
    middle = rules(project, refers(bottom))
    top = rules(project, refers(middle))
    other = rules(project, {"conditions": [PRO]})

    response = api.patch(f"{URL}{bottom.pk}/", {"definition": refers(other)})

    assert response.status_code == 400
    assert response.json()["definition"] == [
        f"definition: cohort {top.pk}, which refers to this one, would refer through 3 levels of cohorts; "
        "at most 2 (COHORTSYNC_RULE_MAX_REFERENCE_DEPTH)"]
    bottom.refresh_from_db()
    assert bottom.definition == {"conditions": [PRO]}


def test_a_definition_nested_thousands_deep_is_refused_without_recursing(project):
    definition = {"conditions": [PRO]}
    for _ in range(3000):
        definition = {"conditions": [definition]}

    with pytest.raises(ValidationError) as raised:
        validate_definition(definition, project_id=project.pk)
    assert "nested more than" in raised.value.message_dict["definition"][0]
