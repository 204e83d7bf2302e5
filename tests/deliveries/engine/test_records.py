"""Records: attempt rows and progress with each delivered page, failures at once, the claim held while
sending (deliveries/engine/records.py on outbound.records)."""

import time
import uuid

import pytest
from django.db import connection as db
from django.test.utils import CaptureQueriesContext

from deliveries import services
from deliveries.engine import RunRecords
from deliveries.engine.records import CLAIM_CONFIRMED_FRESH_SECONDS
from deliveries.models import Sync, SyncRun
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


def test_a_page_write_answers_the_next_claim_check_until_the_claim_is_lost():
    """Each write of attempts and progress also asks whether the claim is held: an answer less
    than a second old stands for the check before the next try; a lost claim stays lost."""
    run = SyncRunFactory(pages_delivered=0)
    token = services.sync_claim(sync_id=run.sync_id, require_due=False)
    records = RunRecords(run, token=token)
    records.renewed_at = time.monotonic()  # as if just renewed: no inline renewal now

    tried(records, 1)
    records.page_delivered(1)
    with CaptureQueriesContext(db) as checks:
        assert records.hold_claim(token)
    assert len(checks) == 0

    Sync.objects.filter(pk=run.sync_id).update(claim_token=uuid.uuid4())  # another worker took it
    assert records.hold_claim(token)  # not asked: the last answer is fresh (a real takeover takes a lease)
    tried(records, 2)
    records.page_delivered(2)  # progress is recorded whoever holds the claim now
    assert SyncRun.objects.get(pk=run.pk).pages_delivered == 2
    with CaptureQueriesContext(db) as checks:
        assert not records.hold_claim(token)
    assert len(checks) == 0


def test_a_stale_answer_is_checked_again():
    run = SyncRunFactory(pages_delivered=0)
    token = services.sync_claim(sync_id=run.sync_id, require_due=False)
    records = RunRecords(run, token=token)
    records.renewed_at = time.monotonic()
    records.page_delivered(1)
    records.held_at -= CLAIM_CONFIRMED_FRESH_SECONDS

    Sync.objects.filter(pk=run.sync_id).update(claim_token=uuid.uuid4())
    assert not records.hold_claim(token)
