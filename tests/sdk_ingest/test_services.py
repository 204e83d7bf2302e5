"""The event id ledger under concurrent batches (PostgreSQL: the ids are recorded in a pipelined
statement while the batch's items are checked)."""

import threading

import pytest
from django.db import connection as db, transaction
from django.utils import timezone

from cohorts.ingestion import BatchResult, ItemError
from cohorts.models import Event
from sdk_ingest.models import ReceivedInsertId
from sdk_ingest.services import events_track_once
from tests.factories import ProjectFactory
from tests.support.faults import wait_for_a_blocked_query


def _events(*names: str) -> list[dict]:
    now = timezone.now().isoformat()
    return [{"distinct_id": "ada", "event": name, "time": now} for name in names]


def _track_in_open_transaction(project, ids, held: threading.Event, release: threading.Event, commit: bool):
    try:
        with transaction.atomic():
            events_track_once(project=project, items=_events(*ids), insert_ids=ids)
            held.set()
            release.wait(10)
            if not commit:
                transaction.set_rollback(True)
    finally:
        db.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("commit", [True, False], ids=["first commits", "first rolls back"])
def test_a_concurrent_batch_with_the_same_ids_waits_and_stores_each_event_once(require_postgres, commit):
    project = ProjectFactory()
    held, release, answers = threading.Event(), threading.Event(), []
    first = threading.Thread(target=_track_in_open_transaction, args=(project, ["a", "b"], held, release, commit))
    first.start()
    assert held.wait(10)

    def second_batch():
        try:
            answers.append(events_track_once(project=project, items=_events("b", "c"), insert_ids=["b", "c"]))
        finally:
            db.close()

    second = threading.Thread(target=second_batch)
    second.start()
    wait_for_a_blocked_query()
    release.set()
    first.join(10)
    second.join(10)

    assert answers == [BatchResult(accepted=2)]
    stored = sorted(Event.objects.filter(project=project).values_list("name", flat=True))
    assert stored == (["a", "b", "c"] if commit else ["b", "c"])
    assert sorted(ReceivedInsertId.objects.values_list("insert_id", flat=True)) == stored


@pytest.mark.django_db
def test_ids_of_refused_events_are_forgotten_and_repeats_are_acknowledged():
    project = ProjectFactory()
    items = [*_events("ok"), {"distinct_id": "ada", "event": "late"}, *_events("again", "plain")]

    result = events_track_once(project=project, items=items, insert_ids=["i-1", "i-2", "i-1", None])

    assert result == BatchResult(accepted=3, errors=[ItemError(1, "time", "is required")])
    assert sorted(Event.objects.filter(project=project).values_list("name", flat=True)) == ["ok", "plain"]
    assert list(ReceivedInsertId.objects.values_list("insert_id", flat=True)) == ["i-1"]


@pytest.mark.django_db
def test_a_deleted_project_takes_its_events_and_event_ids_with_it():
    # Neither table has a database FK to the project (a check per row at COMMIT): Django cascades.
    project, other = ProjectFactory(), ProjectFactory()
    events_track_once(project=project, items=_events("gone"), insert_ids=["i-1"])
    events_track_once(project=other, items=_events("kept"), insert_ids=["i-1"])

    project.delete()

    assert list(Event.objects.values_list("name", flat=True)) == ["kept"]
    assert list(ReceivedInsertId.objects.values_list("project_id", flat=True)) == [other.pk]
