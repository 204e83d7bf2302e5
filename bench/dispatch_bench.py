#!/usr/bin/env python
"""Dispatcher benchmark (issue #14, part 5): many due syncs, real Celery workers, Redis, PostgreSQL.

    . .venv/bin/activate
    CELERY_BROKER_URL=redis://127.0.0.1:6379/15 python bench/dispatch_bench.py --syncs 10000

DATABASE_URL defaults to postgres://postgres@127.0.0.1:5432/cohortsync_dispatch_bench and is
dropped and recreated (its name must contain "bench"); CELERY_BROKER_URL must be Redis, and its
queues (dispatch, runs, celery) are emptied. Steps:

1. Seed one project, one connection to a loopback receiver in this process, N static cohorts of
   --members members each, and one due dynamic sync per cohort (due 0 to 60 minutes ago).
2. Dispatch: a dispatch worker (`-Q dispatch -c 1`) is started; the clock runs from
   `dispatch_due_syncs.delay()` to the N-th task waiting in the `runs` queue.
3. Outage: no run worker is up; three more ticks (one, two and three minutes later) must add
   nothing: the `runs` queue still holds N tasks.
4. Drain: two run workers (`-Q runs,celery -c 2` each) start; runs per second from the first
   finished run to the --drain-th (default: all of them).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sync_bench  # noqa: E402  (the same database rules)

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/cohortsync_dispatch_bench"


def seed(*, syncs: int, members: int, url: str) -> None:
    from django.db import transaction
    from django.utils import timezone

    from cohorts.models import Cohort, CohortMember, Profile, Project
    from deliveries.models import Sync
    from integrations.services import connection_create

    project = Project.objects.create(name="Dispatch bench")
    connection = connection_create(project=project, name="loopback", url=url)
    with transaction.atomic():
        profiles = Profile.objects.bulk_create(
            [Profile(project=project, distinct_id=f"user-{n}", email=f"user-{n}@example.com") for n in range(1000)],
            batch_size=1000,
        )
        cohorts = Cohort.objects.bulk_create(
            [Cohort(project=project, name=f"cohort {n}") for n in range(syncs)], batch_size=2000
        )
        CohortMember.objects.bulk_create(
            [CohortMember(cohort=cohort, profile=profiles[(n + m) % len(profiles)])
             for n, cohort in enumerate(cohorts) for m in range(members)],
            batch_size=5000,
        )
        now = timezone.now()
        Sync.objects.bulk_create(
            [Sync(cohort=cohort, connection=connection, next_run_at=now - timedelta(seconds=n % 3600))
             for n, cohort in enumerate(cohorts)],
            batch_size=2000,
        )


def django_with_redis_broker(default_database_url: str) -> None:
    """A fresh, migrated benchmark database (DATABASE_URL, else `default_database_url`) and Django
    set up on it; the broker must be a Redis whose queues the benchmark may empty."""
    os.environ.setdefault("DATABASE_URL", default_database_url)
    sync_bench.configure_environment()
    if not os.environ.get("CELERY_BROKER_URL", "").startswith("redis"):
        sys.exit("CELERY_BROKER_URL must point at Redis.")
    sync_bench.prepare_database(recreate=True)
    sync_bench.django_setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def start_worker(name: str, queues: str, concurrency: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queues, "-c", str(concurrency),
         "-n", f"{name}@%h", "--without-gossip", "--without-mingle", "--loglevel", "WARNING"],
        cwd=sync_bench.ROOT, start_new_session=True,
    )


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()  # warm shutdown: the pool finishes its current runs
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)


def wait_for_workers(app, count: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if len(app.control.ping(timeout=1.0) or []) >= count:
            return
    sys.exit("the workers did not answer a ping within 120 s")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--syncs", type=int, default=10_000)
    parser.add_argument("--members", type=int, default=10, help="members of each sync's cohort")
    parser.add_argument("--drain", type=int, default=None, help="stop after this many runs (default: all)")
    args = parser.parse_args(argv)

    django_with_redis_broker(DEFAULT_DATABASE_URL)
    from django.utils import timezone

    from config import celery_app
    from deliveries import dispatch, tasks
    from deliveries.models import Sync, SyncRun
    from tests.support.faults import purge_queues, queued_tasks
    from tests.support.receiver import LoopbackReceiver

    drain = min(args.drain or args.syncs, args.syncs)
    with LoopbackReceiver(record_bodies=False) as receiver:
        started = time.perf_counter()
        seed(syncs=args.syncs, members=args.members, url=receiver.url())
        print(f"seeded {args.syncs:,} syncs of {args.members} members in {time.perf_counter() - started:.1f} s")
        purge_queues()
        workers = [start_worker("dispatch", "dispatch", 1)]
        try:
            wait_for_workers(celery_app, 1)
            load = os.getloadavg()[0]
            started = time.perf_counter()
            tasks.dispatch_due_syncs.delay()
            while queued_tasks("runs") < args.syncs:
                time.sleep(0.02)
            dispatched = time.perf_counter() - started
            # The same tick in this process, for its CPU time (the machine may be shared).
            purge_queues()
            Sync.objects.update(dispatched_until=None)
            started, cpu = time.perf_counter(), time.process_time()
            dispatch.syncs_dispatch_due()
            in_process = time.perf_counter() - started, time.process_time() - cpu
            now = timezone.now()
            again = [len(dispatch.syncs_dispatch_due(now=now + timedelta(minutes=m))) for m in (1, 2, 3)]
            after_outage = queued_tasks("runs")

            workers += [start_worker(f"runs{n}", "runs,celery", 2) for n in (1, 2)]
            finished = SyncRun.objects.filter(status=SyncRun.Status.SUCCEEDED)
            while not finished.exists():
                time.sleep(0.05)
            first, first_count = time.perf_counter(), finished.count()
            while (count := finished.count()) < drain:
                time.sleep(0.2)
            drained = time.perf_counter() - first
        finally:
            stop(workers)
        failed = SyncRun.objects.exclude(status=SyncRun.Status.SUCCEEDED).exclude(status=SyncRun.Status.RUNNING).count()
    print(f"dispatch of {args.syncs:,} due syncs (delay() → last task in the runs queue): {dispatched:.2f} s "
          f"(1-minute load {load:.1f}); the same tick in-process: {in_process[0]:.2f} s wall, "
          f"{in_process[1]:.2f} s CPU")
    print(f"ticks at +1, +2, +3 min during the outage enqueued {again}; runs queue: {after_outage:,} tasks "
          f"for {args.syncs:,} due syncs")
    rate = (count - first_count) / drained if drained else float("nan")
    print(f"drain with 2 workers x 2 processes: {count - first_count:,} runs in {drained:.1f} s = {rate:.1f} runs/s "
          f"({receiver.count:,} POSTs; {failed} runs not succeeded)")


if __name__ == "__main__":
    main()
