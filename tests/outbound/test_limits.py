"""outbound.limits in one process: both stores (the database, and Redis when configured) space
reservations by the rate, share a Retry-After, and count run slots; the sender calls them."""

import uuid

import pytest

from outbound import limits
from outbound.sender import Destination, open_session, post_with_retries
from tests.support.receiver import Reply

pytestmark = pytest.mark.django_db(transaction=True)

CONNECTION = 990_001  # an id no factory makes: the stores key by connection id only


@pytest.fixture(params=["database", "redis"])
def store(request, settings):
    if request.param == "redis":
        request.getfixturevalue("require_redis")
        settings.COHORTSYNC_LIMITS_REDIS_URL = settings.CELERY_BROKER_URL
        backend = limits.store()
        backend.client.delete(*(backend._key(CONNECTION, what) for what in ("next", "not_before", "slots")))
    else:
        settings.COHORTSYNC_LIMITS_REDIS_URL = ""
    return limits.store()


def test_the_store_follows_the_setting(store, settings):
    assert isinstance(store, limits.RedisStore if settings.COHORTSYNC_LIMITS_REDIS_URL else limits.DatabaseStore)


def test_reservations_are_spaced_by_the_rate(store):
    waits = [store.reserve(CONNECTION, 0.5) for _ in range(3)]
    assert waits[0] < 0.1
    assert 0.35 < waits[1] < 0.55 and 0.85 < waits[2] < 1.05  # generous: a reservation takes milliseconds


def test_a_retry_after_holds_back_every_reservation_and_never_shortens(store):
    store.hold_off(CONNECTION, 5)
    store.hold_off(CONNECTION, 1)  # a shorter one later does not cut the first short
    assert 4.5 < store.reserve(CONNECTION, 0.0) <= 5.0
    assert 4.5 < store.reserve(CONNECTION, 0.1) <= 5.0


def test_run_slots_are_counted_released_and_expire(store):
    tokens = [str(uuid.uuid4()) for _ in range(3)]
    assert store.take_slot(CONNECTION, 2, tokens[0], 60) and store.take_slot(CONNECTION, 2, tokens[1], 60)
    assert not store.take_slot(CONNECTION, 2, tokens[2], 60)
    store.release_slot(CONNECTION, tokens[0])
    assert store.take_slot(CONNECTION, 2, tokens[2], 60)
    store.renew_slot(CONNECTION, tokens[1], -1)  # as if its worker died and the lease ran out
    assert store.take_slot(CONNECTION, 2, str(uuid.uuid4()), 60)


def test_run_slot_gives_up_after_the_wait_setting(store, settings):
    settings.COHORTSYNC_RUN_SLOT_WAIT_SECONDS = 0
    only_one = limits.ReceiverLimits(CONNECTION, max_concurrent_runs=1)
    with limits.run_slot(only_one):
        with pytest.raises(limits.ReceiverBusy, match="limit of 1 concurrent run stayed full"):
            with limits.run_slot(only_one):
                pass
    with limits.run_slot(only_one):  # released on exit
        pass


def test_a_429_with_retry_after_holds_off_the_connection_for_every_sender(store, receiver, settings):
    receiver.reply(Reply(status=429, headers={"Retry-After": "30"}))
    destination = Destination(url=receiver.url(), connection_id=CONNECTION)
    settings.COHORTSYNC_RETRY_AFTER_MAX = 20  # more than the cap: the run stops, the hold-off is capped
    with open_session() as session:
        verdict = post_with_retries(session=session, destination=destination, body=b"{}", page_id=str(uuid.uuid4()))
    assert "Retry-After 30s" in verdict.message
    assert 19 < store.reserve(CONNECTION, 0.0) <= 20
