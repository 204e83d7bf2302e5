"""Plan: which kind of run (full or diff) and, once staged, how many pages of each action."""

import math
import uuid
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


def page_size_for(connection) -> int:
    """The connection's page size, never above the contract's 1000."""
    return min(connection.page_size or policy.PAGE_SIZE, policy.PAGE_SIZE)


def run_ops(*, kind: str, removes: int) -> list[MemberOp]:
    """The actions of a run, in sending order.

    A diff sends adds first, then removes (docs/contract.md). A full run sends `members`, then,
    when it replaced a non-empty delivered state, `remove_members` for whoever left, in a
    session of their own (receivers whose `members` only adds; docs/receiving.md).
    """
    if kind == SyncRun.Kind.FULL:
        return [MemberOp.MEMBER, MemberOp.REMOVE] if removes else [MemberOp.MEMBER]
    return [MemberOp.ADD, MemberOp.REMOVE]


def removal_session_id(session_id: uuid.UUID) -> uuid.UUID:
    """The session of a full run's `remove_members` pages: derived, so every retry sends the same."""
    return uuid.uuid5(session_id, "remove_members")


def page_sessions(*, run: SyncRun, page_plans: list[PagePlan]) -> list[tuple[uuid.UUID, list[PagePlan]]]:
    """The run's pages grouped by the session (`mixpanel_session_id` and `page_info`) they go out in.

    A run is one session, except a full run's removals: they get a session of their own, so a
    receiver that assembles a refresh until page_count == total_pages of `members` pages
    still sees a complete set of them.
    """
    if run.kind == SyncRun.Kind.FULL:
        return [(run.session_id if plan.op == MemberOp.MEMBER else removal_session_id(run.session_id), [plan])
                for plan in page_plans]
    return [(run.session_id, page_plans)]


@dataclass(frozen=True)
class PagePosition:
    """Where page `page_count` (1-based, run-wide) of a run falls: its plan, its place in the
    plan, its session and its place there."""

    plan: PagePlan
    index_in_plan: int  # 0-based
    session_id: uuid.UUID
    session_page: int  # 1-based, as page_info counts
    session_pages: int


def page_position(*, run: SyncRun, page_plans: list[PagePlan], page_count: int) -> PagePosition:
    before = 0
    for session_id, plans in page_sessions(run=run, page_plans=page_plans):
        session_pages, session_before = sum(plan.pages for plan in plans), 0
        for plan in plans:
            if page_count <= before + plan.pages:
                index = page_count - before - 1
                return PagePosition(plan, index, session_id, session_before + index + 1, session_pages)
            before += plan.pages
            session_before += plan.pages
    raise ValueError(f"the run has {before} pages, not {page_count}")


def run_page_plans(*, run: SyncRun, snapshot_generation: int | None) -> list[PagePlan]:
    """A staged run's pages, from what staging recorded on it (the counts and the page size):
    the same plans whenever they are computed, so a resumed run cuts the same pages."""
    counts = {MemberOp.MEMBER: run.members_count, MemberOp.ADD: run.adds_count, MemberOp.REMOVE: run.removes_count}
    page_size = run.page_size or policy.PAGE_SIZE
    return [PagePlan(op, counts[op], page_size, snapshot_generation)
            for op in run_ops(kind=run.kind, removes=run.removes_count)]


def delivered_counts(*, run: SyncRun, page_size: int) -> dict[MemberOp, int]:
    """How many members of each action reached the receiver: pages are filled in order,
    so the run's counts and its delivered pages say it (the CLI's report of a stopped run)."""
    counts = {MemberOp.MEMBER: run.members_count, MemberOp.ADD: run.adds_count, MemberOp.REMOVE: run.removes_count}
    pages_left = run.pages_delivered
    delivered = {}
    for op in run_ops(kind=run.kind, removes=run.removes_count):
        plan = PagePlan(op, counts[op], page_size)
        delivered[op] = min(counts[op], min(pages_left, plan.pages) * page_size)
        pages_left = max(0, pages_left - plan.pages)
    return delivered


def plan_run(*, sync: Sync, full: bool = False) -> RunPlan:
    if sync.snapshot_at is None:
        return RunPlan(SyncRun.Kind.FULL, "first run")
    if full or sync.force_full:
        return RunPlan(SyncRun.Kind.FULL, "full refresh")
    if timezone.now() - sync.snapshot_at > timedelta(hours=settings.COHORTSYNC_SNAPSHOT_MAX_AGE_HOURS):
        return RunPlan(SyncRun.Kind.FULL, "snapshot expired")
    return RunPlan(SyncRun.Kind.DIFF, "diff")
