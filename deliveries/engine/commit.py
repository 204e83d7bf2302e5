"""Commit: finish a run; on success, advance the delivered state by the size of the change."""

from django.db import connection as db, transaction
from django.utils import timezone

from .. import services
from ..models import MemberOp, SnapshotMember, StagedMember, Sync, SyncRun
from ..policy import Outcome, Verdict
from ..signals import sync_run_finished
from .records import ClaimLost
from .stage import drop_covered_staging, writes_new_generation


def finish_run(*, run: SyncRun, sync: Sync, verdict: Verdict, token) -> None:
    now = timezone.now()
    if verdict.outcome is Outcome.SUCCESS:
        with transaction.atomic():
            # A run whose lease expired may have been superseded: only the holder commits.
            if not Sync.objects.select_for_update().filter(pk=sync.pk, claim_token=token).exists():
                raise ClaimLost(f"sync {sync.pk}: claim lost before the snapshot was committed")
            snapshot_size = commit_snapshot(run=run, sync=sync)
            SyncRun.objects.filter(pk=run.pk).update(
                status=SyncRun.Status.SUCCEEDED, finished_at=now, error_message=verdict.message
            )
            services.sync_record_success(sync=sync, snapshot_at=run.started_at, snapshot_size=snapshot_size,
                                         full=run.kind == SyncRun.Kind.FULL)
            if run.kind == SyncRun.Kind.FULL:
                drop_covered_staging(sync_id=sync.pk)
        run.status = SyncRun.Status.SUCCEEDED
    elif verdict.outcome is Outcome.PAUSE:
        SyncRun.objects.filter(pk=run.pk).update(
            status=SyncRun.Status.PAUSED, finished_at=now, error_message=verdict.message, http_status=verdict.code
        )
        run.status = SyncRun.Status.PAUSED
        services.sync_pause(sync=sync, message=verdict.message, status=verdict.code, run=run)
    else:
        SyncRun.objects.filter(pk=run.pk).update(
            status=SyncRun.Status.FAILED, finished_at=now, error_message=verdict.message, http_status=verdict.code
        )
        run.status = SyncRun.Status.FAILED
        services.sync_record_failure(sync=sync, message=verdict.message, status=verdict.code)
    run.finished_at = now
    run.error_message = verdict.message
    sync_run_finished.send(sender=SyncRun, sync_id=sync.pk, run_id=run.pk, status=run.status)


def commit_snapshot(*, run: SyncRun, sync: Sync) -> int:
    """Advance the delivered state to the run's picture; writes O(change) (DESIGN.md)."""
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
