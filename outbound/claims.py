"""Claims: one run of a subject (a sync, a user message) at a time, by lease, on SQLite and
PostgreSQL alike (docs/design.md, "Why each SQL shape").

A subject has `claimed_until` and `claim_token`. Taking the claim is one conditional UPDATE
(unclaimed, or its lease expired) that says whether a row changed: atomic on every database,
no lock held across the run. A killed worker's claim simply expires. A subject with a
`claimed_by` column also records its holder (`claim_holder()`: host and pid), so an operator
sees who holds it and a holder that died on this host need not be waited for.

The lease is short (COHORTSYNC_CLAIM_LEASE_SECONDS, 20 s) and a live run renews it from a
heartbeat thread (`claim_heartbeat`) every quarter lease, whatever its main thread is doing
(a slow page, a retry's sleep): a holder that died anywhere frees its subject within the lease.
"""

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, connection as db, connections
from django.db.models import Q, QuerySet
from django.utils import timezone

logger = logging.getLogger("outbound.claims")


class ClaimLost(Exception):
    """The run's lease expired and another run may have taken the subject: stop."""


def claim_lease() -> timedelta:
    return timedelta(seconds=settings.COHORTSYNC_CLAIM_LEASE_SECONDS)


def claim_holder() -> str:
    """Who takes a claim: this host and process."""
    return f"{socket.gethostname()} pid {os.getpid()}"


def claim_holder_died(*, holder: str) -> bool:
    """`holder` (claim_holder()) is a process of this host that no longer exists (a killed pool
    child whose task Celery redelivered)."""
    host, _, pid = holder.rpartition(" pid ")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)  # signal 0: does the process exist?
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, under another user
        return False
    return False


def claim_take(*, subject: QuerySet, **fields) -> uuid.UUID | None:
    """Take the lease of the subject `subject` selects (plus the caller's own conditions, e.g.
    active and due) and set `fields` (e.g. `claimed_by`); the claim's token, or None if another
    run holds it."""
    now = timezone.now()
    token = uuid.uuid4()
    unclaimed = subject.filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
    return token if unclaimed.update(claimed_until=now + claim_lease(), claim_token=token, **fields) else None


def claim_renew(*, subject: QuerySet, token: uuid.UUID) -> bool:
    """A new lease from now, if the claim is still this token's."""
    return bool(subject.filter(claim_token=token).update(claimed_until=timezone.now() + claim_lease()))


def claim_release(*, subject: QuerySet, token: uuid.UUID, **fields) -> None:
    """Give the lease back (and set `fields`, e.g. the next run's time), if still held."""
    subject.filter(claim_token=token).update(claimed_until=None, claim_token=None, **fields)


def heartbeat_seconds() -> float:
    """How often a live holder renews: a quarter lease, so three beats may be missed."""
    return settings.COHORTSYNC_CLAIM_LEASE_SECONDS / 4


class ClaimHeartbeat:
    """Renews a claim from a thread of its own while the run works (see claim_heartbeat)."""

    def __init__(self, *, subject: QuerySet, token: uuid.UUID):
        self.subject, self.token = subject, token
        self.lost = False  # the claim was taken away: the run must stop at its next check
        self.beating = False
        # When the database last said the claim is ours (time.monotonic()): the claim is taken
        # just before its heartbeat starts, then each beat that renews it.
        self.held_at = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        # Another connection cannot see rows of an open transaction (a test's), and an
        # in-memory SQLite database (the test suite's) fails a write that meets another
        # connection's lock at once instead of waiting: there the run renews inline instead
        # (engine.records, campaigns.sending).
        if db.in_atomic_block or (db.vendor == "sqlite" and db.is_in_memory_db()):
            return
        self.beating = True
        self._thread = threading.Thread(target=self._beat, name="claim-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=heartbeat_seconds() + 5)

    def _beat(self) -> None:
        try:
            while not self._stop.wait(heartbeat_seconds()):
                try:
                    renewing_at = time.monotonic()
                    if not claim_renew(subject=self.subject, token=self.token):
                        self.lost = True
                        return
                    self.held_at = renewing_at
                except DatabaseError as exc:  # the database is away: try again next beat, fresh
                    logger.warning("claim heartbeat: %s", exc)
                    connections["default"].close()
        finally:
            connections.close_all()  # this thread's own connections only


@contextlib.contextmanager
def claim_heartbeat(*, subject: QuerySet, token: uuid.UUID):
    """Keep the claim alive for the length of the block; yields the ClaimHeartbeat, whose
    `lost` says the claim was taken away (broken by an operator after a stall)."""
    heartbeat = ClaimHeartbeat(subject=subject, token=token)
    heartbeat.start()
    try:
        yield heartbeat
    finally:
        heartbeat.stop()
