#!/usr/bin/env python
"""Ingestion rate through the batch services (cohorts/ingestion.py) on PostgreSQL.

    . .venv/bin/activate
    python bench/ingest_rate.py                      # 100,000 profiles, 200,000 events
    python bench/ingest_rate.py --profiles 1000000 --events 2000000

Recreates the database named by DATABASE_URL (default
postgres://postgres@127.0.0.1:5432/cohortsync_ingest_bench; its name must contain "bench"
because it is dropped), migrates it, then times, in batches of MAX_BATCH items built
beforehand (so the time is validation + merge + write):

1. profiles_upsert of new profiles (identity fields and three `set` properties);
2. profiles_upsert of the same distinct ids again (the update path: set, set_once, unset);
3. events_track of events spread over the last 30 days.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import django_on_fresh_database  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/cohortsync_ingest_bench"
PLANS = ["free", "pro", "team"]
EVENT_NAMES = ["page_view", "signup", "purchase", "login"]


def profile_items(start: int, count: int) -> list[dict]:
    return [
        {
            "distinct_id": f"bench-{number:08d}",
            "email": f"user{number}@example.com",
            "first_name": "Ada",
            "last_name": "Lovelace",
            "phone_number": f"+1-555-{number % 10_000_000:07d}",
            "set": {"plan": PLANS[number % 3], "score": number % 101, "beta": number % 2 == 0},
        }
        for number in range(start, start + count)
    ]


def profile_update_items(start: int, count: int) -> list[dict]:
    return [
        {
            "distinct_id": f"bench-{number:08d}",
            "set": {"score": (number * 7) % 101},
            "set_once": {"first_seen": "2024-01-01"},
            "unset": ["beta"],
        }
        for number in range(start, start + count)
    ]


def event_items(start: int, count: int, now: float, profiles: int) -> list[dict]:
    return [
        {
            "distinct_id": f"bench-{number % profiles:08d}",
            "event": EVENT_NAMES[number % len(EVENT_NAMES)],
            "time": now - (number % (30 * 86_400)),
            "properties": {"path": f"/page/{number % 50}", "amount": number % 1000},
        }
        for number in range(start, start + count)
    ]


def timed(label: str, total: int, batches) -> None:
    from django.db import connection

    elapsed = 0.0
    accepted = 0
    for send, items in batches:
        started = time.perf_counter()
        result = send(items)
        elapsed += time.perf_counter() - started
        accepted += result.accepted
        assert not result.errors, result.errors[:3]
    assert accepted == total, (accepted, total)
    connection.close()
    print(f"{label:<32} {total:>10,} rows in {elapsed:7.2f} s = {total / elapsed:>9,.0f} rows/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=200_000)
    options = parser.parse_args()

    url = django_on_fresh_database(DEFAULT_DATABASE_URL)
    from cohorts.ingestion import MAX_BATCH, events_track, profiles_upsert
    from cohorts.models import Project

    project = Project.objects.create(name="Ingestion benchmark")

    def upsert(items):
        return profiles_upsert(project=project, items=items)

    def track(items):
        return events_track(project=project, items=items)

    def batches(send, build, total, *extra):
        for start in range(0, total, MAX_BATCH):
            yield send, build(start, min(MAX_BATCH, total - start), *extra)

    print(f"PostgreSQL {url.rsplit('/', 1)[-1]}, batches of {MAX_BATCH:,}")
    n = options.profiles
    timed("profiles_upsert (new)", n, list(batches(upsert, profile_items, n)))
    timed("profiles_upsert (update)", n, list(batches(upsert, profile_update_items, n)))
    timed("events_track", options.events, list(batches(track, event_items, options.events, time.time(), n)))


if __name__ == "__main__":
    main()
