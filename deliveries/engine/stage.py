"""Stage: the run's fixed picture, computed by the database.

A run fixes its picture once, in the staging table, and never reads the live cohort again.
A full run over an empty delivered state (a first run) fixes its picture in the snapshot
table instead, as a new generation that success makes current.
"""

from django.db import connection as db, transaction

from cohorts.selectors import cohort_membership
from cohorts.services import cohort_size_record

from ..models import MemberOp, SnapshotMember, StagedMember, Sync, SyncRun
from .pages import profile_join
from .plan import PagePlan, page_size_for, run_page_plans


def stage_members(*, run: SyncRun, sync: Sync, unsuccessful_diffs: list[int] | None = None) -> list[PagePlan]:
    """Fix the run's picture and record its counts and the cohort's size, in one transaction
    (one commit, and no picture without its counts). `unsuccessful_diffs`: carry_over's."""
    with transaction.atomic():
        return _stage_members(run=run, sync=sync, unsuccessful_diffs=unsuccessful_diffs)


def _stage_members(*, run: SyncRun, sync: Sync, unsuccessful_diffs: list[int] | None) -> list[PagePlan]:
    membership_sql, membership_params = cohort_membership(cohort=sync.cohort).query.sql_with_params()
    staged = StagedMember._meta.db_table
    snapshot = SnapshotMember._meta.db_table
    distinct_id = "p.distinct_id"
    new_generation = writes_new_generation(run=run, sync=sync)
    with db.cursor() as cursor:
        if new_generation:
            cursor.execute(
                f"""INSERT INTO {snapshot} (sync_id, generation, profile_id, distinct_id)
                SELECT %s, %s, m.profile_id, p.distinct_id
                FROM ({membership_sql}) m {profile_join(profile_id="m.profile_id", columns=distinct_id, left=False)}""",
                [sync.pk, run.pk, *membership_params],
            )
            counts = {MemberOp.MEMBER: cursor.rowcount}
        else:
            # One pass gives both sides (FULL OUTER JOIN, docs/design.md: a hash or merge join under
            # any statistics). A diff keeps the change. A refresh over a delivered state keeps
            # the whole picture as `members` and whoever left as removals, for receivers whose
            # `members` only adds (docs/receiving.md).
            full = run.kind == SyncRun.Kind.FULL
            present_op = MemberOp.MEMBER if full else MemberOp.ADD
            change_only = "" if full else "WHERE m.profile_id IS NULL OR s.profile_id IS NULL"
            insert = f"""INSERT INTO {staged} (run_id, profile_id, op, distinct_id)
                SELECT %s, COALESCE(m.profile_id, s.profile_id),
                       CASE WHEN m.profile_id IS NULL THEN {MemberOp.REMOVE} ELSE {present_op} END,
                       COALESCE(p.distinct_id, s.distinct_id)
                FROM ({membership_sql}) m
                FULL OUTER JOIN (SELECT profile_id, distinct_id FROM {snapshot}
                                 WHERE sync_id = %s AND generation = %s) s
                    ON s.profile_id = m.profile_id
                {profile_join(profile_id="m.profile_id", columns=distinct_id)}
                {change_only}"""
            params = [run.pk, *membership_params, sync.pk, sync.snapshot_generation]
            if db.vendor == "postgresql":  # the counts come back with the INSERT: one round trip
                cursor.execute(f"WITH staged AS ({insert} RETURNING op) SELECT op, COUNT(*) FROM staged GROUP BY op",
                               params)
                counts = dict(cursor.fetchall())
            else:
                cursor.execute(insert, params)
                counts = _staged_counts(run)
    # The cohort's size follows from the plain diff; carried-over rows re-send state, not change.
    size = counts.get(MemberOp.MEMBER, 0) if run.kind == SyncRun.Kind.FULL else (
        sync.snapshot_size + counts.get(MemberOp.ADD, 0) - counts.get(MemberOp.REMOVE, 0)
    )
    if carry_over(run=run, sync=sync, membership_sql=membership_sql, membership_params=membership_params,
                  unsuccessful=unsuccessful_diffs):
        counts = _staged_counts(run)
    run.page_size = page_size_for(sync.connection)
    run.members_count = counts.get(MemberOp.MEMBER, 0)
    run.adds_count = counts.get(MemberOp.ADD, 0)
    run.removes_count = counts.get(MemberOp.REMOVE, 0)
    page_plans = run_page_plans(run=run, snapshot_generation=run.pk if new_generation else None)
    # total_pages > 0 marks the picture complete: from here on the run can be resumed.
    run.total_pages = sum(plan.pages for plan in page_plans)
    run.save(update_fields=["total_pages", "members_count", "adds_count", "removes_count", "page_size"])
    cohort_size_record(cohort=sync.cohort, size=size)
    return page_plans


def picture_in_snapshot_table(*, run: SyncRun, page_plans: list[PagePlan]) -> bool:
    """Whether the run staged into the snapshot table (writes_new_generation), from its page plans."""
    return any(plan.snapshot_generation == run.pk for plan in page_plans)


def staged_page_plans(*, run: SyncRun, sync: Sync) -> list[PagePlan]:
    """The page plans of a run staged earlier (a resumed run): its picture is where staging
    put it, the snapshot table under its run id (a first run) or the staging table."""
    in_snapshot_table = run.kind == SyncRun.Kind.FULL and SnapshotMember.objects.filter(
        sync_id=sync.pk, generation=run.pk).exists()
    return run_page_plans(run=run, snapshot_generation=run.pk if in_snapshot_table else None)


def writes_new_generation(*, run: SyncRun, sync: Sync) -> bool:
    """A full run over an empty delivered state stages straight into the snapshot table,
    under its run id as generation (see SnapshotMember.generation).

    A refresh of a non-empty snapshot stages as before, so its writes stay O(change). The
    answer cannot change during the run: only the claim holder writes the snapshot.
    """
    if run.kind != SyncRun.Kind.FULL:
        return False
    return not SnapshotMember.objects.filter(sync_id=sync.pk, generation=sync.snapshot_generation).exists()


def _staged_counts(run: SyncRun) -> dict[int, int]:
    with db.cursor() as cursor:
        cursor.execute(f"SELECT op, COUNT(*) FROM {StagedMember._meta.db_table} WHERE run_id = %s GROUP BY op",
                       [run.pk])
        return dict(cursor.fetchall())


def carry_over(*, run: SyncRun, sync: Sync, membership_sql: str, membership_params,
               unsuccessful: list[int] | None = None) -> bool:
    """Fold earlier unsuccessful diff runs into this one.

    Their pages may have reached the receiver although the snapshot did not move. Someone
    they added who has left again (or removed who has come back) now agrees with the
    snapshot, so the plain diff would never mention them and the receiver would keep the
    wrong state. A diff run re-sends their live state; a full run replaces everything, but
    only if it succeeds, so until then their rows stay.
    Returns whether rows were added to this run. `unsuccessful`: those runs' ids, if known
    (engine.run.run_history), else read here.
    """
    staged = StagedMember._meta.db_table
    # The run ids first (a handful), then their staged rows by index: a semi-join of the two
    # tables was planned, without statistics, as a scan of the runs for every staged row.
    if unsuccessful is None:
        unsuccessful = _unsuccessful_diff_run_ids(sync_id=sync.pk, but=run.pk)
    earlier = StagedMember.objects.filter(run_id__in=unsuccessful)
    if not unsuccessful or not earlier.exists():
        return False
    carried = 0
    if run.kind == SyncRun.Kind.DIFF:
        earlier_sql, earlier_params = earlier.values("profile_id").query.sql_with_params()
        with db.cursor() as cursor:
            cursor.execute(
                f"""INSERT INTO {staged} (run_id, profile_id, op, distinct_id)
                SELECT %s, c.profile_id,
                       CASE WHEN m.profile_id IS NULL THEN {MemberOp.REMOVE} ELSE {MemberOp.ADD} END,
                       COALESCE(p.distinct_id, (SELECT MAX(e.distinct_id) FROM {staged} e
                                                WHERE e.profile_id = c.profile_id AND e.run_id <> %s))
                FROM (SELECT x.profile_id FROM ({earlier_sql}) x
                      EXCEPT SELECT s.profile_id FROM {staged} s WHERE s.run_id = %s) c
                LEFT JOIN ({membership_sql}) m ON m.profile_id = c.profile_id
                {profile_join(profile_id="c.profile_id", columns="p.distinct_id")}
                WHERE TRUE""",
                # EXCEPT, not NOT EXISTS on the table being filled: a nested-loop anti-join
                # would rescan the rows this INSERT adds (quadratic; see campaigns.sending).
                [run.pk, run.pk, *earlier_params, run.pk, *membership_params],
            )
            carried = cursor.rowcount
        earlier.delete()  # this run's own rows now stand for them, also if it fails in turn
    # A full run leaves them: only its success covers them (drop_covered_staging).
    return carried > 0


def drop_covered_staging(*, sync_id: int, unsuccessful: list[int] | None = None) -> None:
    """A full run succeeded: the receiver holds the whole cohort, so what earlier unsuccessful
    diff runs knew (their carried-over staging rows) is covered and can go. By run id, through
    the index, as in carry_over: a semi-join read the whole staging table, the full run's own
    rows included. `unsuccessful`: those runs' ids, if known."""
    if unsuccessful is None:
        unsuccessful = _unsuccessful_diff_run_ids(sync_id=sync_id)
    if unsuccessful:
        StagedMember.objects.filter(run_id__in=unsuccessful).delete()


def _unsuccessful_diff_run_ids(*, sync_id: int, but: int | None = None) -> list[int]:
    """The sync's diff runs that did not succeed (their staging rows may carry over), but `but`."""
    return list(SyncRun.objects.filter(
        sync_id=sync_id, kind=SyncRun.Kind.DIFF,
        status__in=[SyncRun.Status.FAILED, SyncRun.Status.PAUSED, SyncRun.Status.RUNNING],
    ).exclude(pk=but).values_list("pk", flat=True))
