"""Commit: finish a run; on success, advance the delivered state by the size of the change."""

from django.db import connection as db

from outbound.claims import ClaimLost
from outbound.policy import Outcome, Verdict
from outbound.runs import run_finish

from .. import services
from ..models import MemberOp, SnapshotMember, StagedMember, Sync, SyncRun
from ..signals import sync_run_finished
from .stage import drop_covered_staging, writes_new_generation

ANALYZE_AFTER_WRITING = 10_000  # rows a first run wrote to the snapshot table


def finish_run(*, run: SyncRun, sync: Sync, verdict: Verdict, token, in_snapshot_table: bool | None = None,
               unsuccessful_diffs: list[int] | None = None) -> None:
    """Record the verdict; on success commit the delivered state and drop the run's staged rows,
    in one transaction. What the caller knows is not asked of the database again:
    `in_snapshot_table` (stage.picture_in_snapshot_table) and the sync's `unsuccessful_diffs`
    (drop_covered_staging)."""
    if in_snapshot_table is None:
        in_snapshot_table = writes_new_generation(run=run, sync=sync)
    if verdict.outcome is Outcome.PAUSE:  # the message says what resuming will do
        verdict = Verdict(verdict.outcome, services.sync_pause_message(message=verdict.message, status=verdict.code),
                          verdict.code)

    def succeeded() -> None:
        # A run whose lease expired may have been superseded: only the holder commits.
        if not Sync.objects.select_for_update().filter(pk=sync.pk, claim_token=token).exists():
            raise ClaimLost(f"sync {sync.pk}: claim lost before the snapshot was committed")
        snapshot_size = commit_snapshot(run=run, sync=sync, in_snapshot_table=in_snapshot_table)
        services.sync_record_success(sync=sync, snapshot_at=run.started_at, snapshot_size=snapshot_size,
                                     full=run.kind == SyncRun.Kind.FULL)
        if run.kind == SyncRun.Kind.FULL:
            drop_covered_staging(sync_id=sync.pk, unsuccessful=unsuccessful_diffs)
        if not in_snapshot_table:  # its picture is delivered; a run that stopped keeps it for its resumption
            StagedMember.objects.filter(run_id=run.pk).delete()

    run_finish(
        run=run, verdict=verdict, succeeded=succeeded,
        paused=lambda: services.sync_pause(sync=sync, message=verdict.message, status=verdict.code, run=run),
        failed=lambda: services.sync_record_failure(sync=sync, message=verdict.message, status=verdict.code, run=run),
    )
    sync_run_finished.send(sender=SyncRun, sync_id=sync.pk, run_id=run.pk, status=run.status, run=run)


def commit_snapshot(*, run: SyncRun, sync: Sync, in_snapshot_table: bool | None = None) -> int:
    """Advance the delivered state to the run's picture; writes O(change) (docs/design.md)."""
    if in_snapshot_table is None:
        in_snapshot_table = writes_new_generation(run=run, sync=sync)
    if in_snapshot_table:
        # The run's members are already in the snapshot table: make them the delivered state.
        # The old generation was empty, so there is nothing to delete.
        Sync.objects.filter(pk=sync.pk).update(snapshot_generation=run.pk)
        sync.snapshot_generation = run.pk
        if run.members_count >= ANALYZE_AFTER_WRITING and db.vendor == "postgresql":
            # Statistics for what this run bulk-wrote, so the next run's plans see the
            # generation's real size (a table never analysed, or analysed while empty, says
            # "a row or two" and the removals' DELETE scans the whole generation).
            with db.cursor() as cursor:
                cursor.execute(f"ANALYZE {SnapshotMember._meta.db_table}")
        return run.members_count
    staged = StagedMember._meta.db_table
    snapshot = SnapshotMember._meta.db_table
    generation = sync.snapshot_generation
    # A full run stages everyone as `members` (most already held) and whoever left as removals.
    kept = MemberOp.MEMBER if run.kind == SyncRun.Kind.FULL else MemberOp.ADD
    # Both statements are driven by the run's staged rows through the snapshot's unique index,
    # with no join the planner could turn into a loop (a snapshot table never analysed since a
    # first run wrote 1M rows made `profile_id IN (SELECT …)` a nested loop over all of them
    # for every removal). PostgreSQL: an array of the removed ids, probed in the index once the
    # first run's ANALYZE has told the planner how large the generation is; without any
    # statistics, at worst one pass over the generation, never one per removal.
    removed_ids = (f"= ANY(ARRAY(SELECT profile_id FROM {staged} WHERE run_id = %s AND op = {MemberOp.REMOVE}))"
                   if db.vendor == "postgresql" else
                   f"IN (SELECT profile_id FROM {staged} WHERE run_id = %s AND op = {MemberOp.REMOVE})")
    with db.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {snapshot} WHERE sync_id = %s AND generation = %s AND profile_id {removed_ids}",
            [sync.pk, generation, run.pk],
        )
        removed = cursor.rowcount
        # ON CONFLICT rather than an anti-join (an index probe a row, whatever the planner
        # believes); carried-over rows and a refresh's members are mostly held already.
        cursor.execute(
            f"""INSERT INTO {snapshot} (sync_id, generation, profile_id, distinct_id)
            SELECT %s, %s, profile_id, distinct_id FROM {staged} WHERE run_id = %s AND op = {kept}
            ON CONFLICT (sync_id, generation, profile_id) DO NOTHING""",
            [sync.pk, generation, run.pk],
        )
        added = cursor.rowcount
    if run.kind == SyncRun.Kind.FULL:
        return run.members_count
    return sync.snapshot_size + added - removed
