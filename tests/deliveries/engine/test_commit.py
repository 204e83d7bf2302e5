"""Commit: success advances the delivered state by the size of the change; only the claim
holder commits (deliveries/engine/commit.py)."""

import uuid

import pytest

from deliveries import services
from deliveries.engine import commit_snapshot, finish_run, stage_members
from deliveries.models import SnapshotMember, SyncRun
from outbound.claims import ClaimLost
from outbound.policy import Outcome, Verdict

pytestmark = pytest.mark.django_db


def snapshot(sync) -> set[str]:
    return set(SnapshotMember.objects.filter(sync=sync, generation=sync.snapshot_generation)
               .values_list("distinct_id", flat=True))


def test_a_diff_commit_applies_adds_and_removes_and_returns_the_new_size(started):
    sync, run = started(["a", "c"], delivered=["a", "b"])
    stage_members(run=run, sync=sync)
    run.refresh_from_db()

    size = commit_snapshot(run=run, sync=sync)

    assert size == 2
    assert snapshot(sync) == {"a", "c"}


def test_a_first_full_commit_makes_the_run_generation_current(started):
    sync, run = started(["a", "b"])
    stage_members(run=run, sync=sync)
    run.refresh_from_db()

    assert commit_snapshot(run=run, sync=sync) == 2
    sync.refresh_from_db()
    assert sync.snapshot_generation == run.pk and snapshot(sync) == {"a", "b"}


def test_finish_commits_only_for_the_claim_holder(started):
    sync, run = started(["a"], delivered=[])
    token = services.sync_claim(sync_id=sync.pk, require_due=False)
    stage_members(run=run, sync=sync)

    with pytest.raises(ClaimLost):
        finish_run(run=run, sync=sync, verdict=Verdict(Outcome.SUCCESS), token=uuid.uuid4())
    assert SyncRun.objects.get(pk=run.pk).status == SyncRun.Status.RUNNING

    finish_run(run=run, sync=sync, verdict=Verdict(Outcome.SUCCESS), token=token)
    sync.refresh_from_db()
    assert SyncRun.objects.get(pk=run.pk).status == SyncRun.Status.SUCCEEDED
    assert (sync.snapshot_size, snapshot(sync)) == (1, {"a"})
