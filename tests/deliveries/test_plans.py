"""The engine's SQL does work in proportion to what a run touches, whatever PostgreSQL's
statistics say (issue 13 part 1): full → churn → diff → refresh with autovacuum off, with
tables never analysed, analysed while empty, and freshly analysed.

Work is counted as rows PostgreSQL read (pg_stat_xact_user_tables: sequential plus index
fetches), which does not depend on the machine's speed. A plan that loops over the snapshot
for every removal reads cohort × change rows; the bounds below allow a few passes over the
cohort (the comparison itself) plus a few rows per change.
"""

from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection as db

from cohorts.models import Cohort, CohortMember, Profile
from deliveries.models import DeliveryAttempt, SnapshotMember, StagedMember, Sync, SyncRun

pytestmark = pytest.mark.django_db

MEMBERS = 20_000
CHURN_PERCENT = 1  # swaps 1 %: 200 removed, 200 added
TABLES = [model._meta.db_table for model in (SnapshotMember, StagedMember, Profile, CohortMember, Sync, SyncRun,
                                             DeliveryAttempt, Cohort)]
STATES = ["never analysed", "analysed while empty", "fresh"]


def rows_read() -> dict[str, int]:
    """Rows this transaction read from each table so far (sequential and index fetches)."""
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT relname, COALESCE(seq_tup_read, 0) + COALESCE(idx_tup_fetch, 0) "
            "FROM pg_stat_xact_user_tables WHERE relname = ANY(%s)",
            [TABLES],
        )
        return dict(cursor.fetchall())


def forget_statistics() -> None:
    """As after CREATE TABLE: no column statistics, reltuples unknown (-1)."""
    with db.cursor() as cursor:
        cursor.execute("DELETE FROM pg_statistic WHERE starelid = ANY(SELECT oid FROM pg_class "
                       "WHERE relname = ANY(%s) AND relkind = 'r')", [TABLES])
        cursor.execute("UPDATE pg_class SET reltuples = -1, relpages = 0, relallvisible = 0 "
                       "WHERE relname = ANY(%s) AND relkind = 'r'", [TABLES])


def analyse() -> None:
    with db.cursor() as cursor:
        for table in TABLES:
            cursor.execute(f"ANALYZE {table}")


def analyse_while_empty() -> None:
    """ANALYZE of tables that are empty but held rows before (the staging table after every
    run, a cohort emptied and refilled): pages but no live rows, so every estimate is a row."""
    analyse()
    with db.cursor() as cursor:
        cursor.execute("UPDATE pg_class SET relpages = 1000 WHERE relname = ANY(%s) AND relkind = 'r'", [TABLES])


def command(*args) -> str:
    out = StringIO()
    call_command(*map(str, args), stdout=out)
    return out.getvalue()


@pytest.mark.parametrize("statistics", STATES)
def test_full_churn_diff_refresh_read_in_proportion_to_the_change(require_postgres, receiver, statistics):
    with db.cursor() as cursor:
        for table in TABLES:
            cursor.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
    if statistics == "never analysed":
        forget_statistics()
    else:
        analyse_while_empty()  # the tables are empty here; "fresh" analyses again after each step
    settle = analyse if statistics == "fresh" else (lambda: None)
    command("demo", "--members", MEMBERS, "--url", receiver.url())
    sync = Sync.objects.get()
    settle()

    def run(*options) -> tuple[SyncRun, dict[str, int]]:
        before = rows_read()
        command("runsync", sync.pk, *options)
        after = rows_read()
        settle()
        return SyncRun.objects.filter(sync=sync).first(), {t: after.get(t, 0) - before.get(t, 0) for t in TABLES}

    first, first_reads = run()
    command("demo", "--churn", CHURN_PERCENT)
    settle()
    diff, diff_reads = run()
    command("demo", "--churn", CHURN_PERCENT)
    settle()
    refresh, refresh_reads = run("--full")

    assert (first.kind, first.members_count) == (SyncRun.Kind.FULL, MEMBERS)
    assert (diff.kind, diff.adds_count, diff.removes_count) == (SyncRun.Kind.DIFF, 200, 200)
    assert (refresh.kind, refresh.members_count, refresh.removes_count) == (SyncRun.Kind.FULL, MEMBERS, 200)
    assert all(r.status == SyncRun.Status.SUCCEEDED for r in (first, diff, refresh))
    change = diff.adds_count + diff.removes_count
    snapshot, staged = SnapshotMember._meta.db_table, StagedMember._meta.db_table
    print(f"\n{statistics}: rows read by the first run {first_reads}\n  diff {diff_reads}\n  refresh {refresh_reads}")
    # The diff: one pass over the snapshot (the comparison) plus a few rows per change; a
    # nested loop over the snapshot for every removal would read MEMBERS × 200 rows.
    assert diff_reads[snapshot] <= 2 * MEMBERS + 10 * change
    assert diff_reads[staged] <= 10 * change
    assert sum(diff_reads.values()) <= 6 * MEMBERS + 50 * change
    # A refresh and a first run read each table a few times at most.
    for reads in (first_reads, refresh_reads):
        assert reads[snapshot] <= 3 * MEMBERS
        assert reads[staged] <= 5 * MEMBERS
        assert sum(reads.values()) <= 12 * MEMBERS
