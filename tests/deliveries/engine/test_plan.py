"""Plan: full or diff, and how many pages an action takes (deliveries/engine/plan.py)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from deliveries.engine import PagePlan, RunPlan, plan_run
from deliveries.models import MemberOp, SyncRun
from outbound import policy
from tests.factories import SyncFactory

pytestmark = pytest.mark.django_db


def test_a_first_run_is_full_and_later_ones_diff_unless_refreshed_or_expired(settings):
    settings.COHORTSYNC_SNAPSHOT_MAX_AGE_HOURS = 24
    now = timezone.now()

    assert plan_run(sync=SyncFactory(snapshot_at=None)) == RunPlan(SyncRun.Kind.FULL, "first run")
    assert plan_run(sync=SyncFactory(snapshot_at=now)) == RunPlan(SyncRun.Kind.DIFF, "diff")
    assert plan_run(sync=SyncFactory(snapshot_at=now), full=True) == RunPlan(SyncRun.Kind.FULL, "full refresh")
    assert plan_run(sync=SyncFactory(snapshot_at=now, force_full=True)) == RunPlan(SyncRun.Kind.FULL, "full refresh")
    expired = SyncFactory(snapshot_at=now - timedelta(hours=25))
    assert plan_run(sync=expired) == RunPlan(SyncRun.Kind.FULL, "snapshot expired")


@pytest.mark.parametrize("members, pages", [(0, 1), (1, 1), (1000, 1), (1001, 2), (2500, 3)])
def test_pages_of_an_action_at_least_one_so_an_empty_diff_still_shows_life(members, pages):
    assert PagePlan(MemberOp.ADD, members).pages == pages
    assert PagePlan(MemberOp.ADD, members).page_size == policy.PAGE_SIZE
