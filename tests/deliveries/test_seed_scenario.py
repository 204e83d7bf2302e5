"""The reference scenario of docs/contract.md, step by step (the first run is a full `members`
load, where the compatible format's own scenario shows an add page)."""

import pytest

from deliveries.models import SyncRun
from tests.conftest import run_now, set_members

pytestmark = pytest.mark.django_db


def ids(request):
    return sorted(m["mixpanel_distinct_id"] for m in request.members)


def test_simple_sync_scenario(make_sync, receiver):
    sync = make_sync(members=["A", "B", "C", "D"])

    # T: the whole cohort.
    run = run_now(sync)
    assert run.status == SyncRun.Status.SUCCEEDED
    assert [r.action for r in receiver.requests] == ["members"]
    assert ids(receiver.requests[0]) == ["A", "B", "C", "D"]
    receiver.clear()

    # T+0.1h B, D leave; T+0.2h E, F join; T+0.5h the diff: adds first, then removes.
    set_members(sync.cohort, ["A", "C", "E", "F"])
    run = run_now(sync)
    assert run.status == SyncRun.Status.SUCCEEDED
    assert [r.action for r in receiver.requests] == ["add_members", "remove_members"]
    assert ids(receiver.requests[0]) == ["E", "F"]
    assert ids(receiver.requests[1]) == ["B", "D"]
    assert {r.session_id for r in receiver.requests} == {str(run.session_id)}
    assert [r.page_info for r in receiver.requests] == [
        {"total_pages": 2, "page_count": 1},
        {"total_pages": 2, "page_count": 2},
    ]
    receiver.clear()

    # T+1h, nothing changed: one empty add page and one empty remove page.
    run = run_now(sync)
    assert [r.action for r in receiver.requests] == ["add_members", "remove_members"]
    assert [r.members for r in receiver.requests] == [[], []]
