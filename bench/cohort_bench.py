#!/usr/bin/env python
"""Rule cohorts at scale on PostgreSQL: ingestion rates and cohort computation times.

    . .venv/bin/activate
    python bench/cohort_bench.py                                  # 1,000,000 profiles, 10,000,000 events
    python bench/cohort_bench.py --profiles 100000 --events 1000000

Recreates the database named by DATABASE_URL (default
postgres://postgres@127.0.0.1:5432/cohortsync_cohort_bench; dropped, so its name must
contain "bench"), then:
1. ingests all profiles through `profiles_upsert` (the batch service) and times it;
2. ingests `--service-events` events through `events_track` and times it; the rest of the
   events are COPYed straight in (the same rows the service writes) to keep seeding short;
3. ANALYZE, then computes three rule cohorts with the membership query the sync engine
   uses (`cohort_compute`: COUNT over it, plus the size-history row), each three times,
   and prints the best and the worst.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _common import django_on_fresh_database  # noqa: E402
from ingest_rate import EVENT_NAMES, event_items, profile_items  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/cohortsync_cohort_bench"

PROPERTY_COHORT = {"match": "all", "conditions": [
    {"type": "property", "property": "plan", "operator": "equals", "value": "pro"},
    {"type": "property", "property": "score", "operator": "gt", "value": 50},
]}
BEHAVIOURAL_COHORT = {"match": "all", "conditions": [
    {"type": "event", "event": "purchase", "operator": "at_least", "count": 3, "within_days": 7},
]}
COMBINED_COHORT = {"match": "all", "conditions": [
    {"type": "property", "property": "plan", "operator": "in", "value": ["pro", "team"]},
    {"type": "event", "event": "purchase", "operator": "at_least", "count": 2, "within_days": 14},
    {"match": "any", "conditions": [
        {"type": "property", "property": "beta", "operator": "equals", "value": True},
        {"type": "event", "event": "login", "performed": False, "within_days": 3},
    ]},
]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--service-events", type=int, default=1_000_000,
                        help="how many of the events go through events_track (the rest are COPYed)")
    options = parser.parse_args()

    django_on_fresh_database(DEFAULT_DATABASE_URL)
    from django.db import connection

    from cohorts.ingestion import MAX_BATCH, events_track, profiles_upsert
    from cohorts.models import Cohort, Event, Project
    from cohorts.services import cohort_compute

    project = Project.objects.create(name="Cohort benchmark")
    now = time.time()
    rows: list[tuple[str, str, float]] = []

    def rate(label, total, send, build, *extra):
        elapsed = 0.0
        for start in range(0, total, MAX_BATCH):
            items = build(start, min(MAX_BATCH, total - start), *extra)
            began = time.perf_counter()
            result = send(project=project, items=items)
            elapsed += time.perf_counter() - began
            assert not result.errors, result.errors[:3]
        rows.append((label, f"{total:,} rows in {elapsed:.1f} s", f"{total / elapsed:,.0f} rows/s"))
        print(rows[-1], flush=True)

    rate("profiles_upsert (new profiles)", options.profiles, profiles_upsert, profile_items)
    service_events = min(options.service_events, options.events)
    rate("events_track", service_events, events_track, event_items, now, options.profiles)

    copied = options.events - service_events
    began = time.perf_counter()
    if copied:
        _copy_events(connection, Event._meta.db_table, project.pk, service_events, copied, now, options.profiles)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(f"seeded {copied:,} more events by COPY + ANALYZE in {time.perf_counter() - began:.1f} s", flush=True)

    for label, definition in (("property cohort", PROPERTY_COHORT), ("behavioural cohort", BEHAVIOURAL_COHORT),
                              ("combined cohort", COMBINED_COHORT)):
        cohort = Cohort(project=project, name=label, kind=Cohort.Kind.RULES, definition=definition)
        cohort.full_clean()
        cohort.save()
        times = []
        for _ in range(3):
            began = time.perf_counter()
            size = cohort_compute(cohort=cohort)
            times.append(time.perf_counter() - began)
        rows.append((f"compute {label}", f"{size:,} members", f"best {min(times):.2f} s, worst {max(times):.2f} s"))
        print(rows[-1], flush=True)

    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        version = cursor.fetchone()[0].split(" on ")[0]
    print(f"\nCohortsync cohort benchmark — {options.profiles:,} profiles, {options.events:,} events, "
          f"{os.cpu_count()} CPUs, {version}")
    width = max(len(r[0]) for r in rows)
    for label, amount, figure in rows:
        print(f"  {label:<{width}}  {amount:>28}  {figure}")


def _copy_events(connection, table, project_id, start, count, now, profiles) -> None:
    """The same rows events_track writes, straight into the table (seeding only)."""
    import orjson

    connection.ensure_connection()
    with connection.connection.cursor() as cursor:
        with cursor.copy(f"COPY {table} (project_id, distinct_id, name, time, properties) FROM STDIN") as copy:
            for number in range(start, start + count):
                when = datetime.fromtimestamp(now - (number % (30 * 86_400)), tz=UTC)
                copy.write_row((project_id, f"bench-{number % profiles:08d}", EVENT_NAMES[number % len(EVENT_NAMES)],
                                when, orjson.dumps({"path": f"/page/{number % 50}", "amount": number % 1000}).decode()))


if __name__ == "__main__":
    main()
