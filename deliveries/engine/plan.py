"""Plan: which kind of run (full or diff) and, once staged, how many pages of each action."""

import math
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from outbound import policy

from ..models import MemberOp, Sync, SyncRun

ACTIONS = {MemberOp.MEMBER: "members", MemberOp.ADD: "add_members", MemberOp.REMOVE: "remove_members"}


@dataclass(frozen=True)
class RunPlan:
    kind: str  # SyncRun.Kind
    reason: str


@dataclass(frozen=True)
class PagePlan:
    """Pages of one action in a run; at least one, so an empty diff still shows life."""

    op: MemberOp
    members: int
    page_size: int = policy.PAGE_SIZE
    # Set when the pages come from this snapshot generation rather than the staging table.
    snapshot_generation: int | None = None

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.members / self.page_size))


def plan_run(*, sync: Sync, full: bool = False) -> RunPlan:
    if sync.snapshot_at is None:
        return RunPlan(SyncRun.Kind.FULL, "first run")
    if full or sync.force_full:
        return RunPlan(SyncRun.Kind.FULL, "full refresh")
    if timezone.now() - sync.snapshot_at > timedelta(hours=settings.COHORTSYNC_SNAPSHOT_MAX_AGE_HOURS):
        return RunPlan(SyncRun.Kind.FULL, "snapshot expired")
    return RunPlan(SyncRun.Kind.DIFF, "diff")
