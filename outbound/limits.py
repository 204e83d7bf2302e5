"""Per-receiver limits: a connection's request rate, concurrent runs and a receiver's Retry-After,
shared by every worker process and machine (issue #17, part 3).

- Rate: each try reserves the next free instant of its connection (the later of now, the
  previous reservation plus 1/rate, and `not before`) and sleeps until it: requests from all
  senders are spaced 1/rate apart.
- Retry-After: a 429 or 503 that says when to come back sets the connection's `not before`
  (capped at COHORTSYNC_RETRY_AFTER_MAX), and every sender waits for it before its next try.
- Concurrent runs: a sync or message run holds a slot while it sends (`run_slot`); slots are
  leased and renewed at each try, so a killed worker's slot frees itself.

The state lives in Redis when COHORTSYNC_LIMITS_REDIS_URL is set (the broker's URL by default
when the broker is Redis; Redis's clock is the one clock), else in the database
(ReceiverPace, ReceiverRunSlot: one row lock per connection serialises the reservations).
Process memory is never the store: two workers would each allow the full rate.
"""

import contextlib
import contextvars
import logging
import random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

logger = logging.getLogger(__name__)

MIN_REQUESTS_PER_SECOND = 0.001
MAX_REQUESTS_PER_SECOND = 10_000
MAX_CONCURRENT_RUNS = 1000
SLOT_POLL_SECONDS = (0.2, 0.5)  # how often a run waiting for a slot looks again (jittered)


class ReceiverBusy(Exception):
    """The connection's concurrent-run limit stayed full for as long as a run may wait."""


@dataclass(frozen=True)
class ReceiverLimits:
    connection_id: int | None
    max_requests_per_second: float | None = None
    max_concurrent_runs: int | None = None


# --- The two stores ------------------------------------------------------------------------


class DatabaseStore:
    """Works on SQLite and PostgreSQL: the first statement of each transaction is an UPDATE of the
    connection's row, which takes its row lock (PostgreSQL) or the write lock (SQLite) before any read."""

    def _locked(self, connection_id: int):
        from .models import ReceiverPace

        ReceiverPace.objects.bulk_create([ReceiverPace(connection_id=connection_id)], ignore_conflicts=True)
        ReceiverPace.objects.filter(pk=connection_id).update(connection_id=F("connection_id"))
        return ReceiverPace.objects.get(pk=connection_id)

    def reserve(self, connection_id: int, interval: float) -> float:
        from .models import ReceiverPace

        if not interval:  # no rate: only a Retry-After can hold this try back (a plain read)
            not_before = ReceiverPace.objects.filter(pk=connection_id).values_list("not_before", flat=True).first()
            return max(0.0, (not_before - timezone.now()).total_seconds()) if not_before else 0.0
        with transaction.atomic():
            pace = self._locked(connection_id)
            now = timezone.now()
            turn = max(t for t in (now, pace.next_request_at, pace.not_before) if t is not None)
            pace.next_request_at = turn + timedelta(seconds=interval)
            pace.save(update_fields=["next_request_at"])
        return (turn - now).total_seconds()

    def hold_off(self, connection_id: int, seconds: float) -> None:
        with transaction.atomic():
            pace = self._locked(connection_id)
            until = timezone.now() + timedelta(seconds=seconds)
            if pace.not_before is None or pace.not_before < until:
                pace.not_before = until
                pace.save(update_fields=["not_before"])

    def take_slot(self, connection_id: int, limit: int, token: str, lease: float) -> bool:
        from .models import ReceiverRunSlot

        with transaction.atomic():
            self._locked(connection_id)  # one taker at a time per connection
            now = timezone.now()
            slots = ReceiverRunSlot.objects.filter(connection_id=connection_id)
            slots.filter(expires_at__lt=now).delete()
            if slots.count() >= limit:
                return False
            ReceiverRunSlot.objects.create(connection_id=connection_id, token=token,
                                           expires_at=now + timedelta(seconds=lease))
            return True

    def renew_slot(self, connection_id: int, token: str, lease: float) -> None:
        from .models import ReceiverRunSlot

        ReceiverRunSlot.objects.filter(token=token).update(expires_at=timezone.now() + timedelta(seconds=lease))

    def release_slot(self, connection_id: int, token: str) -> None:
        from .models import ReceiverRunSlot

        ReceiverRunSlot.objects.filter(token=token).delete()


# Lua: atomic on the Redis server, timed by its clock (machines' clocks may disagree).
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local turn = math.max(now, tonumber(redis.call('GET', KEYS[1]) or '0'), tonumber(redis.call('GET', KEYS[2]) or '0'))
local interval = tonumber(ARGV[1])
if interval > 0 then
  redis.call('SET', KEYS[1], string.format('%.6f', turn + interval), 'PX', math.ceil((turn - now + interval) * 1000) + 1000)
end
return string.format('%.6f', turn - now)
"""
_HOLD_OFF = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local untl = now + tonumber(ARGV[1])
if untl > tonumber(redis.call('GET', KEYS[1]) or '0') then
  redis.call('SET', KEYS[1], string.format('%.6f', untl), 'PX', math.ceil(tonumber(ARGV[1]) * 1000) + 1000)
end
return 1
"""
_TAKE_SLOT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3]) * 1000) + 1000)
return 1
"""
_RENEW_SLOT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2]) * 1000) + 1000)
return 1
"""


class RedisStore:
    PREFIX = "cohortsync:receiver"

    def __init__(self, url: str):
        import redis

        self.client = redis.Redis.from_url(url)
        self._reserve = self.client.register_script(_RESERVE)
        self._hold_off = self.client.register_script(_HOLD_OFF)
        self._take_slot = self.client.register_script(_TAKE_SLOT)
        self._renew_slot = self.client.register_script(_RENEW_SLOT)

    def _key(self, connection_id: int, what: str) -> str:
        return f"{self.PREFIX}:{connection_id}:{what}"

    def reserve(self, connection_id: int, interval: float) -> float:
        keys = [self._key(connection_id, "next"), self._key(connection_id, "not_before")]
        return float(self._reserve(keys=keys, args=[interval]))

    def hold_off(self, connection_id: int, seconds: float) -> None:
        self._hold_off(keys=[self._key(connection_id, "not_before")], args=[seconds])

    def take_slot(self, connection_id: int, limit: int, token: str, lease: float) -> bool:
        return bool(self._take_slot(keys=[self._key(connection_id, "slots")], args=[limit, token, lease]))

    def renew_slot(self, connection_id: int, token: str, lease: float) -> None:
        self._renew_slot(keys=[self._key(connection_id, "slots")], args=[token, lease])

    def release_slot(self, connection_id: int, token: str) -> None:
        self.client.zrem(self._key(connection_id, "slots"), token)


@cache
def _redis_store(url: str) -> RedisStore:
    return RedisStore(url)


def store() -> DatabaseStore | RedisStore:
    url = settings.COHORTSYNC_LIMITS_REDIS_URL
    return _redis_store(url) if url else DatabaseStore()


# --- What senders call -------------------------------------------------------------------------

# A run slot is renewed at each try (a page's longest wait between tries is a retry delay plus a
# read timeout plus a Retry-After), so it outlives those; a crashed run's slot frees after it.
RUN_SLOT_LEASE_SECONDS = 150.0

# The run slots this context holds, by connection: renewed at each try (see wait_for_turn).
_held_slots: contextvars.ContextVar[dict] = contextvars.ContextVar("receiver_run_slots", default=None)


def wait_for_turn(limits: ReceiverLimits) -> float:
    """Before each try: wait for the connection's Retry-After and its rate; returns the seconds waited."""
    if limits.connection_id is None:
        return 0.0
    _renew_held_slot(limits.connection_id)
    rate = limits.max_requests_per_second
    backend = store()
    waited = 0.0
    wait = backend.reserve(limits.connection_id, 1.0 / rate if rate else 0.0)
    while wait > 0:
        time.sleep(wait)
        waited += wait
        # A Retry-After may have come in while this try slept for its turn: look again (a read).
        wait = backend.reserve(limits.connection_id, 0.0)
    return waited


def hold_off(limits: ReceiverLimits, retry_after: float) -> None:
    """A receiver said "come back in `retry_after` s": every sender on the connection waits (capped)."""
    if limits.connection_id is None or retry_after <= 0:
        return
    store().hold_off(limits.connection_id, min(retry_after, settings.COHORTSYNC_RETRY_AFTER_MAX))


@contextlib.contextmanager
def run_slot(limits: ReceiverLimits):
    """Hold one of the connection's concurrent-run slots while a run sends (no limit: nothing to hold).

    Waits for a free slot up to COHORTSYNC_RUN_SLOT_WAIT_SECONDS, then raises ReceiverBusy.
    """
    limit, connection_id = limits.max_concurrent_runs, limits.connection_id
    if not limit or connection_id is None:
        yield
        return
    token, lease = str(uuid.uuid4()), RUN_SLOT_LEASE_SECONDS
    backend = store()
    deadline = time.monotonic() + settings.COHORTSYNC_RUN_SLOT_WAIT_SECONDS
    while not backend.take_slot(connection_id, limit, token, lease):
        if time.monotonic() >= deadline:
            raise ReceiverBusy(f"the receiver's limit of {limit} concurrent run{'s' if limit != 1 else ''} "
                               f"stayed full for {settings.COHORTSYNC_RUN_SLOT_WAIT_SECONDS:g} s")
        time.sleep(random.uniform(*SLOT_POLL_SECONDS))
    held = dict(_held_slots.get() or {})
    held[connection_id] = _HeldSlot(token=token, lease=lease, renewed_at=time.monotonic())
    reset = _held_slots.set(held)
    try:
        yield
    finally:
        _held_slots.reset(reset)
        backend.release_slot(connection_id, token)


@dataclass
class _HeldSlot:
    token: str
    lease: float
    renewed_at: float


def _renew_held_slot(connection_id: int) -> None:
    slot = (_held_slots.get() or {}).get(connection_id)
    if slot is not None and time.monotonic() - slot.renewed_at >= slot.lease / 4:
        store().renew_slot(connection_id, slot.token, slot.lease)
        slot.renewed_at = time.monotonic()


def not_before(connection_id: int) -> datetime | None:
    """When the connection's senders may try again after a Retry-After (None: now); for pages and tests."""
    wait = store().reserve(connection_id, 0.0)
    return timezone.now() + timedelta(seconds=wait) if wait > 0 else None
