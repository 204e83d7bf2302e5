"""Generated demo data (cohorts/demo.py): profiles, fill, trim and churn, on SQLite and
PostgreSQL (which writes profiles with COPY)."""

import pytest

from cohorts.demo import demo_cohort_churn, demo_cohort_fill, demo_cohort_trim, demo_distinct_id, demo_profiles_create
from cohorts.models import CohortMember, Profile
from tests.factories import CohortFactory, ProfileFactory, ProjectFactory

pytestmark = pytest.mark.django_db


def member_ids(cohort) -> set[str]:
    return set(CohortMember.objects.filter(cohort=cohort).values_list("profile__distinct_id", flat=True))


def demo_cohort(size: int):
    cohort = CohortFactory()
    first, last = demo_profiles_create(project=cohort.project, count=size)
    demo_cohort_fill(cohort=cohort, first=first, last=last)
    return cohort


def test_distinct_ids_are_zero_padded_so_they_sort_by_number():
    assert demo_distinct_id(7) == "demo-user-0000007"
    assert sorted([demo_distinct_id(10), demo_distinct_id(9)]) == [demo_distinct_id(9), demo_distinct_id(10)]


def test_profiles_create_makes_complete_profiles():
    project = ProjectFactory()

    assert demo_profiles_create(project=project, count=3) == (1, 3)

    profiles = list(Profile.objects.filter(project=project).order_by("distinct_id"))
    assert [p.distinct_id for p in profiles] == ["demo-user-0000001", "demo-user-0000002", "demo-user-0000003"]
    first = profiles[0]
    assert (first.first_name, first.last_name) == ("Grace", "Hopper")
    assert first.email == "grace.hopper1@example.com"
    assert first.phone_number == "+1-555-0000001"
    assert first.properties["plan"] == "pro"
    assert first.properties["beta"] is False
    assert 0 <= first.properties["score"] <= 100
    assert first.created_at is not None and first.updated_at is not None


def test_profiles_create_numbers_after_the_existing_ones_per_project():
    project, other = ProjectFactory(), ProjectFactory()
    demo_profiles_create(project=project, count=3)
    ProfileFactory(project=project, distinct_id="not-a-demo-user")

    assert demo_profiles_create(project=project, count=2) == (4, 5)
    assert demo_profiles_create(project=other, count=1) == (1, 1)
    assert Profile.objects.filter(project=project).count() == 6


def test_fill_adds_the_numbered_range_once():
    cohort = CohortFactory()
    demo_profiles_create(project=cohort.project, count=10)

    assert demo_cohort_fill(cohort=cohort, first=3, last=6) == 4
    assert demo_cohort_fill(cohort=cohort, first=1, last=6) == 2

    assert member_ids(cohort) == {demo_distinct_id(n) for n in range(1, 7)}


def test_fill_stays_inside_the_cohorts_project():
    cohort = CohortFactory()
    demo_profiles_create(project=ProjectFactory(), count=5)

    assert demo_cohort_fill(cohort=cohort, first=1, last=5) == 0
    assert member_ids(cohort) == set()


def test_trim_keeps_the_lowest_numbered_members():
    cohort = demo_cohort(10)

    assert demo_cohort_trim(cohort=cohort, size=4) == 6

    assert member_ids(cohort) == {demo_distinct_id(n) for n in range(1, 5)}
    assert demo_cohort_trim(cohort=cohort, size=4) == 0


def test_trim_to_zero_empties_the_cohort_but_keeps_the_profiles():
    cohort = demo_cohort(5)

    assert demo_cohort_trim(cohort=cohort, size=0) == 5

    assert member_ids(cohort) == set()
    assert Profile.objects.filter(project=cohort.project).count() == 5


@pytest.mark.parametrize(("size", "percent", "swapped"), [
    (40, 10, 4), (100, 20, 20), (50, 100, 50), (10, 1, 1), (25, 20, 5), (25, 10, 3), (30, 5, 2),
], ids=["exact", "exact 20", "all", "at least one", "README's 20 % of 25", "2.5 rounds up", "1.5 rounds up"])
def test_churn_swaps_percent_of_the_members_and_keeps_the_size(size, percent, swapped):
    cohort = demo_cohort(size)
    before = member_ids(cohort)

    removed, added = demo_cohort_churn(cohort=cohort, percent=percent)

    after = member_ids(cohort)
    assert (removed, added) == (swapped, swapped)
    assert len(after) == size
    assert len(before - after) == swapped
    assert after - before == {demo_distinct_id(n) for n in range(size + 1, size + swapped + 1)}


def test_churn_of_zero_percent_changes_nothing():
    cohort = demo_cohort(10)
    before = member_ids(cohort)

    assert demo_cohort_churn(cohort=cohort, percent=0) == (0, 0)

    assert member_ids(cohort) == before
    assert Profile.objects.filter(project=cohort.project).count() == 10


def test_repeated_churn_does_not_drift_the_size():
    cohort = demo_cohort(30)

    for _ in range(5):
        demo_cohort_churn(cohort=cohort, percent=20)

    assert len(member_ids(cohort)) == 30
    assert Profile.objects.filter(project=cohort.project).count() == 30 + 5 * 6


def test_churn_of_an_empty_cohort_keeps_it_empty():
    cohort = CohortFactory()

    demo_cohort_churn(cohort=cohort, percent=10)

    assert member_ids(cohort) == set()
