"""Profiles and static cohort membership (cohorts/services.py)."""

import pytest

from cohorts.ingestion import profiles_upsert
from cohorts.models import CohortMember, Profile
from cohorts.services import cohort_members_add, cohort_members_remove, cohort_members_replace
from tests.conftest import set_members
from tests.factories import CohortFactory, ProfileFactory

pytestmark = pytest.mark.django_db


def member_ids(cohort) -> list[str]:
    return sorted(
        CohortMember.objects.filter(cohort=cohort).values_list("profile__distinct_id", flat=True)
    )


def people(*distinct_ids, **fields) -> list[dict]:
    return [{"distinct_id": d, "email": f"{d}@example.com", **fields} for d in distinct_ids]


# --- membership ----------------------------------------------------------------------------


@pytest.fixture
def cohort():
    cohort = CohortFactory()
    profiles_upsert(project=cohort.project, items=people("a", "b", "c", "d"))
    return cohort


def test_add_members_by_distinct_id_ignoring_unknown_ids(cohort):
    added = cohort_members_add(cohort=cohort, distinct_ids=["a", "c", "nobody"])

    assert added == 2
    assert member_ids(cohort) == ["a", "c"]


def test_add_members_ignores_profiles_of_other_projects(cohort):
    ProfileFactory(distinct_id="elsewhere")

    assert cohort_members_add(cohort=cohort, distinct_ids=["elsewhere"]) == 0
    assert member_ids(cohort) == []


def test_adding_existing_members_again_keeps_one_row_each(cohort):
    cohort_members_add(cohort=cohort, distinct_ids=["a", "b"])

    cohort_members_add(cohort=cohort, distinct_ids=["a", "b", "c"])

    assert member_ids(cohort) == ["a", "b", "c"]
    assert CohortMember.objects.filter(cohort=cohort).count() == 3


def test_add_members_counts_only_new_members(cohort):
    cohort_members_add(cohort=cohort, distinct_ids=["a", "b"])

    assert cohort_members_add(cohort=cohort, distinct_ids=["a", "b", "c"]) == 1


def test_add_members_in_chunks_above_the_sqlite_parameter_limit():
    cohort = CohortFactory()
    ids = [f"bulk-{i:05d}" for i in range(2100)]
    profiles_upsert(project=cohort.project, items=people(*ids))

    added = cohort_members_add(cohort=cohort, distinct_ids=iter(ids))

    assert added == 2100
    assert CohortMember.objects.filter(cohort=cohort).count() == 2100


def test_remove_members_returns_how_many_left(cohort):
    cohort_members_add(cohort=cohort, distinct_ids=["a", "b", "c"])
    other = CohortFactory(project=cohort.project)
    cohort_members_add(cohort=other, distinct_ids=["a"])

    removed = cohort_members_remove(cohort=cohort, distinct_ids=["a", "c", "d", "nobody"])

    assert removed == 2
    assert member_ids(cohort) == ["b"]
    assert member_ids(other) == ["a"]


def test_replace_members_makes_the_cohort_hold_exactly_those(cohort):
    cohort_members_add(cohort=cohort, distinct_ids=["a", "b"])

    cohort_members_replace(cohort=cohort, distinct_ids=["b", "c", "d"])

    assert member_ids(cohort) == ["b", "c", "d"]
    assert Profile.objects.filter(project=cohort.project).count() == 4  # profiles are never deleted


def test_replace_with_nothing_empties_the_cohort(cohort):
    set_members(cohort, ["a", "b"])

    cohort_members_replace(cohort=cohort, distinct_ids=[])

    assert member_ids(cohort) == []
