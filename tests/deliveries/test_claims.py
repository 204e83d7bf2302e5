"""One run per sync at a time: claims by lease, the dispatcher's choice of due syncs, and
workers racing (deliveries/services.py, docs/design.md)."""

import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from deliveries import dispatch, services
from deliveries.engine import abandon_unfinished_runs, sync_run
from deliveries.models import SnapshotMember, StagedMember, Sync, SyncRun
from tests.conftest import run_now
from tests.factories import SyncFactory
from tests.support.receiver import Reply


def snapshot_ids(sync) -> set[str]:
    return set(SnapshotMember.objects.filter(sync=sync).values_list("distinct_id", flat=True))


def claim_of(sync) -> tuple:
    return Sync.objects.filter(pk=sync.pk).values_list("claim_token", "claimed_until", "next_run_at").get()


# --- sync_claim / sync_renew_claim / sync_release ----------------------------------------


@pytest.mark.django_db
def test_a_claim_holds_the_sync_until_its_lease_expires(settings):
    settings.COHORTSYNC_CLAIM_LEASE_SECONDS = 600
    sync = SyncFactory()

    token = services.sync_claim(sync_id=sync.pk)

    assert isinstance(token, uuid.UUID)
    claimed_token, claimed_until, _ = claim_of(sync)
    assert claimed_token == token
    assert timedelta(seconds=590) < claimed_until - timezone.now() <= timedelta(seconds=600)
    # A second worker loses while the lease is live, whether or not it needs the sync due.
    assert services.sync_claim(sync_id=sync.pk) is None
    assert services.sync_claim(sync_id=sync.pk, require_due=False) is None
    assert claim_of(sync)[0] == token


@pytest.mark.django_db
def test_an_expired_lease_of_a_killed_worker_can_be_claimed():
    sync = SyncFactory()
    dead_token = services.sync_claim(sync_id=sync.pk)
    Sync.objects.filter(pk=sync.pk).update(claimed_until=timezone.now() - timedelta(seconds=1))

    token = services.sync_claim(sync_id=sync.pk)

    assert token is not None and token != dead_token
    assert claim_of(sync)[0] == token
    assert claim_of(sync)[1] > timezone.now()


@pytest.mark.django_db
def test_renew_and_release_with_a_stale_token_do_nothing():
    sync = SyncFactory(interval_minutes=30)
    stale = services.sync_claim(sync_id=sync.pk)
    Sync.objects.filter(pk=sync.pk).update(claimed_until=timezone.now() - timedelta(seconds=1))
    token = services.sync_claim(sync_id=sync.pk)
    before = claim_of(sync)

    assert services.sync_renew_claim(sync_id=sync.pk, token=stale) is False
    services.sync_release(sync_id=sync.pk, token=stale)

    assert claim_of(sync) == before  # the new owner's claim and schedule are intact
    assert services.sync_renew_claim(sync_id=sync.pk, token=token) is True
    services.sync_release(sync_id=sync.pk, token=token)
    claimed_token, claimed_until, next_run_at = claim_of(sync)
    assert (claimed_token, claimed_until) == (None, None)
    assert timedelta(minutes=29) < next_run_at - timezone.now() <= timedelta(minutes=30)


@pytest.mark.django_db
def test_renew_extends_the_lease(settings):
    settings.COHORTSYNC_CLAIM_LEASE_SECONDS = 600
    sync = SyncFactory()
    token = services.sync_claim(sync_id=sync.pk)
    Sync.objects.filter(pk=sync.pk).update(claimed_until=timezone.now() + timedelta(seconds=5))

    assert services.sync_renew_claim(sync_id=sync.pk, token=token) is True

    assert claim_of(sync)[1] - timezone.now() > timedelta(seconds=590)


@pytest.mark.django_db
def test_a_sync_that_is_not_due_is_claimed_only_for_manual_runs():
    sync = SyncFactory(next_run_at=timezone.now() + timedelta(minutes=5))

    assert services.sync_claim(sync_id=sync.pk) is None
    assert services.sync_claim(sync_id=sync.pk, require_due=False) is not None


@pytest.mark.django_db
@pytest.mark.parametrize("state", [Sync.State.PAUSED, Sync.State.FINISHED])
def test_paused_and_finished_syncs_are_never_claimed(state):
    sync = SyncFactory(state=state, next_run_at=timezone.now() - timedelta(minutes=1))

    assert services.sync_claim(sync_id=sync.pk) is None
    assert services.sync_claim(sync_id=sync.pk, require_due=False) is None
    assert claim_of(sync)[0] is None


@pytest.mark.django_db
def test_releasing_a_paused_sync_schedules_nothing():
    sync = SyncFactory()
    token = services.sync_claim(sync_id=sync.pk)
    Sync.objects.filter(pk=sync.pk).update(state=Sync.State.PAUSED)

    services.sync_release(sync_id=sync.pk, token=token)

    assert claim_of(sync) == (None, None, None)


# --- The dispatcher ---------------------------------------------------------------------


@pytest.mark.django_db
def test_the_dispatcher_enqueues_due_active_unclaimed_syncs_only(django_capture_on_commit_callbacks):
    now = timezone.now()
    due_early = SyncFactory(next_run_at=now - timedelta(minutes=10))
    due_with_expired_claim = SyncFactory(
        next_run_at=now - timedelta(minutes=5), claimed_until=now - timedelta(seconds=1), claim_token=uuid.uuid4()
    )
    due_now = SyncFactory(next_run_at=now)
    SyncFactory(next_run_at=now - timedelta(minutes=1), state=Sync.State.PAUSED)
    SyncFactory(next_run_at=now - timedelta(minutes=1), state=Sync.State.FINISHED)
    SyncFactory(next_run_at=now + timedelta(minutes=1))
    SyncFactory(next_run_at=None)
    SyncFactory(next_run_at=now - timedelta(minutes=1), claimed_until=now + timedelta(minutes=5),
                claim_token=uuid.uuid4())

    with django_capture_on_commit_callbacks(execute=False) as enqueued:
        due = dispatch.syncs_dispatch_due(now=now)

    assert due == [due_early.pk, due_with_expired_claim.pk, due_now.pk]  # the most overdue first
    assert len(enqueued) == 1  # the tasks go out after the commit, through one producer


@pytest.mark.django_db
def test_a_dispatched_sync_is_left_alone_until_its_task_expires(django_capture_on_commit_callbacks, settings):
    """A worker outage: ticks keep coming, tasks wait in the broker; no sync gets a second one."""
    now = timezone.now()
    sync = SyncFactory(next_run_at=now - timedelta(minutes=1))
    lease = timedelta(seconds=settings.COHORTSYNC_DISPATCH_LEASE_SECONDS)

    with django_capture_on_commit_callbacks(execute=False):
        first = dispatch.syncs_dispatch_due(now=now)
        outage = [dispatch.syncs_dispatch_due(now=now + timedelta(minutes=m)) for m in (1, 2, 3)]
        after_expiry = dispatch.syncs_dispatch_due(now=now + lease + timedelta(seconds=1))

    assert first == [sync.pk]
    assert outage == [[], [], []]
    assert after_expiry == [sync.pk]  # the first task has expired: one live task again


@pytest.mark.django_db
def test_the_dispatcher_enqueues_at_most_its_batch_most_overdue_first(django_capture_on_commit_callbacks, settings):
    settings.COHORTSYNC_DISPATCH_BATCH = 2
    now = timezone.now()
    syncs = [SyncFactory(next_run_at=now - timedelta(minutes=minutes)) for minutes in (1, 30, 5)]

    with django_capture_on_commit_callbacks(execute=False):
        first = dispatch.syncs_dispatch_due(now=now)
        second = dispatch.syncs_dispatch_due(now=now)

    assert first == [syncs[1].pk, syncs[2].pk]
    assert second == [syncs[0].pk]


@pytest.mark.django_db
def test_a_finished_run_clears_the_dispatch_mark(django_capture_on_commit_callbacks):
    sync = SyncFactory(next_run_at=timezone.now() - timedelta(minutes=1))
    with django_capture_on_commit_callbacks(execute=False):
        dispatch.syncs_dispatch_due()
    token = services.sync_claim(sync_id=sync.pk)

    services.sync_release(sync_id=sync.pk, token=token)

    sync.refresh_from_db()
    assert sync.dispatched_until is None and sync.next_run_at > timezone.now()


# --- Workers racing -----------------------------------------------------------------------


# Needs a real server: SQLite's shared-cache in-memory test database answers concurrent
# writers with "table is locked" at once (no busy wait), which is not how a file database
# in WAL mode behaves. The claim itself is covered on every database by the tests above.
@pytest.mark.django_db(transaction=True)
def test_two_workers_racing_on_one_sync_make_one_run(require_postgres, make_sync, receiver):
    sync = make_sync(members=["A", "B"])
    receiver.respond_with(lambda request: Reply(delay=0.2))  # keep the winner's run open
    start = threading.Barrier(2)
    results: dict[int, SyncRun | None] = {}
    errors: list[BaseException] = []

    def worker(number: int) -> None:
        try:
            start.wait()
            results[number] = sync_run(sync_id=sync.pk)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()  # this thread's connections only

    threads = [threading.Thread(target=worker, args=(n,)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)

    assert errors == []
    runs = [run for run in results.values() if run is not None]
    assert len(results) == 2 and len(runs) == 1
    (run,) = runs
    assert run.status == SyncRun.Status.SUCCEEDED
    assert list(SyncRun.objects.filter(sync=sync).values_list("pk", flat=True)) == [run.pk]
    assert [r.session_id for r in receiver.requests] == [str(run.session_id)]


def another_worker_takes_over(sync_id: int, taken: list):
    """What a second worker does once the lease has expired: claim, then abandon stale runs."""
    try:
        Sync.objects.filter(pk=sync_id).update(claimed_until=timezone.now() - timedelta(seconds=1))
        token = services.sync_claim(sync_id=sync_id, require_due=False)
        if token is not None:
            abandon_unfinished_runs(sync_id=sync_id)
        taken.append(token)
    finally:
        connections.close_all()  # the receiver's handler thread: close its own connection


@pytest.mark.django_db(transaction=True)
def test_a_run_that_lost_its_claim_stops_sending(make_sync, receiver):
    sync = make_sync(members=[f"u{i:04d}" for i in range(1500)])  # two pages
    taken: list = []

    def answer(request):
        if not taken:  # while page 1 is in flight
            another_worker_takes_over(sync.pk, taken)
        return Reply()

    receiver.respond_with(answer)

    run = run_now(sync)

    assert len(receiver.requests) == 1  # page 2 never went out
    assert run.status == SyncRun.Status.FAILED
    assert SyncRun.objects.get(pk=run.pk).status == SyncRun.Status.FAILED
    assert taken[0] is not None
    assert sync.claim_token == taken[0]  # the loser did not release the winner's claim
    assert sync.snapshot_at is None
    assert sync.snapshot_generation == 0  # its picture stays for a resumption; nothing was committed
    assert not StagedMember.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_run_that_lost_its_claim_on_the_last_page_does_not_commit(make_sync, receiver):
    sync = make_sync(members=["A", "B", "C"])
    first = run_now(sync)
    services.sync_request_full_refresh(sync=sync)
    taken: list = []

    def answer(request):
        if not taken:  # the run's only page is in flight when its lease runs out
            another_worker_takes_over(sync.pk, taken)
        return Reply()

    receiver.respond_with(answer)

    run = run_now(sync)

    assert taken[0] is not None
    assert len(receiver.requests) == 2
    assert sync.snapshot_at == first.started_at
    assert snapshot_ids(sync) == {"A", "B", "C"}
    assert run.status == SyncRun.Status.FAILED
