#!/usr/bin/env python
"""User-message benchmark: an ASAP message to every member of the demo cohort, in batches
of 50 form-encoded users, to a loopback receiver; then a re-run that must send nobody.

    . .venv/bin/activate
    python bench/message_bench.py --members 100000
    python bench/message_bench.py --members 1000000 --reuse   # after sync_bench seeded 1M

Same database rules as sync_bench.py (DATABASE_URL defaults to
postgres://postgres@127.0.0.1:5432/cohortsync_bench and is recreated unless --reuse). Steps:

1. Seed the demo project (sync_bench.seed) and create one ASAP message to the receiver.
2. Floor: a child POSTs the same number of 50-user form bodies, pre-built from the same
   profiles without the engine's code, over one keep-alive requests.Session.
3. First run, in a fresh child (campaigns.sending.message_run), timed by phase: reserve
   (one INSERT … SELECT of the send records), deliver (read → encode → POST → mark sent).
4. Re-run: everyone already has a send record, so it reserves and posts nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sync_bench  # noqa: E402  (the same environment, database and receiver)

BATCH = 50  # campaigns.policy.BATCH_SIZE; checked after django.setup()


def child(args: list[str]) -> dict:
    with tempfile.NamedTemporaryFile(prefix="message_bench_", suffix=".json", delete=False) as handle:
        out = handle.name
    try:
        process = subprocess.Popen([sys.executable, __file__, "--child-out", out, *args], cwd=sync_bench.ROOT)
        _, status, usage = os.wait4(process.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"child {' '.join(args)} failed")
        result = json.loads(Path(out).read_text())
    finally:
        Path(out).unlink(missing_ok=True)
    result["maxrss_kb"] = usage.ru_maxrss
    return result


def child_floor(url: str, cohort_id: int) -> dict:
    """Pre-built form bodies of 50 users (plain dicts, orjson, urlencode), then only the POSTs."""
    sync_bench.django_setup()
    import orjson
    import requests
    from django.db import connection as db

    with db.cursor() as cursor:
        cursor.execute(
            """SELECT p.distinct_id, p.email, p.first_name, p.last_name, p.phone_number, p.properties::text
               FROM cohorts_cohortmember m JOIN cohorts_profile p ON p.id = m.profile_id
               WHERE m.cohort_id = %s ORDER BY p.id""", [cohort_id])
        rows = cursor.fetchall()
    bodies = []
    for start in range(0, len(rows), BATCH):
        users = []
        for distinct_id, email, first, last, phone, properties in rows[start:start + BATCH]:
            values = orjson.loads(properties) if properties else {}
            for name, value in (("$email", email), ("$first_name", first), ("$last_name", last), ("$phone", phone)):
                if value:
                    values[name] = value
            users.append({"$distinct_id": distinct_id, "$properties": values})
        bodies.append(urlencode({"users": orjson.dumps(users).decode()}).encode())
    del rows
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    started = time.perf_counter()
    with requests.Session() as session:
        for body in bodies:
            session.post(url, data=body, headers=headers).raise_for_status()
    return {"wall_s": time.perf_counter() - started, "posts": len(bodies), "bytes": sum(map(len, bodies))}


def child_run(message_id: int) -> dict:
    sync_bench.django_setup()
    from campaigns import policy, sending
    from campaigns.models import MessageRun

    assert policy.BATCH_SIZE == BATCH
    timers = sync_bench.Timers()
    timers.wrap(sending, "reserve_recipients", "reserve")
    timers.wrap(sending, "deliver_batches", "deliver")
    timers.wrap(sending, "post_with_retries", "post")
    timers.wrap(sending, "users_body", "encode")
    timers.wrap_generator(sending, "stream_batches", "read")
    rss_after_setup = sync_bench.vm_rss_kb()
    started = time.perf_counter()
    run = sending.message_run(message_id=message_id, trigger="cli")
    wall = time.perf_counter() - started
    run = MessageRun.objects.get(pk=run.pk)
    return {
        "wall_s": wall, "status": run.status, "users": run.users_count, "sent": run.sent_count,
        "batches": run.batches_delivered, "timers": timers.seconds, "rss_after_setup_kb": rss_after_setup,
        "maxrss_self_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--reuse", action="store_true", help="keep the seeded database")
    parser.add_argument("--child", choices=["floor", "run"])
    parser.add_argument("--child-out")
    parser.add_argument("--url")
    parser.add_argument("--id", type=int)
    args = parser.parse_args()
    sync_bench.configure_environment()
    if args.child:
        result = child_floor(args.url, args.id) if args.child == "floor" else child_run(args.id)
        Path(args.child_out).write_text(json.dumps(result))
        return

    created = sync_bench.prepare_database(recreate=not args.reuse)
    sync_bench.django_setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    receiver = sync_bench.CountingReceiver().start()
    try:
        print(f"database {sync_bench.database_name()}: {'created' if created else 'reused'}; "
              f"seeding {args.members:,} members …", flush=True)
        seeding = sync_bench.seed(members=args.members, url=receiver.url(), properties=["plan", "score", "beta"])
        from campaigns.models import Message
        from campaigns.services import message_create
        from cohorts.models import Cohort
        from deliveries.models import Sync

        cohort = Cohort.objects.get(pk=seeding["cohort_id"])
        Message.objects.filter(cohort=cohort).delete()
        message = message_create(cohort=cohort, connection=Sync.objects.get(pk=seeding["sync_id"]).connection,
                                 name="bench")
        sync_bench.settle(["cohorts_profile", "cohorts_cohortmember"])

        print("floor: pre-built form bodies over one Session …", flush=True)
        receiver.reset()
        floor = child(["--child", "floor", "--url", receiver.url(), "--id", str(cohort.pk)])
        print(f"  {floor['wall_s']:.2f} s for {floor['posts']:,} POSTs", flush=True)
        receiver.reset()
        print("first run …", flush=True)
        first = child(["--child", "run", "--id", str(message.pk)])
        first["requests"] = receiver.count
        print(f"  {first['wall_s']:.2f} s", flush=True)
        sync_bench.settle(["campaigns_messagesend"])
        receiver.reset()
        print("re-run (nobody is due) …", flush=True)
        again = child(["--child", "run", "--id", str(message.pk)])
        again["requests"] = receiver.count
        print(f"  {again['wall_s']:.2f} s", flush=True)
    finally:
        receiver.stop()

    posts = math.ceil(args.members / BATCH)
    print()
    print(f"| {args.members:,} users, {BATCH} a POST ({posts:,} POSTs) | wall | users/s | peak RSS |")
    print("|---|---|---|---|")
    print(f"| floor: pre-built bodies, POST only | {floor['wall_s']:.2f} s | "
          f"{args.members / floor['wall_s']:,.0f} | {floor['maxrss_kb'] / 1024:.0f} MB |")
    timers = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in first["timers"].items())
    print(f"| first run ({first['sent']:,} sent, {first['requests']:,} POSTs; {timers}) | {first['wall_s']:.2f} s | "
          f"{first['sent'] / first['wall_s']:,.0f} | {first['maxrss_kb'] / 1024:.0f} MB |")
    print(f"| re-run ({again['users']} reserved, {again['requests']} POSTs) | {again['wall_s']:.2f} s | – | "
          f"{again['maxrss_kb'] / 1024:.0f} MB |")
    print(f"\nfirst run / floor: {first['wall_s'] / floor['wall_s']:.1f}×")


if __name__ == "__main__":
    main()
