"""Stage: the run's fixed picture, computed in SQL (deliveries/engine/stage.py)."""

import pytest

from deliveries.engine import carry_over, stage_members, writes_new_generation
from deliveries.models import MemberOp, SnapshotMember, StagedMember, SyncRun
from tests.conftest import set_members

pytestmark = pytest.mark.django_db


def staged(run) -> set[tuple[int, str]]:
    return set(StagedMember.objects.filter(run_id=run.pk).values_list("op", "distinct_id"))


def test_a_first_full_run_stages_straight_into_a_new_snapshot_generation(started):
    sync, run = started(["a", "b", "c"])

    assert writes_new_generation(run=run, sync=sync)
    plans = stage_members(run=run, sync=sync)

    assert [(p.op, p.members, p.snapshot_generation) for p in plans] == [(MemberOp.MEMBER, 3, run.pk)]
    assert set(SnapshotMember.objects.filter(sync=sync, generation=run.pk).values_list("distinct_id", flat=True)) == {
        "a", "b", "c"}
    assert not StagedMember.objects.filter(run_id=run.pk).exists()
    run.refresh_from_db()
    assert (run.members_count, run.total_pages) == (3, 1)


def test_a_diff_run_stages_who_joined_and_who_left_adds_first(started):
    sync, run = started(["a", "c", "d"], delivered=["a", "b"])

    plans = stage_members(run=run, sync=sync)

    assert run.kind == SyncRun.Kind.DIFF
    assert [(p.op, p.members) for p in plans] == [(MemberOp.ADD, 2), (MemberOp.REMOVE, 1)]
    assert staged(run) == {(MemberOp.ADD, "c"), (MemberOp.ADD, "d"), (MemberOp.REMOVE, "b")}
    run.refresh_from_db()
    assert (run.adds_count, run.removes_count, run.total_pages) == (2, 1, 2)


def test_carry_over_resends_the_live_state_of_whom_a_failed_diff_run_touched(started):
    sync, failed = started(["a", "x"], delivered=["a"])
    stage_members(run=failed, sync=sync)  # stages x as an add
    SyncRun.objects.filter(pk=failed.pk).update(status=SyncRun.Status.FAILED)
    set_members(sync.cohort, ["a"])  # x left again: the plain diff would say nothing
    run = SyncRun.objects.create(sync=sync, kind=SyncRun.Kind.DIFF, status=SyncRun.Status.RUNNING)

    plans = stage_members(run=run, sync=sync)

    assert staged(run) == {(MemberOp.REMOVE, "x")}
    assert [(p.op, p.members) for p in plans] == [(MemberOp.ADD, 0), (MemberOp.REMOVE, 1)]
    assert not StagedMember.objects.filter(run_id=failed.pk).exists()  # folded in, once
    assert not carry_over(run=run, sync=sync, membership_sql="SELECT 1 AS profile_id", membership_params=[])
