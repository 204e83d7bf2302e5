"""Generated demo data: profiles, a static cohort and churn (the `demo` command, the benchmark)."""

import math
import random
from collections.abc import Iterator

import orjson
from django.db import connection as db, transaction
from django.db.models import Max
from django.utils import timezone

from .models import Cohort, CohortMember, Profile, Project

DEMO_PREFIX = "demo-user-"
FIRST_NAMES = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Margaret", "Ken", "Frances", "Linus"]
LAST_NAMES = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Hamilton", "Thompson", "Allen"]
PLANS = ["free", "pro", "team"]
INSERT_BATCH = 10_000


def demo_distinct_id(number: int) -> str:
    return f"{DEMO_PREFIX}{number:07d}"


def demo_profile_rows(start: int, count: int) -> Iterator[tuple]:
    rng = random.Random(start)
    for number in range(start, start + count):
        first, last = FIRST_NAMES[number % len(FIRST_NAMES)], LAST_NAMES[number % len(LAST_NAMES)]
        yield (
            demo_distinct_id(number),
            f"{first.lower()}.{last.lower()}{number}@example.com",
            first,
            last,
            f"+1-555-{number % 10_000_000:07d}",
            f'{{"plan": "{PLANS[number % 3]}", "score": {rng.randint(0, 100)}, "beta": {str(number % 2 == 0).lower()}}}',
        )


def demo_profiles_create(*, project: Project, count: int) -> tuple[int, int]:
    """Create `count` new demo profiles numbered after the existing ones; returns (first, last) number."""
    start = demo_next_number(project=project)
    rows = demo_profile_rows(start, count)
    if db.vendor == "postgresql":
        _copy_profiles(project, rows)
    else:
        _bulk_create_profiles(project, rows)
    return start, start + count - 1


def demo_next_number(*, project: Project) -> int:
    last = Profile.objects.filter(project=project, distinct_id__startswith=DEMO_PREFIX).aggregate(m=Max("distinct_id"))
    return int(last["m"][len(DEMO_PREFIX):]) + 1 if last["m"] else 1


def _copy_profiles(project: Project, rows: Iterator[tuple]) -> None:
    # COPY is ~10x faster than INSERT for a million rows (docs/benchmarks.md, "The floor").
    now = timezone.now()
    table = Profile._meta.db_table
    columns = "project_id, distinct_id, email, first_name, last_name, phone_number, properties, created_at, updated_at"
    with transaction.atomic(), db.cursor() as cursor:
        with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row((project.pk, *row, now, now))


def _bulk_create_profiles(project: Project, rows: Iterator[tuple]) -> None:
    batch = []
    for distinct_id, email, first, last, phone, properties in rows:
        batch.append(Profile(project=project, distinct_id=distinct_id, email=email, first_name=first,
                             last_name=last, phone_number=phone, properties=orjson.loads(properties)))
        if len(batch) >= INSERT_BATCH:
            Profile.objects.bulk_create(batch)
            batch = []
    if batch:
        Profile.objects.bulk_create(batch)


def demo_cohort_fill(*, cohort: Cohort, first: int, last: int) -> int:
    """Add the demo profiles numbered first..last to a static cohort, in SQL."""
    member = CohortMember._meta.db_table
    profile = Profile._meta.db_table
    now = timezone.now()
    with db.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {member} (cohort_id, profile_id, added_at)
            SELECT %s, p.id, %s FROM {profile} p
            WHERE p.project_id = %s AND p.distinct_id BETWEEN %s AND %s
            ON CONFLICT (cohort_id, profile_id) DO NOTHING""",
            [cohort.pk, now, cohort.project_id, demo_distinct_id(first), demo_distinct_id(last)],
        )
        return cursor.rowcount


def demo_cohort_trim(*, cohort: Cohort, size: int) -> int:
    """Keep the `size` lowest-numbered members; returns how many left."""
    member = CohortMember._meta.db_table
    with db.cursor() as cursor:
        cursor.execute(
            f"""DELETE FROM {member} WHERE cohort_id = %s AND id NOT IN (
                SELECT id FROM {member} WHERE cohort_id = %s ORDER BY profile_id LIMIT %s)""",
            [cohort.pk, cohort.pk, size],
        )
        return cursor.rowcount


@transaction.atomic
def demo_cohort_churn(*, cohort: Cohort, percent: float) -> tuple[int, int]:
    """Swap `percent` % of the members: that many removed at random and as many new profiles added.

    The count is rounded to the nearest whole member, halves up, and is at least one when
    `percent` > 0 (20 % of 25 swaps 5; 10 % of 25, 2.5, swaps 3).
    """
    size = CohortMember.objects.filter(cohort=cohort).count()
    # As many in as out keeps the cohort's size, so repeated churn does not drift it.
    swapped = max(1, math.floor(size * percent / 100 + 0.5)) if percent > 0 and size else 0
    removed_count = added_count = swapped
    member = CohortMember._meta.db_table
    with db.cursor() as cursor:
        cursor.execute(
            f"""DELETE FROM {member} WHERE id IN (
                SELECT id FROM {member} WHERE cohort_id = %s ORDER BY RANDOM() LIMIT %s)""",
            [cohort.pk, removed_count],
        )
        removed = cursor.rowcount
    first, last = demo_profiles_create(project=cohort.project, count=added_count)
    added = demo_cohort_fill(cohort=cohort, first=first, last=last) if added_count else 0
    return removed, added
