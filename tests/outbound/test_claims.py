"""The claim heartbeat (outbound.claims): a live run's lease is renewed from a thread of its own
whatever the run is doing; a claim taken away is noticed; nothing beats inside a transaction."""

import time

import pytest
from django.utils import timezone

from deliveries.models import Sync
from outbound.claims import claim_heartbeat, claim_take

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def short_lease(settings):
    settings.COHORTSYNC_CLAIM_LEASE_SECONDS = 2  # a beat every 0.5 s


def test_the_heartbeat_keeps_a_claim_alive_past_its_lease_while_the_run_is_busy(
        require_postgres, short_lease, make_sync):
    sync = make_sync(members=["A"])
    subject = Sync.objects.filter(pk=sync.pk)
    token = claim_take(subject=subject)

    with claim_heartbeat(subject=subject, token=token) as heartbeat:
        time.sleep(3)  # the main thread busy (a slow page) for longer than the lease
        claimed_until = subject.values_list("claimed_until", flat=True).get()

    assert heartbeat.beating and not heartbeat.lost
    assert claimed_until > timezone.now()  # renewed while the main thread slept


def test_a_claim_taken_away_is_noticed_by_the_heartbeat(require_postgres, short_lease, make_sync):
    sync = make_sync(members=["A"])
    subject = Sync.objects.filter(pk=sync.pk)
    token = claim_take(subject=subject)

    with claim_heartbeat(subject=subject, token=token) as heartbeat:
        subject.update(claimed_until=None, claim_token=None)  # an operator broke it; another run may take it
        claim_take(subject=subject)
        time.sleep(1.5)

    assert heartbeat.lost


def test_without_a_heartbeat_the_claim_lapses_after_its_lease(require_postgres, short_lease, make_sync):
    """The other half of the first test: what the heartbeat prevents, and what frees a dead holder's sync."""
    sync = make_sync(members=["A"])
    subject = Sync.objects.filter(pk=sync.pk)
    claim_take(subject=subject)
    time.sleep(2.5)

    assert claim_take(subject=subject) is not None  # lapsed: free for the next run


@pytest.mark.django_db
def test_inside_a_transaction_nothing_beats_and_the_run_renews_inline(short_lease, make_sync):
    sync = make_sync(members=["A"])
    subject = Sync.objects.filter(pk=sync.pk)
    token = claim_take(subject=subject)

    with claim_heartbeat(subject=subject, token=token) as heartbeat:
        pass

    assert not heartbeat.beating
