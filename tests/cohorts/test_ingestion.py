"""Data in (cohorts/ingestion.py): batch upsert of profiles, batch tracking of events, pruning and
profile deletion, on SQLite and PostgreSQL (COPY, row locks); and membership lists
(cohorts/services.py cohort_members_import), the prune task and the read-only events admin."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection as db, transaction
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from cohorts import ingestion
from cohorts.ingestion import (
    MAX_BATCH,
    BatchResult,
    ItemError,
    events_prune,
    events_track,
    profile_delete,
    profiles_upsert,
)
from cohorts.models import Cohort, CohortMember, Event, Profile
from cohorts.services import cohort_members_import
from cohorts.tasks import prune_events
from tests.factories import CohortFactory, CohortMemberFactory, ProfileFactory, ProjectFactory
from tests.support.faults import wait_for_a_blocked_query

pytestmark = pytest.mark.django_db


def stored(project, distinct_id) -> Profile:
    return Profile.objects.get(project=project, distinct_id=distinct_id)


def events_of(project) -> list[Event]:
    return list(Event.objects.filter(project=project).order_by("time", "id"))


# --- profiles: properties --------------------------------------------------------------------


def test_set_adds_and_overwrites_properties_and_keeps_the_others():
    project = ProjectFactory()
    ProfileFactory(project=project, distinct_id="a", properties={"plan": "free", "score": 1})

    result = profiles_upsert(project=project, items=[{"distinct_id": "a", "set": {"plan": "pro", "beta": True}}])

    assert result == BatchResult(accepted=1, errors=[])
    assert stored(project, "a").properties == {"plan": "pro", "score": 1, "beta": True}


def test_set_once_only_fills_properties_the_profile_does_not_have():
    project = ProjectFactory()
    ProfileFactory(project=project, distinct_id="a", properties={"first_seen": "2024-01-01", "empty": None})

    profiles_upsert(project=project, items=[
        {"distinct_id": "a", "set_once": {"first_seen": "2025-06-30", "empty": 1, "source": "ads"}},
    ])

    assert stored(project, "a").properties == {"first_seen": "2024-01-01", "empty": None, "source": "ads"}


def test_unset_removes_properties_and_ignores_absent_ones():
    project = ProjectFactory()
    ProfileFactory(project=project, distinct_id="a", properties={"plan": "pro", "score": 3})

    profiles_upsert(project=project, items=[{"distinct_id": "a", "unset": ["score", "never-there"]}])

    assert stored(project, "a").properties == {"plan": "pro"}


def test_within_one_item_set_beats_set_once_and_unset_beats_both():
    project = ProjectFactory()

    profiles_upsert(project=project, items=[{
        "distinct_id": "a",
        "set_once": {"plan": "free", "gone": 1},
        "set": {"plan": "pro", "gone": 2},
        "unset": ["gone"],
    }])

    assert stored(project, "a").properties == {"plan": "pro"}


def test_property_values_may_be_any_json():
    project = ProjectFactory()
    values = {"n": 1.5, "big": 2**60, "list": [1, "two", None], "nested": {"deep": {"er": [True]}}, "none": None}

    profiles_upsert(project=project, items=[{"distinct_id": "a", "set": values}])

    assert stored(project, "a").properties == values


# --- profiles: operations on stored values (add, append, union, remove) -----------------------


def test_add_increments_numbers_and_an_absent_property_counts_as_zero():
    project = ProjectFactory()
    ProfileFactory(project=project, distinct_id="a", properties={"logins": 3, "spent": 1.5, "n": 2})

    result = profiles_upsert(project=project, items=[
        {"distinct_id": "a", "add": {"logins": 1, "spent": 1, "n": 0.5, "new": -2}},
        {"distinct_id": "a", "add": {"logins": -10}},
    ])

    assert result == BatchResult(accepted=2, errors=[])
    properties = stored(project, "a").properties
    assert properties == {"logins": -6, "spent": 2.5, "n": 2.5, "new": -2}
    assert type(properties["logins"]) is int and type(properties["n"]) is float


def test_append_union_and_remove_change_arrays_by_json_value():
    project = ProjectFactory()
    ProfileFactory(project=project, distinct_id="a", properties={
        "tags": ["a", 1, {"k": 1, "j": 2}, True], "seen": ["x", "x", "y"]})

    profiles_upsert(project=project, items=[
        {"distinct_id": "a", "append": {"tags": "a", "fresh": [1]}},
        # 1.0 is the number 1; true is not 1; an object whatever its key order.
        {"distinct_id": "a", "union": {"tags": [1.0, 1, {"j": 2, "k": 1}, "b", "b"], "more": ["m", "m"]}},
        {"distinct_id": "a", "remove": {"seen": "x", "absent": "x", "tags": True}},
    ])

    assert stored(project, "a").properties == {
        "tags": ["a", 1, {"k": 1, "j": 2}, "a", "b"], "fresh": [[1]], "more": ["m"], "seen": ["y"]}


def test_operations_apply_in_batch_order_and_after_set_before_unset_within_an_item():
    project = ProjectFactory()

    profiles_upsert(project=project, items=[
        {"distinct_id": "a", "set": {"n": 10, "tags": ["x"]}, "add": {"n": 1}, "append": {"tags": "y"}},
        {"distinct_id": "a", "set_once": {"n": 0}, "add": {"n": 1, "gone": 1}, "unset": ["gone"]},
        {"distinct_id": "a", "set": {"n": 100}},
        {"distinct_id": "a", "add": {"n": 1}, "remove": {"tags": "x"}},
    ])

    assert stored(project, "a").properties == {"n": 101, "tags": ["y"]}


def test_an_operation_the_stored_value_refuses_refuses_its_whole_item_and_the_others_apply():
    project = ProjectFactory()
    ProfileFactory(project=project, distinct_id="a", email="a@example.com",
                   properties={"plan": "pro", "n": 1, "flag": True, "big": 2**64 - 1, "huge": 1.5e308})

    result = profiles_upsert(project=project, items=[
        {"distinct_id": "a", "email": "changed@example.com", "set": {"x": 1}, "add": {"plan": 1}},
        {"distinct_id": "a", "add": {"flag": 1}},
        {"distinct_id": "a", "append": {"n": "x"}},
        {"distinct_id": "a", "union": {"plan": ["x"]}},
        {"distinct_id": "a", "remove": {"plan": "pro"}},
        {"distinct_id": "a", "add": {"big": 1, "n": 1}},
        {"distinct_id": "a", "add": {"huge": 1.5e308}},
        {"distinct_id": "a", "add": {"n": 1}},
        {"distinct_id": "new", "set": {"plan": "x"}, "add": {"plan": 1}},
    ])

    assert [(e.index, e.field, e.message) for e in result.errors] == [
        (0, "add.plan", "the profile's value is a string, not a number to add to"),
        (1, "add.flag", "the profile's value is a boolean, not a number to add to"),
        (2, "append.n", "the profile's value is a number, not an array"),
        (3, "union.plan", "the profile's value is a string, not an array"),
        (4, "remove.plan", "the profile's value is a string, not an array"),
        (5, "add.big", "the sum is out of range (64-bit integers)"),
        (6, "add.huge", "the sum is not a finite number"),
        (8, "add.plan", "the profile's value is a string, not a number to add to"),
    ]
    assert result.accepted == 1 and result.rejected == 8
    profile = stored(project, "a")
    assert profile.email == "a@example.com"
    # (PostgreSQL's jsonb writes 1.5e308 out in digits: read back by Django as an int; only compared above.)
    assert profile.properties | {"huge": None} == {"plan": "pro", "n": 2, "flag": True, "big": 2**64 - 1, "huge": None}
    assert not Profile.objects.filter(project=project, distinct_id="new").exists()  # its only item was refused


def test_operation_values_are_checked_before_anything_is_read():
    project = ProjectFactory()

    result = profiles_upsert(project=project, items=[
        {"distinct_id": "a", "add": {"n": "1"}},
        {"distinct_id": "a", "add": {"n": True}},
        {"distinct_id": "a", "add": [1]},
        {"distinct_id": "a", "union": {"tags": "x"}},
        {"distinct_id": "a", "append": {"": 1}},
        {"distinct_id": "a", "remove": {"note": "a\x00b"}},
    ])

    assert [(e.index, e.field, e.message) for e in result.errors] == [
        (0, "add.n", "must be a number, not a string"),
        (1, "add.n", "must be a number, not a boolean"),
        (2, "add", "must be an object, not an array"),
        (3, "union.tags", "must be an array of values, not a string"),
        (4, "append", "property names must not be empty"),
        (5, "remove", "values must not contain NUL characters"),
    ]
    assert not Profile.objects.filter(project=project).exists()


# --- profiles: identity fields ---------------------------------------------------------------


def test_a_new_profile_gets_the_fields_given_and_blanks_for_the_rest():
    project = ProjectFactory()

    profiles_upsert(project=project, items=[{"distinct_id": "new", "email": "new@example.com", "set": {"plan": "pro"}}])

    profile = stored(project, "new")
    assert (profile.email, profile.first_name, profile.last_name, profile.phone_number) == (
        "new@example.com", "", "", "",
    )
    assert profile.properties == {"plan": "pro"}


def test_identity_fields_given_replace_the_stored_ones_and_absent_ones_stay():
    project = ProjectFactory()
    before = ProfileFactory(project=project, distinct_id="a", email="old@example.com", first_name="Ada",
                            last_name="Lovelace", phone_number="+1-555-0100", properties={"plan": "free"})

    profiles_upsert(project=project, items=[{"distinct_id": "a", "email": "new@example.com", "last_name": ""}])

    after = stored(project, "a")
    assert after.pk == before.pk
    assert (after.email, after.first_name, after.last_name, after.phone_number) == (
        "new@example.com", "Ada", "", "+1-555-0100",
    )
    assert after.properties == {"plan": "free"}
    assert after.created_at == before.created_at
    assert after.updated_at > before.updated_at


def test_upsert_keeps_projects_apart():
    first, second = ProjectFactory(), ProjectFactory()
    ProfileFactory(project=first, distinct_id="shared", email="first@example.com", properties={"a": 1})

    profiles_upsert(project=second, items=[{"distinct_id": "shared", "email": "second@example.com", "set": {"b": 2}}])

    assert (stored(first, "shared").email, stored(first, "shared").properties) == ("first@example.com", {"a": 1})
    assert (stored(second, "shared").email, stored(second, "shared").properties) == ("second@example.com", {"b": 2})


def test_items_for_one_distinct_id_are_merged_in_batch_order():
    project = ProjectFactory()
    ProfileFactory(project=project, distinct_id="a", email="stored@example.com", properties={"plan": "free"})

    result = profiles_upsert(project=project, items=[
        {"distinct_id": "a", "email": "first@example.com", "set": {"plan": "pro", "x": 1}},
        {"distinct_id": "b", "first_name": "Bea"},
        {"distinct_id": "a", "set_once": {"x": 2, "y": 2}, "unset": ["plan"]},
        {"distinct_id": "a", "email": "last@example.com", "set": {"plan": "team"}},
    ])

    assert result.accepted == 4 and result.errors == []
    profile = stored(project, "a")
    assert profile.email == "last@example.com"
    assert profile.properties == {"x": 1, "y": 2, "plan": "team"}
    assert Profile.objects.filter(project=project).count() == 2


def test_a_new_distinct_id_repeated_in_a_batch_makes_one_profile():
    project = ProjectFactory()

    profiles_upsert(project=project, items=[
        {"distinct_id": "n", "email": "one@example.com", "set": {"a": 1}},
        {"distinct_id": "n", "email": "two@example.com", "set_once": {"a": 9, "b": 2}},
    ])

    assert list(Profile.objects.filter(project=project).values_list("email", "properties")) == [
        ("two@example.com", {"a": 1, "b": 2}),
    ]


def test_an_empty_batch_writes_nothing():
    project = ProjectFactory()

    assert profiles_upsert(project=project, items=[]) == BatchResult()
    assert not Profile.objects.filter(project=project).exists()


# --- profiles: bad input ---------------------------------------------------------------------


def test_bad_items_are_reported_by_index_and_field_while_valid_ones_are_written():
    project = ProjectFactory()
    ProfileFactory(project=project, distinct_id="kept", email="kept@example.com")

    result = profiles_upsert(project=project, items=[
        {"distinct_id": "ok-1", "set": {"plan": "pro"}},
        {"distinct_id": "kept", "email": "changed@example.com", "colour": "red"},
        {"email": "nobody@example.com"},
        {"distinct_id": 42},
        {"distinct_id": "ok-2"},
        "not an object",
        {"distinct_id": "bad-set", "set": ["plan"]},
        {"distinct_id": "bad-unset", "unset": "plan"},
        {"distinct_id": "bad-email", "email": None},
        {"distinct_id": ""},
        {"distinct_id": "x" * 256},
        {"distinct_id": "long-email", "email": "e" * 255},
        {"distinct_id": "bad-name", "set": {"": 1}},
        {"distinct_id": "bad-value", "set": {"ok": 1, "when": {1, 2}}},
        {"distinct_id": "nul", "set": {"note": "a\x00b"}},
    ])

    assert result.accepted == 2
    assert [(e.index, e.field) for e in result.errors] == [
        (1, "colour"), (2, "distinct_id"), (3, "distinct_id"), (5, None), (6, "set"), (7, "unset"),
        (8, "email"), (9, "distinct_id"), (10, "distinct_id"), (11, "email"), (12, "set"),
        (13, "set.when"), (14, "set"),
    ]
    messages = {e.index: e.message for e in result.errors}
    assert messages[1].startswith("unknown field")
    assert messages[2] == "is required"
    assert messages[3] == "must be a string, not a number"
    assert messages[5] == "must be an object, not a string"
    assert messages[8] == "must be a string, not null"
    assert messages[10] == "must be at most 255 characters"
    assert messages[11] == "must be at most 254 characters"
    assert result.rejected == 13
    assert sorted(Profile.objects.filter(project=project).values_list("distinct_id", flat=True)) == [
        "kept", "ok-1", "ok-2",
    ]
    assert stored(project, "kept").email == "kept@example.com"


def test_a_batch_over_the_limit_is_refused_whole():
    project = ProjectFactory()
    items = [{"distinct_id": f"u{i}"} for i in range(MAX_BATCH + 1)]

    with pytest.raises(ValidationError, match="at most 10,000 items; this one has 10,001"):
        profiles_upsert(project=project, items=items)
    with pytest.raises(ValidationError, match="at most 10,000"):
        events_track(project=project, items=[{"distinct_id": "a", "event": "e", "time": 0}] * (MAX_BATCH + 1))

    assert not Profile.objects.filter(project=project).exists()


def test_a_batch_of_exactly_the_limit_is_written():
    project = ProjectFactory()

    result = profiles_upsert(project=project, items=[{"distinct_id": f"u{i:05d}"} for i in range(MAX_BATCH)])

    assert result.accepted == MAX_BATCH
    assert Profile.objects.filter(project=project).count() == MAX_BATCH


# --- profiles: concurrent batches (PostgreSQL row locks) -------------------------------------


def _upsert_in_open_transaction(project, items, written: threading.Event, release: threading.Event):
    try:
        with transaction.atomic():
            profiles_upsert(project=project, items=items)
            written.set()
            release.wait(10)
    finally:
        db.close()


def _upsert(project, items):
    try:
        profiles_upsert(project=project, items=items)
    finally:
        db.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("exists", [True, False], ids=["existing profile", "new profile"])
def test_a_concurrent_batch_waits_and_merges_onto_the_first_ones_changes(require_postgres, exists):
    project = ProjectFactory()
    if exists:
        ProfileFactory(project=project, distinct_id="a", properties={"plan": "free"})
    written, release = threading.Event(), threading.Event()
    first = threading.Thread(target=_upsert_in_open_transaction, args=(
        project, [{"distinct_id": "a", "set": {"first": 1}, "set_once": {"owner": "first"}}], written, release))
    second = threading.Thread(target=_upsert, args=(
        project, [{"distinct_id": "a", "set": {"second": 2}, "set_once": {"owner": "second"}}]))

    first.start()
    assert written.wait(10)
    second.start()
    wait_for_a_blocked_query()
    release.set()
    first.join(10)
    second.join(10)

    expected = {"first": 1, "second": 2, "owner": "first"}
    assert stored(project, "a").properties == ({"plan": "free"} | expected if exists else expected)



@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("exists", [True, False], ids=["existing profile", "new profile"])
def test_concurrent_increments_and_unions_all_count(require_postgres, exists):
    project = ProjectFactory()
    if exists:
        ProfileFactory(project=project, distinct_id="a", properties={"logins": 5, "tags": ["old"]})
    written, release = threading.Event(), threading.Event()
    first = threading.Thread(target=_upsert_in_open_transaction, args=(
        project, [{"distinct_id": "a", "add": {"logins": 1}, "union": {"tags": ["first"]}}], written, release))
    second = threading.Thread(target=_upsert, args=(
        project, [{"distinct_id": "a", "add": {"logins": 1}, "union": {"tags": ["second"]}}]))

    first.start()
    assert written.wait(10)
    second.start()
    wait_for_a_blocked_query()  # the second read waits for the first one's lock
    release.set()
    first.join(10)
    second.join(10)

    expected = {"logins": 7, "tags": ["old", "first", "second"]} if exists else {
        "logins": 2, "tags": ["first", "second"]}
    assert stored(project, "a").properties == expected


# --- profile_delete -------------------------------------------------------------------------


def test_deleting_a_profile_takes_it_out_of_every_cohort():
    member = CohortMemberFactory()
    other_cohort = CohortFactory(project=member.cohort.project)
    CohortMember.objects.create(cohort=other_cohort, profile=member.profile)
    bystander = CohortMemberFactory(cohort=member.cohort)

    assert profile_delete(project=member.cohort.project, distinct_id=member.profile.distinct_id) is True

    assert not Profile.objects.filter(pk=member.profile.pk).exists()
    assert list(CohortMember.objects.values_list("profile_id", flat=True)) == [bystander.profile_id]


def test_deleting_an_unknown_profile_or_one_of_another_project_does_nothing():
    profile = ProfileFactory(distinct_id="a")

    assert profile_delete(project=ProjectFactory(), distinct_id="a") is False
    assert profile_delete(project=profile.project, distinct_id="nobody") is False
    assert Profile.objects.filter(pk=profile.pk).exists()


# --- events ----------------------------------------------------------------------------------


def test_events_are_written_with_iso_and_unix_times():
    project = ProjectFactory()
    now = timezone.now().replace(microsecond=0)
    earlier = now - timedelta(days=3)

    result = events_track(project=project, items=[
        {"distinct_id": "a", "event": "signup", "time": earlier.isoformat(), "properties": {"source": "ads"}},
        {"distinct_id": "b", "event": "purchase", "time": now.timestamp(), "properties": {"amount": 12.5}},
        {"distinct_id": "a", "event": "login", "time": int(now.timestamp()) - 60},
    ])

    assert result == BatchResult(accepted=3, errors=[])
    assert [(e.distinct_id, e.name, e.time, e.properties) for e in events_of(project)] == [
        ("a", "signup", earlier, {"source": "ads"}),
        ("a", "login", now - timedelta(seconds=60), {}),
        ("b", "purchase", now, {"amount": 12.5}),
    ]


def test_naive_times_are_utc_and_offsets_are_converted():
    project = ProjectFactory()
    day = (timezone.now() - timedelta(days=1)).date().isoformat()

    events_track(project=project, items=[
        {"distinct_id": "a", "event": "naive", "time": f"{day}T10:00:00"},
        {"distinct_id": "a", "event": "offset", "time": f"{day}T10:00:00+02:00"},
        {"distinct_id": "a", "event": "zulu", "time": f"{day}T10:00:00.250Z"},
    ])

    ten = datetime.fromisoformat(f"{day}T10:00:00").replace(tzinfo=UTC)
    times = {e.name: e.time for e in Event.objects.filter(project=project)}
    assert times == {
        "naive": ten,
        "offset": ten - timedelta(hours=2),
        "zulu": ten + timedelta(milliseconds=250),
    }
    assert all(t.utcoffset() == timedelta(0) for t in times.values())


def test_times_too_far_ahead_or_past_the_retention_window_are_refused(settings):
    settings.COHORTSYNC_EVENT_RETENTION_DAYS = 30
    project = ProjectFactory()
    now = timezone.now()

    result = events_track(project=project, items=[
        {"distinct_id": "a", "event": "ok", "time": (now + timedelta(minutes=50)).isoformat()},
        {"distinct_id": "a", "event": "ahead", "time": (now + timedelta(minutes=70)).isoformat()},
        {"distinct_id": "a", "event": "millis", "time": now.timestamp() * 1000},
        {"distinct_id": "a", "event": "old", "time": (now - timedelta(days=31)).timestamp()},
        {"distinct_id": "a", "event": "ok", "time": (now - timedelta(days=29)).timestamp()},
    ])

    assert result.accepted == 2
    assert result.errors == [
        ItemError(1, "time", "is more than 1 hour in the future"),
        ItemError(2, "time", "is more than 1 hour in the future (unix time in milliseconds? send seconds)"),
        ItemError(3, "time", "is older than the 30-day retention window"),
    ]
    assert [e.name for e in events_of(project)] == ["ok", "ok"]


def test_bad_events_are_reported_by_index_and_field_while_valid_ones_are_written():
    project = ProjectFactory()
    now = timezone.now().timestamp()

    result = events_track(project=project, items=[
        {"distinct_id": "a", "event": "ok", "time": now},
        {"event": "no-id", "time": now},
        {"distinct_id": "a", "time": now},
        {"distinct_id": "a", "event": "no-time"},
        {"distinct_id": "a", "event": "e", "time": "yesterday"},
        {"distinct_id": "a", "event": "e", "time": True},
        {"distinct_id": "a", "event": "e", "time": now, "properties": [1]},
        {"distinct_id": "a", "event": "e", "time": now, "props": {}},
        {"distinct_id": "a", "event": "x" * 256, "time": now},
        {"distinct_id": "a", "event": "ok", "time": now, "properties": {"n": 1}},
    ])

    assert result.accepted == 2
    assert [(e.index, e.field) for e in result.errors] == [
        (1, "distinct_id"), (2, "event"), (3, "time"), (4, "time"), (5, "time"), (6, "properties"), (7, "props"),
        (8, "event"),
    ]
    assert result.errors[3].message.startswith("'yesterday' is not an ISO 8601 date-time")
    assert result.errors[4].message == "must be an ISO 8601 string or unix seconds, not a boolean"
    assert Event.objects.filter(project=project).count() == 2


# --- pruning --------------------------------------------------------------------------------


def _events_aged(project, *ages_in_days: float) -> None:
    now = timezone.now()
    Event.objects.bulk_create([
        Event(project=project, distinct_id="a", name=f"age-{age}", time=now - timedelta(days=age))
        for age in ages_in_days
    ])


def test_prune_deletes_only_events_older_than_the_retention_window(settings):
    settings.COHORTSYNC_EVENT_RETENTION_DAYS = 90
    project = ProjectFactory()
    _events_aged(project, 1, 89.9, 90.1, 400)

    assert events_prune() == 2

    assert sorted(Event.objects.values_list("name", flat=True)) == ["age-1", "age-89.9"]


def test_prune_takes_another_window_and_deletes_in_chunks(monkeypatch):
    monkeypatch.setattr(ingestion, "PRUNE_CHUNK", 2)
    project = ProjectFactory()
    _events_aged(project, 1, 6, 8, 9, 10, 11, 12)

    assert events_prune(older_than_days=7) == 5

    assert sorted(Event.objects.values_list("name", flat=True)) == ["age-1", "age-6"]


def test_the_prune_task_calls_the_service_and_runs_daily(settings):
    settings.COHORTSYNC_EVENT_RETENTION_DAYS = 10
    _events_aged(ProjectFactory(), 5, 11)

    assert prune_events() == 1

    entry = PeriodicTask.objects.get(name="Prune old events")
    assert entry.task == "cohorts.prune_events" and entry.enabled
    assert (entry.crontab.minute, entry.crontab.hour, entry.crontab.day_of_week) == ("30", "3", "*")
    assert str(entry.crontab.timezone) == "UTC"


# --- static membership from a list -----------------------------------------------------------


@pytest.fixture
def cohort():
    cohort = CohortFactory()
    for distinct_id in "abcd":
        ProfileFactory(project=cohort.project, distinct_id=distinct_id)
    ProfileFactory(distinct_id="elsewhere")
    return cohort


def members(cohort) -> list[str]:
    return sorted(CohortMember.objects.filter(cohort=cohort).values_list("profile__distinct_id", flat=True))


def test_members_import_add_counts_only_new_members_and_lists_unknown_ids(cohort):
    cohort_members_import(cohort=cohort, distinct_ids=["a"], mode="add")

    change = cohort_members_import(cohort=cohort, distinct_ids=["a", "b", "b", "ghost", "elsewhere"], mode="add")

    assert (change.added, change.removed, change.size) == (1, 0, 2)
    assert (change.unknown_count, change.unknown_sample) == (2, ["ghost", "elsewhere"])
    assert members(cohort) == ["a", "b"]


def test_members_import_replace_counts_both_ways(cohort):
    cohort_members_import(cohort=cohort, distinct_ids=["a", "b", "c"], mode="add")

    change = cohort_members_import(cohort=cohort, distinct_ids=["b", "c", "d", "ghost"], mode="replace")

    assert (change.added, change.removed, change.size, change.unknown_count) == (1, 1, 3, 1)
    assert members(cohort) == ["b", "c", "d"]


def test_members_import_remove(cohort):
    cohort_members_import(cohort=cohort, distinct_ids=["a", "b", "c"], mode="add")

    change = cohort_members_import(cohort=cohort, distinct_ids=["a", "d"], mode="remove")

    assert (change.added, change.removed, change.size, change.unknown_count) == (0, 1, 2, 0)
    assert members(cohort) == ["b", "c"]


def test_members_import_refuses_rule_cohorts():
    cohort = CohortFactory(kind=Cohort.Kind.RULES)

    with pytest.raises(ValidationError, match="only static cohorts"):
        cohort_members_import(cohort=cohort, distinct_ids=["a"], mode="add")


# --- the events admin ------------------------------------------------------------------------


def test_the_events_admin_lists_events_read_only(admin_client):
    project = ProjectFactory()
    events_track(project=project, items=[{"distinct_id": "a", "event": "signup", "time": timezone.now().timestamp()}])

    page = admin_client.get(reverse("admin:cohorts_event_changelist"))

    assert page.status_code == 200
    assert b"signup" in page.content
    assert admin_client.get(reverse("admin:cohorts_event_add")).status_code == 403


# --- The distinct id rule (one validator for every way in) ------------------------------------

BAD_DISTINCT_IDS = [
    pytest.param(" ws-user", "must not begin or end with whitespace (receivers would strip it)", id="leading-space"),
    pytest.param("ws-user\n", "must not begin or end with whitespace (receivers would strip it)", id="trailing-nl"),
    pytest.param("\ufeffbom", "must not begin or end with whitespace (receivers would strip it)", id="bom"),
    pytest.param("a\u0007b", "must not contain control characters (U+0007 at character 2)", id="bell"),
    pytest.param("a\x00", "must not contain control characters (U+0000 at character 2)", id="nul"),
    pytest.param("a\x85b", "must not contain control characters (U+0085 at character 2)", id="c1-control"),
    pytest.param("x\ud800", "must not contain a lone surrogate (U+D800 at character 2): it is not valid Unicode text",
                 id="lone-surrogate"),
    pytest.param("x" * 256, "must be at most 255 characters", id="256-chars"),
    pytest.param("   ", "must not be blank", id="blank"),
    pytest.param(7, "must be a string, not a number", id="number"),
]


@pytest.mark.parametrize("distinct_id, message", BAD_DISTINCT_IDS)
def test_profiles_and_events_refuse_distinct_ids_receivers_would_alter(distinct_id, message):
    project = ProjectFactory()
    now = timezone.now().isoformat()

    profiles = profiles_upsert(project=project, items=[{"distinct_id": "ok"}, {"distinct_id": distinct_id}])
    events = events_track(project=project, items=[{"distinct_id": distinct_id, "event": "Play", "time": now},
                                                  {"distinct_id": "ok", "event": "Play", "time": now}])

    assert profiles == BatchResult(accepted=1, errors=[ItemError(1, "distinct_id", message)])
    assert events == BatchResult(accepted=1, errors=[ItemError(0, "distinct_id", message)])
    assert list(Profile.objects.filter(project=project).values_list("distinct_id", flat=True)) == ["ok"]
    assert [event.distinct_id for event in events_of(project)] == ["ok"]


@pytest.mark.parametrize("distinct_id, message", BAD_DISTINCT_IDS[:-1])
def test_static_member_lists_refuse_the_same_distinct_ids(cohort, distinct_id, message):
    change = cohort_members_import(cohort=cohort, distinct_ids=["a", distinct_id, "b"], mode="add")

    assert change.rejected == [ItemError(1, None, message)]
    assert (change.added, change.size) == (2, 2)


def test_distinct_ids_with_inner_spaces_and_any_script_are_kept():
    project = ProjectFactory()
    good = ["user 1", "ünïcødé-😀", "a/b%2F", "x" * 255, "tab-free\u00a0inside"]

    result = profiles_upsert(project=project, items=[{"distinct_id": d} for d in good])

    assert result == BatchResult(accepted=5)
    assert all(ingestion.distinct_id_problem(d) is None for d in good)


def test_lone_surrogates_elsewhere_in_an_item_refuse_only_that_item():
    project = ProjectFactory()
    now = timezone.now().isoformat()

    profiles = profiles_upsert(project=project, items=[
        {"distinct_id": "a", "email": "x\udc00@example.com"},
        {"distinct_id": "b", "set": {"name\ud800": 1}},
        {"distinct_id": "c", "set": {"name": "\ud800"}},
        {"distinct_id": "d", "set": {"name": "ok"}},
    ])
    events = events_track(project=project, items=[
        {"distinct_id": "a", "event": "Pl\ud800y", "time": now},
        {"distinct_id": "a", "event": "Play", "time": now},
    ])

    assert [(e.index, e.field) for e in profiles.errors] == [(0, "email"), (1, "set"), (2, "set.name")]
    assert all("lone surrogate" in e.message for e in profiles.errors)
    assert profiles.accepted == 1
    assert events.errors == [ItemError(0, "event", "must not contain a lone surrogate (U+D800 at character 3): "
                                                   "it is not valid Unicode text")]
    assert events.accepted == 1


@pytest.mark.parametrize(("name", "message"), [
    pytest.param("", "property names must not be empty", id="empty"),
    pytest.param("n" * 256, f"property name {'n' * 20!r}… is longer than 255 characters", id="too-long"),
    pytest.param("a\x00b", "property names must not contain NUL characters", id="nul"),
    pytest.param("a\ud800", "property name 'a\\ud800' holds a lone surrogate: not valid Unicode text", id="surrogate"),
    pytest.param(7, "property names must be strings, not a number", id="not-a-string"),
])
def test_an_event_property_name_is_refused_with_its_reason_after_good_ones(name, message):
    now = timezone.now().isoformat()
    result = events_track(project=ProjectFactory(), items=[
        {"distinct_id": "a", "event": "Play", "time": now, "properties": {"ok": 1, name: 2, "x" * 300: 3}},
        {"distinct_id": "a", "event": "Play", "time": now, "properties": {"ok": 1, "n" * 255: 2}},
    ])

    assert result == BatchResult(accepted=1, errors=[ItemError(0, "properties", message)])


def test_a_profile_cannot_grow_past_its_size_limit_and_may_still_shrink(project, settings):
    settings.COHORTSYNC_PROFILE_MAX_BYTES = 2_000
    chunk = "x" * 300
    result = ingestion.profiles_upsert(project=project, items=[
        {"distinct_id": "ada", "set": {"plan": "pro"}},
        *({"distinct_id": "ada", "append": {"log": chunk}} for _ in range(8)),  # ≈ 2.5 KB: the last two refused
        {"distinct_id": "bob", "set": {"plan": "team"}},
    ])
    assert [(error.index, error.field) for error in result.errors] == [(7, None), (8, None)]
    assert "past 2,000 bytes of JSON (COHORTSYNC_PROFILE_MAX_BYTES)" in result.errors[0].message
    assert result.accepted == 8
    ada = Profile.objects.get(distinct_id="ada")
    assert ada.properties["plan"] == "pro" and len(ada.properties["log"]) == 6
    assert Profile.objects.get(distinct_id="bob").properties == {"plan": "team"}
    # A later batch: more growth refused, whatever the operation; what shrinks it is applied.
    settings.COHORTSYNC_PROFILE_MAX_BYTES = 1_000  # now stored past the limit
    result = ingestion.profiles_upsert(project=project, items=[
        {"distinct_id": "ada", "set": {"big": chunk * 4}},
        {"distinct_id": "ada", "set": {"plan": "team"}, "unset": ["log"]},
    ])
    assert [error.index for error in result.errors] == [0]
    ada.refresh_from_db()
    assert ada.properties == {"plan": "team"}
