"""Records: attempt rows and progress with each delivered page, failures at once, the claim held while
sending (deliveries/engine/records.py on outbound.records)."""

import uuid

import pytest

from deliveries import services
from deliveries.engine import RunRecords
from deliveries.models import SyncRun
from outbound.policy import Outcome, Verdict
from outbound.sender import PostResult
from tests.factories import SyncRunFactory

pytestmark = pytest.mark.django_db


def result(outcome=Outcome.SUCCESS, status=200) -> PostResult:
    return PostResult(verdict=Verdict(outcome), http_status=status, latency_ms=5, response_excerpt="")


def tried(records, page, attempt=1, outcome=Outcome.SUCCESS, status=200):
    records.attempt(page_number=page, page_id=str(uuid.uuid4()), action="members", attempt_number=attempt,
                    result=result(outcome, status))


def test_each_delivered_page_is_written_with_its_attempts_at_once():
    """A worker killed after any page leaves an exact record: its resumption starts after it."""
    run = SyncRunFactory(pages_delivered=0)
    records = RunRecords(run)
    for page in range(1, 4):
        tried(records, page)
        assert run.attempts.count() == page - 1  # a success goes out with its page's progress
        records.page_delivered(page)

        assert run.attempts.count() == page
        assert SyncRun.objects.get(pk=run.pk).pages_delivered == page


def test_a_failure_is_written_at_once_so_it_shows_live():
    run = SyncRunFactory(pages_delivered=0)
    records = RunRecords(run)

    tried(records, 1, outcome=Outcome.TRANSIENT, status=503)
    assert list(run.attempts.values_list("outcome", "http_status")) == [("transient", 503)]

    tried(records, 1, attempt=2)
    records.page_delivered(1)
    assert list(run.attempts.order_by("attempt_number").values_list("attempt_number", flat=True)) == [1, 2]


def test_the_claim_is_held_only_by_its_token():
    run = SyncRunFactory()
    token = services.sync_claim(sync_id=run.sync_id, require_due=False)

    assert RunRecords(run).hold_claim(token)
    assert not RunRecords(run).hold_claim(uuid.uuid4())
