"""Outages for real (issue #14): Celery workers in their own processes, killed; the broker gone;
PostgreSQL + Redis. Each test ends with every receiver holding exactly its cohort."""

from datetime import timedelta

import pytest
from django.utils import timezone

from deliveries import services
from deliveries.models import Sync, SyncRun
from tests.support.faults import celery_worker, cohort_holds, kill, purge_queues, queued_tasks, receiver_holds, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def broker(require_postgres, require_redis):
    purge_queues()
    yield
    purge_queues()


def test_a_worker_outage_leaves_one_task_per_due_sync_and_every_receiver_ends_equal(broker, make_sync, receiver,
                                                                                    tmp_path):
    syncs = [make_sync(members=[f"s{n}-{m}" for m in range(5)], next_run_at=timezone.now() - timedelta(minutes=n))
             for n in range(8)]
    with celery_worker(tmp_path, concurrency=2) as worker:
        kill(worker)  # the outage starts before the tick

        now = timezone.now()
        ticks = [services.syncs_dispatch_due(now=now + timedelta(minutes=minute)) for minute in range(4)]

    assert ticks[0] == [sync.pk for sync in syncs][::-1]  # the most overdue first
    assert ticks[1:] == [[], [], []]
    assert queued_tasks("runs") == len(syncs)  # one task per due sync, not one per tick

    with celery_worker(tmp_path, concurrency=2):
        wait_until(lambda: SyncRun.objects.filter(status=SyncRun.Status.SUCCEEDED).count() == len(syncs),
                   "every sync's run")
    assert queued_tasks("runs") == 0
    assert SyncRun.objects.count() == len(syncs)
    for sync in syncs:
        sync.refresh_from_db()
        assert (sync.dispatched_until, sync.claimed_until) == (None, None)
        assert receiver_holds(receiver, sync.cohort) == cohort_holds(sync.cohort)
    assert Sync.objects.filter(next_run_at__lte=timezone.now()).count() == 0
