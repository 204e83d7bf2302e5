"""Fixtures for testing the engine's steps one at a time (deliveries/engine/)."""

import pytest

from deliveries.engine import plan_run
from deliveries.models import Sync, SyncRun
from outbound.runs import run_start
from tests.conftest import run_now, set_members


@pytest.fixture
def started(make_sync):
    """A started run of a sync over these members, as sync_run would have it after the claim.

    `delivered` first runs the sync end to end with those members, so the run is a diff."""

    def factory(members, *, delivered=None):
        sync = make_sync(members=delivered if delivered is not None else members)
        if delivered is not None:
            assert run_now(sync).status == SyncRun.Status.SUCCEEDED
            set_members(sync.cohort, members)
        sync = Sync.objects.select_related("cohort", "connection").get(pk=sync.pk)
        plan = plan_run(sync=sync)
        run = run_start(runs=sync.runs, run_id=None, kind=plan.kind, reason=plan.reason, trigger="manual")
        return sync, run

    return factory
