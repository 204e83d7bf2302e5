"""Records: a run's attempt rows and progress, and the claim it holds while sending."""

import math
import time

from django.conf import settings
from django.db import DatabaseError, connection as db, transaction

from outbound.claims import ClaimHeartbeat
from outbound.policy import Outcome
from outbound.records import AttemptRecords

from .. import services
from ..models import Sync, SyncRun


def reconnect_if_broken() -> None:
    """A terminated or restarted database leaves Django's connection dead: drop it, so what
    follows (the failure, the records, the release of the claim) goes over a fresh one."""
    if db.connection is not None and not db.in_atomic_block and not db.is_usable():
        db.close()


class RunRecords(AttemptRecords):
    """A run's attempt rows and progress, written as each page is delivered (and each try that
    did not succeed at once), so a run killed at any point has an exact record of what reached
    the receiver: its resumption starts at the first page not recorded delivered.

    On PostgreSQL these commits do not wait for the WAL flush (`synchronous_commit off`, for
    this transaction only): a killed worker loses nothing, a crash of the database server
    itself may lose the last fraction of a second of progress, which the resumed run then sends
    again (receivers de-duplicate by webhook id); an fsync a page was most of a run's time.
    """

    def __init__(self, run: SyncRun, heartbeat: ClaimHeartbeat | None = None):
        super().__init__(run)
        self.run = run
        self.heartbeat = heartbeat
        self.progress_written = run.pages_delivered
        self.renewed_at = -math.inf
        self.claim_check_sql = None

    def hold_claim(self, token) -> bool:
        """Before every try: is the claim still ours?

        The heartbeat renews the lease from its thread; without one (a run inside a test's
        transaction) the lease is renewed here once a quarter of it has passed.
        """
        if self.heartbeat is not None and self.heartbeat.lost:
            return False
        now = time.monotonic()
        beating = self.heartbeat is not None and self.heartbeat.beating
        if not beating and now - self.renewed_at >= settings.COHORTSYNC_CLAIM_LEASE_SECONDS / 4:
            held = services.sync_renew_claim(sync_id=self.run.sync_id, token=token)
            self.renewed_at = now
            return held
        if self.claim_check_sql is None:
            # Compiled once: building the ORM query each time was half of what a check cost.
            claim = Sync.objects.filter(pk=self.run.sync_id, claim_token=token).values("pk")
            self.claim_check_sql = claim.query.sql_with_params()
        with db.cursor() as cursor:
            cursor.execute(*self.claim_check_sql)
            return cursor.fetchone() is not None

    def attempt(self, **fields) -> None:
        attempt = super().attempt(**fields)
        if attempt.outcome != Outcome.SUCCESS:  # failures are visible live
            self.flush()

    def page_delivered(self, page_count: int) -> None:
        self.run.pages_delivered = page_count
        self.flush()

    def flush_surely(self) -> None:
        """Flush; if the database connection died under the run, once more on a fresh one, so
        the attempt rows and progress of delivered pages are not lost with it."""
        try:
            self.flush()
        except DatabaseError:
            reconnect_if_broken()
            self.flush()

    def flush(self) -> None:
        if not self.pending and self.run.pages_delivered == self.progress_written:
            return
        with transaction.atomic():
            if db.vendor == "postgresql":
                with db.cursor() as cursor:
                    cursor.execute("SET LOCAL synchronous_commit TO OFF")
            self.write_attempts()
            if self.run.pages_delivered != self.progress_written:
                SyncRun.objects.filter(pk=self.run.pk).update(pages_delivered=self.run.pages_delivered)
        self.progress_written = self.run.pages_delivered
