"""Pages: an action's members a page at a time, in profile order (deliveries/engine/pages.py)."""

import pytest

from deliveries.engine import PagePlan, stage_members, stream_pages
from deliveries.models import MemberOp

pytestmark = pytest.mark.django_db


def test_pages_come_in_profile_order_with_the_page_size_and_nothing_twice(started):
    members = [f"u{n:02d}" for n in range(7)]
    sync, run = started(members)
    (plan,) = stage_members(run=run, sync=sync)
    small = PagePlan(plan.op, plan.members, page_size=3, snapshot_generation=plan.snapshot_generation)

    pages = list(stream_pages(run=run, plan=small, properties=()))

    assert [len(page) for page in pages] == [3, 3, 1]
    assert [row.distinct_id for page in pages for row in page] == members
    assert pages[0][0].email == "u00@example.com"


def test_removals_are_read_from_the_staged_picture(started):
    sync, run = started(["a"], delivered=["a", "gone"])
    plans = stage_members(run=run, sync=sync)
    removals = next(p for p in plans if p.op == MemberOp.REMOVE)

    (page,) = stream_pages(run=run, plan=removals, properties=())

    assert [row.distinct_id for row in page] == ["gone"]
