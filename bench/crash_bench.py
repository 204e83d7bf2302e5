#!/usr/bin/env python
"""Crash benchmark (issue #14, parts 3 and 4): how long a killed run's sync stays stuck, and
what its resumption sends again. Real `celery worker` and `celery beat` processes, Redis,
PostgreSQL, the project's default claim lease (20 s) and beat schedule (every 30 s).

    . .venv/bin/activate
    CELERY_BROKER_URL=redis://127.0.0.1:6379/14 python bench/crash_bench.py --members 50000

DATABASE_URL defaults to postgres://postgres@127.0.0.1:5432/cohortsync_crash_bench and is
dropped and recreated (its name must contain "bench"); the broker's queues are emptied.
For each fault, one sync of --members members (pages of 1000, the receiver taking --delay s a
page) is started by beat; once --kill-at pages are delivered, the fault is injected:

- `worker`: the whole worker process group gets SIGKILL (no handler runs: the holder could as
  well be on another host). A new worker is started at once. The sync is free when its lease
  lapses; beat's next dispatch resumes the run.
- `child`: only the pool child running the sync gets SIGKILL. Celery redelivers the task; the
  next child sees the holder's process is gone and resumes at once.

Printed per fault: seconds from the kill to the resumed run's first page, pages sent twice
(the page in flight at the kill), whether the whole run was one session, and whether the
receiver ended equal to the cohort.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sync_bench  # noqa: E402  (the same database rules)
from dispatch_bench import django_with_redis_broker, start_worker, stop, wait_for_workers  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/cohortsync_crash_bench"


def start_beat() -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel", "WARNING",
         "--pidfile", ""],
        cwd=sync_bench.ROOT, start_new_session=True,
    )


def one_fault(fault: str, *, members: int, delay: float, kill_at: int, app) -> dict:
    from django.utils import timezone

    from cohorts.models import Cohort, CohortMember, Profile, Project
    from deliveries.models import Sync, SyncRun
    from integrations.services import connection_create
    from tests.support.faults import cohort_holds, purge_queues, receiver_holds
    from tests.support.receiver import LoopbackReceiver, Reply

    purge_queues()
    Sync.objects.update(state=Sync.State.PAUSED)  # earlier faults' syncs stay out of the way
    project = Project.objects.create(name=f"Crash bench: {fault}")
    Profile.objects.bulk_create([Profile(project=project, distinct_id=f"{fault}-{n}") for n in range(members)],
                                batch_size=5000)
    cohort = Cohort.objects.create(project=project, name=f"{fault} cohort")
    CohortMember.objects.bulk_create([CohortMember(cohort=cohort, profile=p) for p in
                                      Profile.objects.filter(project=project)], batch_size=5000)
    arrivals: list[tuple[float, int]] = []

    def answer(request):
        arrivals.append((time.monotonic(), request.page_info["page_count"]))
        return Reply(delay=delay)

    with LoopbackReceiver() as receiver:
        receiver.respond_with(answer)
        connection = connection_create(project=project, name=f"{fault} receiver", url=receiver.url())
        sync = Sync.objects.create(cohort=cohort, connection=connection, next_run_at=timezone.now())
        worker = start_worker(f"crash-{fault}", "runs,celery", 1)
        beat = start_beat()
        dispatcher = start_worker(f"crash-dispatch-{fault}", "dispatch", 1)
        processes = [beat, dispatcher]
        try:
            wait_for_workers(app, 2)
            while len(arrivals) < kill_at:
                time.sleep(0.01)
            if fault == "worker":
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
                killed_at = time.monotonic()
                processes.append(start_worker(f"crash-{fault}-2", "runs,celery", 1))
            else:
                holder = Sync.objects.get(pk=sync.pk).claimed_by
                os.kill(int(holder.rpartition(" pid ")[2]), signal.SIGKILL)
                killed_at = time.monotonic()
                processes.append(worker)
            sent_before = len(arrivals)
            while not SyncRun.objects.filter(sync=sync, status=SyncRun.Status.SUCCEEDED).exists():
                time.sleep(0.1)
        finally:
            stop(processes)
        run = SyncRun.objects.get(sync=sync)
        resumed_first = next(at for at, _ in arrivals[sent_before:])
        pages = [page for _, page in arrivals]
        return {
            "fault": fault,
            "stuck_s": resumed_first - killed_at,
            "pages": run.total_pages,
            "sent": len(pages),
            "sent_twice": len(pages) - len(set(pages)),
            "stop": run.stops[0]["error"] if run.stops else "",
            "one_session": len({r.session_id for r in receiver.requests}) == 1,
            "equal": receiver_holds(receiver, cohort) == cohort_holds(cohort),
        }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=50_000)
    parser.add_argument("--delay", type=float, default=0.1, help="the receiver's seconds a page")
    parser.add_argument("--kill-at", type=int, default=20, help="pages delivered before the kill")
    parser.add_argument("--faults", default="worker,child")
    args = parser.parse_args(argv)

    django_with_redis_broker(DEFAULT_DATABASE_URL)
    from django.conf import settings

    from config import celery_app

    print(f"claim lease {settings.COHORTSYNC_CLAIM_LEASE_SECONDS} s, beat dispatches syncs every 30 s; "
          f"{args.members:,} members, {args.delay} s a page, kill after {args.kill_at} pages; "
          f"1-minute load {os.getloadavg()[0]:.1f}")
    for fault in args.faults.split(","):
        result = one_fault(fault, members=args.members, delay=args.delay, kill_at=args.kill_at, app=celery_app)
        print(f"{result['fault']:>6}: resumed {result['stuck_s']:.1f} s after the kill; {result['sent']} pages sent "
              f"for {result['pages']} ({result['sent_twice']} twice); one session: {result['one_session']}; "
              f"receiver equal to the cohort: {result['equal']}\n        stop recorded: {result['stop']}")


if __name__ == "__main__":
    main()
