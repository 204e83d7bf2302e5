#!/usr/bin/env python
"""Per-run cost of a small run (issue #14, part 5): statements, database time and CPU of
`engine.sync_run` for N first runs of 10-member cohorts, one after another in this process
(no Celery), to a loopback receiver. What the drain rate of bench/dispatch_bench.py is made of.

    . .venv/bin/activate
    CELERY_BROKER_URL=redis://127.0.0.1:6392/1 python bench/run_cost_bench.py --syncs 500
    python bench/run_cost_bench.py --syncs 500 --show-statements   # the statements of one run
    python bench/run_cost_bench.py --syncs 500 --profile tottime   # cProfile of the loop, top 40

DATABASE_URL defaults to postgres://postgres@127.0.0.1:5432/cohortsync_runcost_bench and is
dropped and recreated (its name must contain "bench"). With a Redis CELERY_BROKER_URL the
receiver limits live in Redis, as in production. Each sync then gets a second (diff) run, the
steady state of a dynamic sync, measured the same way.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import dispatch_bench  # noqa: E402  (the same seed)
import sync_bench  # noqa: E402  (the same database rules)

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/cohortsync_runcost_bench"


class StatementLog:
    """Counts (and optionally keeps) the statements of the default connection, with their time."""

    def __init__(self, keep: bool = False):
        self.count, self.seconds, self.keep, self.statements = 0, 0.0, keep, []

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.count += 1
            self.seconds += time.perf_counter() - started
            if self.keep:
                self.statements.append(" ".join(sql.split())[:160])


def run_all(sync_ids, *, label: str, show: bool) -> None:
    from django.db import connection

    from deliveries import engine

    log, last = StatementLog(), StatementLog(keep=True)
    started, cpu = time.perf_counter(), time.process_time()
    with connection.execute_wrapper(log):
        for sync_id in sync_ids[:-1]:
            engine.sync_run(sync_id=sync_id, trigger="manual")
        with connection.execute_wrapper(last):
            engine.sync_run(sync_id=sync_ids[-1], trigger="manual")
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    n = len(sync_ids)
    print(f"{label}: {n} runs in {wall:.2f} s = {n / wall:.1f} runs/s; per run {wall / n * 1000:.1f} ms wall, "
          f"{cpu / n * 1000:.1f} ms CPU, {log.count / n:.1f} statements ({log.seconds / n * 1000:.1f} ms in them)")
    if show:
        print(f"  the statements of the last of them ({last.count}):")
        for statement in last.statements:
            print(f"    {statement}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--syncs", type=int, default=500)
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--show-statements", action="store_true")
    parser.add_argument("--profile", nargs="?", const="cumulative", metavar="SORT",
                        help="cProfile the runs; print the top 40 by SORT (cumulative, tottime)")
    args = parser.parse_args(argv)

    os.environ.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    sync_bench.configure_environment()
    sync_bench.prepare_database(recreate=True)
    sync_bench.django_setup()
    from django.core.management import call_command

    from deliveries.models import Sync, SyncRun
    from tests.support.receiver import LoopbackReceiver

    call_command("migrate", verbosity=0)
    with LoopbackReceiver(record_bodies=False) as receiver:
        dispatch_bench.seed(syncs=args.syncs, members=args.members, url=receiver.url())
        sync_ids = list(Sync.objects.order_by("pk").values_list("pk", flat=True))
        print(f"seeded {len(sync_ids)} syncs of {args.members} members; 1-minute load {os.getloadavg()[0]:.1f}")
        if args.profile:
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            profiler.enable()
        run_all(sync_ids, label="first (full) runs", show=args.show_statements)
        run_all(sync_ids, label="second (diff) runs", show=args.show_statements)
        if args.profile:
            profiler.disable()
            pstats.Stats(profiler).sort_stats(args.profile).print_stats(os.environ.get("PROFILE_FILTER", ""), 40)
        not_succeeded = SyncRun.objects.exclude(status=SyncRun.Status.SUCCEEDED).count()
        print(f"{receiver.count:,} POSTs; {not_succeeded} runs not succeeded; "
              f"1-minute load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
