"""Commit: finish a run; on success, advance the delivered state by the size of the change."""

from django.db import connection as db

from outbound.claims import ClaimLost
from outbound.policy import Verdict
from outbound.runs import run_finish

from .. import services
from ..models import MemberOp, SnapshotMember, StagedMember, Sync, SyncRun
from ..signals import sync_run_finished
from .stage import writes_new_generation


def finish_run(*, run: SyncRun, sync: Sync, verdict: Verdict, token) -> None:
    def succeeded() -> None:
        # A run whose lease expired may have been superseded: only the holder commits.
        if not Sync.objects.select_for_update().filter(pk=sync.pk, claim_token=token).exists():
            raise ClaimLost(f"sync {sync.pk}: claim lost before the snapshot was committed")
        snapshot_size = commit_snapshot(run=run, sync=sync)
        services.sync_record_success(sync=sync, snapshot_at=run.started_at, snapshot_size=snapshot_size)

    run_finish(
        run=run, verdict=verdict, succeeded=succeeded,
        paused=lambda: services.sync_pause(sync=sync, message=verdict.message, status=verdict.code, run=run),
        failed=lambda: services.sync_record_failure(sync=sync, message=verdict.message, status=verdict.code),
    )
    sync_run_finished.send(sender=SyncRun, sync_id=sync.pk, run_id=run.pk, status=run.status)


def commit_snapshot(*, run: SyncRun, sync: Sync) -> int:
    """Advance the delivered state to the run's picture; writes O(change) (docs/design.md)."""
    if writes_new_generation(run=run, sync=sync):
        # The run's members are already in the snapshot table: make them the delivered state.
        # The old generation was empty, so there is nothing to delete.
        Sync.objects.filter(pk=sync.pk).update(snapshot_generation=run.pk)
        sync.snapshot_generation = run.pk
        return run.members_count
    staged = StagedMember._meta.db_table
    snapshot = SnapshotMember._meta.db_table
    generation = sync.snapshot_generation
    with db.cursor() as cursor:
        if run.kind == SyncRun.Kind.FULL:
            cursor.execute(
                f"""DELETE FROM {snapshot} WHERE sync_id = %s AND generation = %s AND NOT EXISTS (
                    SELECT 1 FROM {staged} st WHERE st.run_id = %s AND st.profile_id = {snapshot}.profile_id)""",
                [sync.pk, generation, run.pk],
            )
            # ON CONFLICT rather than an anti-join: a planner that saw the snapshot table
            # empty once would loop over it for every inserted row (quadratic).
            cursor.execute(
                f"""INSERT INTO {snapshot} (sync_id, generation, profile_id, distinct_id)
                SELECT %s, %s, st.profile_id, st.distinct_id FROM {staged} st WHERE st.run_id = %s
                ON CONFLICT (sync_id, generation, profile_id) DO NOTHING""",
                [sync.pk, generation, run.pk],
            )
            return run.members_count
        cursor.execute(
            f"""DELETE FROM {snapshot} WHERE sync_id = %s AND generation = %s AND profile_id IN (
                SELECT profile_id FROM {staged} WHERE run_id = %s AND op = {MemberOp.REMOVE})""",
            [sync.pk, generation, run.pk],
        )
        removed = cursor.rowcount
        # Carried-over rows may re-add someone the snapshot already holds: not an error.
        cursor.execute(
            f"""INSERT INTO {snapshot} (sync_id, generation, profile_id, distinct_id)
            SELECT %s, %s, profile_id, distinct_id FROM {staged} WHERE run_id = %s AND op = {MemberOp.ADD}
            ON CONFLICT (sync_id, generation, profile_id) DO NOTHING""",
            [sync.pk, generation, run.pk],
        )
        added = cursor.rowcount
    return sync.snapshot_size + added - removed
