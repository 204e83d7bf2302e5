"""A rule cohort end to end: scheduled syncs to the loopback receiver send exact pages as
profiles and events change (cohorts/rules.py through deliveries/engine/), the size history
grows by a row a run, and cohort_preview counts and samples a draft definition."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db.models import F
from django.utils import timezone

from cohorts.models import Cohort, CohortSize, Event, Profile
from cohorts.selectors import cohort_preview
from deliveries.models import SyncRun
from tests.conftest import run_now
from tests.factories import CohortFactory, ConnectionFactory, ProjectFactory, SyncFactory

pytestmark = pytest.mark.django_db

PRO_PLAYERS = {
    "match": "all",
    "conditions": [
        {"type": "property", "property": "plan", "operator": "equals", "value": "pro"},
        {"type": "event", "event": "Play", "operator": "at_least", "count": 2, "within_days": 7},
    ],
}


def ids(request) -> list[str]:
    return sorted(member["mixpanel_distinct_id"] for member in request.members)


def plays(project, distinct_id: str, *days_ago: float) -> None:
    now = timezone.now()
    Event.objects.bulk_create([
        Event(project=project, distinct_id=distinct_id, name="Play", time=now - timedelta(days=days))
        for days in days_ago
    ])


def person(project, distinct_id: str, plan: str) -> Profile:
    return Profile.objects.create(project=project, distinct_id=distinct_id, email=f"{distinct_id}@example.com",
                                  properties={"plan": plan})


@pytest.fixture
def project():
    return ProjectFactory()


@pytest.fixture
def pro_players(project):
    """alice, bob, dave match; carol has one Play, erin is free, frank's second Play is old,
    ghost has Plays but no profile, and another project has a matching person."""
    for distinct_id, plan in [("alice", "pro"), ("bob", "pro"), ("carol", "pro"), ("dave", "pro"),
                              ("erin", "free"), ("frank", "pro")]:
        person(project, distinct_id, plan)
    plays(project, "alice", 1, 2)
    plays(project, "bob", 3, 6)
    plays(project, "carol", 1)
    plays(project, "dave", 0.5, 1, 5)
    plays(project, "erin", 1, 2, 3)
    plays(project, "frank", 1, 8)
    plays(project, "ghost", 1, 2)
    elsewhere = ProjectFactory()
    person(elsewhere, "zed", "pro")
    plays(elsewhere, "zed", 1, 2)
    return CohortFactory(project=project, kind=Cohort.Kind.RULES, definition=PRO_PLAYERS)


def bob_stops_playing(project) -> None:
    Event.objects.filter(project=project, distinct_id="bob").delete()


def bob_is_deleted(project) -> None:
    Profile.objects.filter(project=project, distinct_id="bob").delete()


@pytest.mark.parametrize("bob_leaves", [
    pytest.param(bob_stops_playing, id="member-stops-matching"),
    pytest.param(bob_is_deleted, id="member-profile-deleted"),
])
def test_a_rule_cohort_syncs_exact_pages_as_data_changes(project, pro_players, receiver, bob_leaves):
    pro_players.full_clean()
    connection = ConnectionFactory(project=project, url=receiver.url())
    sync = SyncFactory(cohort=pro_players, connection=connection)

    # First run: the whole cohort as one `members` page.
    run = run_now(sync)
    assert run.status == SyncRun.Status.SUCCEEDED
    assert [r.action for r in receiver.requests] == ["members"]
    assert ids(receiver.requests[0]) == ["alice", "bob", "dave"]
    assert receiver.requests[0].members[0] == {"mixpanel_distinct_id": "alice", "email": "alice@example.com"}
    receiver.clear()

    # alice moves to the free plan, carol plays a second time, bob leaves.
    Profile.objects.filter(project=project, distinct_id="alice").update(properties={"plan": "free"})
    plays(project, "carol", 0.1)
    bob_leaves(project)

    run = run_now(sync)
    assert run.status == SyncRun.Status.SUCCEEDED
    assert [r.action for r in receiver.requests] == ["add_members", "remove_members"]
    assert (run.adds_count, run.removes_count) == (1, 2)
    assert ids(receiver.requests[0]) == ["carol"]
    assert ids(receiver.requests[1]) == ["alice", "bob"]
    assert [r.page_info for r in receiver.requests] == [
        {"total_pages": 2, "page_count": 1},
        {"total_pages": 2, "page_count": 2},
    ]
    receiver.clear()

    # Nothing changed: one empty add page and one empty remove page.
    run = run_now(sync)
    assert run.status == SyncRun.Status.SUCCEEDED
    assert [r.action for r in receiver.requests] == ["add_members", "remove_members"]
    assert [r.members for r in receiver.requests] == [[], []]

    # The size history: a row a run, oldest first.
    assert list(CohortSize.objects.filter(cohort=pro_players).order_by("id").values_list("size", flat=True)) == [
        3, 2, 2]
    assert sync.snapshot_size == 2


def test_a_rule_cohort_notices_events_leaving_the_window(project, receiver):
    person(project, "dana", "pro")
    plays(project, "dana", 1, 6.5)
    cohort = CohortFactory(project=project, kind=Cohort.Kind.RULES, definition=PRO_PLAYERS)
    sync = SyncFactory(cohort=cohort, connection=ConnectionFactory(project=project, url=receiver.url()))
    run_now(sync)
    assert ids(receiver.requests[0]) == ["dana"]
    receiver.clear()

    # A day passes (her events age by a day): the older Play leaves the 7-day window.
    Event.objects.filter(project=project, distinct_id="dana").update(time=F("time") - timedelta(days=1))

    run = run_now(sync)
    assert run.status == SyncRun.Status.SUCCEEDED
    assert [(r.action, ids(r)) for r in receiver.requests] == [("add_members", []), ("remove_members", ["dana"])]


# --- cohort_preview ------------------------------------------------------------------------


def test_preview_counts_and_samples_a_draft_definition(project, pro_players):
    count, sample = cohort_preview(project_id=project.pk, definition=PRO_PLAYERS, sample_size=2)

    assert count == 3
    assert [profile.distinct_id for profile in sample] == ["alice", "bob"]
    assert not CohortSize.objects.exists()  # a preview is no computation of a saved cohort


def test_preview_of_a_definition_nobody_matches(project, pro_players):
    nobody = {"conditions": [{"type": "property", "property": "plan", "operator": "equals", "value": "gold"}]}

    assert cohort_preview(project_id=project.pk, definition=nobody) == (0, [])


def test_preview_validates_first(project):
    bad = {"conditions": [{"type": "event", "event": "Play", "within_days": 91}]}

    with pytest.raises(ValidationError) as raised:
        cohort_preview(project_id=project.pk, definition=bad)
    assert raised.value.message_dict["definition"][0].startswith("definition.conditions[0].within_days: ")
