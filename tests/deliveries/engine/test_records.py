"""Records: attempt rows and progress in batches, failures at once, the claim held while
sending (deliveries/engine/records.py on outbound.records)."""

import uuid

import pytest

from deliveries import services
from deliveries.engine import RunRecords
from deliveries.models import SyncRun
from outbound.models import DeliveryAttempt
from outbound.policy import Outcome, Verdict
from outbound.sender import PostResult
from tests.factories import SyncRunFactory

pytestmark = pytest.mark.django_db


def result(outcome=Outcome.SUCCESS, status=200) -> PostResult:
    return PostResult(verdict=Verdict(outcome), http_status=status, latency_ms=5, response_excerpt="")


def tried(records, page, attempt=1, outcome=Outcome.SUCCESS, status=200):
    records.attempt(page_number=page, page_id=str(uuid.uuid4()), action="members", attempt_number=attempt,
                    result=result(outcome, status))


def test_first_try_successes_are_written_in_batches_and_progress_with_them():
    run = SyncRunFactory(pages_delivered=0)
    records = RunRecords(run)
    for page in range(1, RunRecords.FLUSH_EVERY_PAGES):
        tried(records, page)
        records.page_delivered(page)

    assert not DeliveryAttempt.objects.exists()
    assert SyncRun.objects.get(pk=run.pk).pages_delivered == 0

    tried(records, RunRecords.FLUSH_EVERY_PAGES)
    records.page_delivered(RunRecords.FLUSH_EVERY_PAGES)

    assert run.attempts.count() == RunRecords.FLUSH_EVERY_PAGES
    # The 50th attempt flushed the progress as it stood (49 pages); the end of the run writes the rest.
    assert SyncRun.objects.get(pk=run.pk).pages_delivered == RunRecords.FLUSH_EVERY_PAGES - 1
    records.flush()
    assert SyncRun.objects.get(pk=run.pk).pages_delivered == RunRecords.FLUSH_EVERY_PAGES


def test_a_failure_or_a_retry_is_written_at_once_so_it_shows_live():
    run = SyncRunFactory()
    records = RunRecords(run)

    tried(records, 1, outcome=Outcome.TRANSIENT, status=503)
    assert list(run.attempts.values_list("outcome", "http_status")) == [("transient", 503)]

    tried(records, 1, attempt=2)
    assert run.attempts.count() == 2


def test_the_claim_is_held_only_by_its_token():
    run = SyncRunFactory()
    token = services.sync_claim(sync_id=run.sync_id, require_due=False)

    assert RunRecords(run).hold_claim(token)
    assert not RunRecords(run).hold_claim(uuid.uuid4())
