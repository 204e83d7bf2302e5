"""Claims: one run of a subject (a sync, a user message) at a time, by lease, on SQLite and
PostgreSQL alike (docs/design.md, "Why each SQL shape").

A subject has `claimed_until` and `claim_token`. Taking the claim is one conditional UPDATE
(unclaimed, or its lease expired) that says whether a row changed: atomic on every database,
no lock held across the run. A killed worker's claim simply expires. A subject with a
`claimed_by` column also records its holder (`claim_holder()`: host and pid), so an operator
sees who holds it and a holder that died on this host need not be waited for.
"""

import os
import socket
import uuid
from datetime import timedelta

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone


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
