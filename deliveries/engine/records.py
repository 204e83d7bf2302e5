"""Records: a run's attempt rows and progress, and the claim it holds while sending."""

import math
import time

from django.conf import settings
from django.db import DatabaseError, connection as db

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
    """A run's attempt rows and progress, written in batches rather than 2 writes a page.

    Anything but a first-try success is written at once, so failures are visible live.
    """

    FLUSH_EVERY_PAGES = 50

    def __init__(self, run: SyncRun):
        super().__init__(run)
        self.run = run
        self.progress_written = run.pages_delivered
        self.renewed_at = -math.inf
        self.claim_check_sql = None

    def hold_claim(self, token) -> bool:
        """Before every try: is the claim still ours? Renew the lease once a quarter of it has passed.

        The check is a read; the renewal is a write, and a committed write per page costs
        an fsync (docs/benchmarks.md), so it happens only every lease/4 seconds.
        """
        now = time.monotonic()
        if now - self.renewed_at >= settings.COHORTSYNC_CLAIM_LEASE_SECONDS / 4:
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
        if attempt.outcome != Outcome.SUCCESS or attempt.attempt_number > 1 or len(self.pending) >= self.FLUSH_EVERY_PAGES:
            self.flush()

    def page_delivered(self, page_count: int) -> None:
        self.run.pages_delivered = page_count
        if page_count - self.progress_written >= self.FLUSH_EVERY_PAGES:
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
        self.write_attempts()
        if self.run.pages_delivered != self.progress_written:
            SyncRun.objects.filter(pk=self.run.pk).update(pages_delivered=self.run.pages_delivered)
            self.progress_written = self.run.pages_delivered
