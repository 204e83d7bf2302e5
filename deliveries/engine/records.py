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


# A claim check the database answered this recently stands for the check before a try: the gap
# is the reading and rendering of the next page, and losing a claim takes a lapsed lease or a
# break of a claim silent for half a lease (outbound.claims), both far longer.
CLAIM_CONFIRMED_FRESH_SECONDS = 1.0


class RunRecords(AttemptRecords):
    """A run's attempt rows and progress, written as each page is delivered (and each try that
    did not succeed at once), so a run killed at any point has an exact record of what reached
    the receiver: its resumption starts at the first page not recorded delivered.

    On PostgreSQL these commits do not wait for the WAL flush (`synchronous_commit off`, for
    this transaction only): a killed worker loses nothing, a crash of the database server
    itself may lose the last fraction of a second of progress, which the resumed run then sends
    again (receivers de-duplicate by webhook id); an fsync a page was most of a run's time.
    Each write also asks whether the claim (`token`) is still held, for the next try's check.
    """

    def __init__(self, run: SyncRun, heartbeat: ClaimHeartbeat | None = None, token=None):
        super().__init__(run)
        self.run = run
        self.heartbeat = heartbeat
        self.token = token
        self.progress_written = run.pages_delivered
        self.renewed_at = -math.inf
        self.held_at = -math.inf  # when the database last said the claim is ours (time.monotonic())
        self.lost = False  # it said the claim is not ours: a token once lost is never held again
        self.claim_check_sql = None

    def hold_claim(self, token) -> bool:
        """Before every try: is the claim still ours?

        The heartbeat renews the lease from its thread; without one (a run inside a test's
        transaction) the lease is renewed here once a quarter of it has passed. A renewal or
        check that said yes less than CLAIM_CONFIRMED_FRESH_SECONDS ago answers for the database.
        """
        if (self.heartbeat is not None and self.heartbeat.lost) or (self.lost and token == self.token):
            return False
        now = time.monotonic()
        beating = self.heartbeat is not None and self.heartbeat.beating
        if not beating and now - self.renewed_at >= settings.COHORTSYNC_CLAIM_LEASE_SECONDS / 4:
            held = services.sync_renew_claim(sync_id=self.run.sync_id, token=token)
            self.renewed_at = now
            self._held(held, token=token, at=now)
            return held
        if now - self._confirmed_at(token) < CLAIM_CONFIRMED_FRESH_SECONDS:
            return True
        if self.claim_check_sql is None:
            # Compiled once: building the ORM query each time was half of what a check cost.
            claim = Sync.objects.filter(pk=self.run.sync_id, claim_token=token).values("pk")
            self.claim_check_sql = claim.query.sql_with_params()
        with db.cursor() as cursor:
            cursor.execute(*self.claim_check_sql)
            held = cursor.fetchone() is not None
        self._held(held, token=token, at=now)
        return held

    def _held(self, held: bool | None, *, token, at: float) -> None:
        if token is not None and token == self.token:
            if held:
                self.held_at = max(self.held_at, at)
            else:
                self.lost = True

    def _confirmed_at(self, token) -> float:
        """When the database last said `token` holds the claim: a renewal by the heartbeat, or
        a check or renewal of this run's."""
        confirmed_at = self.held_at if token == self.token else -math.inf
        if self.heartbeat is not None and self.heartbeat.token == token:
            confirmed_at = max(confirmed_at, self.heartbeat.held_at)
        return confirmed_at

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
        progress = self.run.pages_delivered != self.progress_written
        if not self.pending and not progress:
            return
        checked_at = time.monotonic()
        if db.vendor == "postgresql":
            held = self._write_in_one_statement(progress=progress)
        else:
            with transaction.atomic():
                self.write_attempts()
                if progress:
                    SyncRun.objects.filter(pk=self.run.pk).update(pages_delivered=self.run.pages_delivered)
                held = self.token is not None and Sync.objects.filter(
                    pk=self.run.sync_id, claim_token=self.token).exists()
        self.written()
        self.progress_written = self.run.pages_delivered
        self._held(held, token=self.token, at=checked_at)

    def _write_in_one_statement(self, *, progress: bool) -> bool | None:
        """PostgreSQL: the attempts, the progress, `synchronous_commit off` and the claim check in
        one statement, its own transaction (one round trip a page instead of six)."""
        writes, params = [], []
        if self.pending:
            insert_sql, insert_params = self.pending_insert()
            writes.append(f"attempts AS ({insert_sql})")
            params += insert_params
        if progress:
            writes.append(f"progress AS (UPDATE {SyncRun._meta.db_table} SET pages_delivered = %s WHERE id = %s)")
            params += [self.run.pages_delivered, self.run.pk]
        claim_held = "NULL"
        if self.token is not None:
            claim_held = f"EXISTS (SELECT 1 FROM {Sync._meta.db_table} WHERE id = %s AND claim_token = %s)"
            params += [self.run.sync_id, self.token]
        # Data-modifying WITH clauses run once, to completion, whether or not the SELECT reads them.
        sql = f"WITH {', '.join(writes)} SELECT set_config('synchronous_commit', 'off', true), {claim_held}"
        with db.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()[1]
