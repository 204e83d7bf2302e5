"""Ingestion keys (issue, revoke, mark used) and the event id ledger that makes resent events
idempotent (Mixpanel `$insert_id`, Segment `messageId`)."""

import logging
import math
import time
from collections.abc import Sequence
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connection as db, transaction
from django.utils import timezone

from access.models import HashedKey
from access.services import hashed_key_create
from cohorts.ingestion import (
    PRUNE_CHUNK,
    BatchResult,
    EncodedEvents,
    check_batch_size,
    events_write,
    rows_delete_in_chunks,
)
from cohorts.models import Project

from .models import IngestKey, ReceivedInsertId

logger = logging.getLogger(__name__)

# Markers let secret scanners and people recognise a key and what it is for.
KEY_MARKERS = {
    IngestKey.Kind.SEGMENT_WRITE_KEY: "csw_",
    IngestKey.Kind.MIXPANEL_TOKEN: "cst_",
    IngestKey.Kind.MIXPANEL_SECRET: "css_",
}
PREFIX_LENGTH = 12
MAX_INSERT_ID_LENGTH = ReceivedInsertId._meta.get_field("insert_id").max_length
_SQLITE_CLAIM_CHUNK = 300  # rows a statement: 3 parameters each, under SQLite's variable limit


def records_budget_wait(*, key: HashedKey, records: int) -> int | None:
    """Seconds until `key` may send again, when these records would take its minute past
    COHORTSYNC_SDK_RECORDS_PER_MINUTE; None (and the records counted) when they fit. A fixed
    window a minute, in the cache: two cache operations a request."""
    limit = settings.COHORTSYNC_SDK_RECORDS_PER_MINUTE
    if not limit or not records:
        return None
    now = time.time()
    counter = f"sdk-records:{key._meta.label_lower}:{key.pk}:{int(now // 60)}"
    cache.add(counter, 0, timeout=120)
    try:
        spent = cache.incr(counter, records)
    except ValueError:  # expired between the two calls
        cache.set(counter, spent := records, timeout=120)
    if spent <= limit:
        return None
    try:
        cache.decr(counter, records)  # refused records do not count
    except ValueError:
        pass
    return max(1, math.ceil(60 - now % 60))


def insert_id_problem(value) -> str | None:
    """Why this event id (`$insert_id`, `messageId`) cannot be stored, or None when it can."""
    if not isinstance(value, str):
        return "must be a string"
    if len(value) > MAX_INSERT_ID_LENGTH:
        return f"must be at most {MAX_INSERT_ID_LENGTH} characters"
    if "\x00" in value:
        return "must not contain NUL characters"  # PostgreSQL refuses NUL in text
    return None


def ingest_key_create(*, project: Project, kind: str, name: str, created_by=None) -> tuple[IngestKey, str]:
    """Issue a write key, project token or project secret; returns the stored key and the
    plaintext, which is never stored."""
    marker = KEY_MARKERS[IngestKey.Kind(kind)]
    ingest_key = IngestKey(project=project, kind=kind, name=name, created_by=created_by)
    key = hashed_key_create(hashed_key=ingest_key, marker=marker, token_bytes=24, prefix_length=PREFIX_LENGTH)
    return ingest_key, key


def events_track_once(*, project: Project, items: Sequence[dict], insert_ids: Sequence[str | None]) -> BatchResult:
    """events_track, except that an event whose id (`insert_ids[i]`, None for none) was already
    stored for the project, or repeats one earlier in the batch, is acknowledged as accepted and
    not stored again (Mixpanel's `$insert_id` and Segment's `messageId` contract)."""
    encoded = EncodedEvents()
    with transaction.atomic():
        with _InsertIdClaim(project, {i for i in insert_ids if i}) as claim:
            rows = list(encoded.rows_of(items))  # checked while PostgreSQL records the ids
        claimed = claim.fresh
        fresh = []  # positions of the items to store: no id, or the first of a newly recorded one
        for position, insert_id in enumerate(insert_ids):
            if insert_id:
                if insert_id not in claimed:
                    continue  # stored before, or earlier in this batch
                claimed.discard(insert_id)
            fresh.append(position)
        check_batch_size(fresh)
        fresh_set = set(fresh)
        errors = [error for error in encoded.errors if error.index in fresh_set]
        refused_ids = [insert_ids[error.index] for error in errors if insert_ids[error.index]]
        if refused_ids:
            # A refused event leaves no trace, so the corrected event sent again is stored.
            ReceivedInsertId.objects.filter(project=project, insert_id__in=refused_ids).delete()
        events_write(project=project, rows=(row for row, position in zip(rows, encoded.positions, strict=True)
                                            if position in fresh_set))
    duplicates = len(items) - len(fresh)
    return BatchResult(accepted=len(fresh) - len(errors) + duplicates, errors=errors)


class _InsertIdClaim:
    """Records a batch's ids while the block runs (`fresh`, on leaving it: the ids not recorded
    before; the others are duplicates). A concurrent batch holding one of them makes us wait for
    its commit or rollback. On PostgreSQL the statement runs while the block's Python work does."""

    def __init__(self, project: Project, insert_ids: set[str]):
        self.project, self.insert_ids = project, sorted(insert_ids)  # one lock order for concurrent batches
        self.fresh: set[str] = set()
        self._cursor = self._pipeline = None

    def __enter__(self) -> "_InsertIdClaim":
        if self.insert_ids and db.vendor == "postgresql":
            import psycopg  # the PostgreSQL driver, only needed here

            db.ensure_connection()
            connection = db.connection
            # Pipeline mode: the INSERT is sent without waiting for its answer.
            self._pipeline = connection.pipeline()
            self._pipeline.__enter__()
            self._cursor = psycopg.Cursor(connection)
            self._cursor.execute(
                f"""INSERT INTO {ReceivedInsertId._meta.db_table} (project_id, insert_id, received_at)
                SELECT %s, insert_id, %s FROM unnest(%s::text[]) AS ids (insert_id)
                ON CONFLICT (project_id, insert_id) DO NOTHING RETURNING insert_id""",
                [self.project.pk, timezone.now(), self.insert_ids],
            )
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if self._pipeline is not None:
            self._pipeline.__exit__(exc_type, exc, traceback)
            if exc_type is None:
                self.fresh = {row[0] for row in self._cursor.fetchall()}
            self._cursor.close()
        elif exc_type is None and self.insert_ids:
            self.fresh = _insert_ids_claim_sqlite(self.project, self.insert_ids)


def _insert_ids_claim_sqlite(project: Project, insert_ids: list[str]) -> set[str]:
    table = ReceivedInsertId._meta.db_table
    now = timezone.now()
    claimed = set()
    with db.cursor() as cursor:
        for start in range(0, len(insert_ids), _SQLITE_CLAIM_CHUNK):
            chunk = insert_ids[start:start + _SQLITE_CLAIM_CHUNK]
            cursor.execute(
                f"""INSERT INTO {table} (project_id, insert_id, received_at)
                VALUES {', '.join(['(%s, %s, %s)'] * len(chunk))}
                ON CONFLICT (project_id, insert_id) DO NOTHING RETURNING insert_id""",
                [value for insert_id in chunk for value in (project.pk, insert_id, now)],
            )
            claimed.update(row[0] for row in cursor.fetchall())
    return claimed


def insert_ids_prune() -> int:
    """Forget event ids received before the retention window (COHORTSYNC_EVENT_RETENTION_DAYS):
    an event that old is refused anyway. Returns how many were deleted."""
    cutoff = timezone.now() - timedelta(days=settings.COHORTSYNC_EVENT_RETENTION_DAYS)
    deleted = rows_delete_in_chunks(rows=ReceivedInsertId.objects.filter(received_at__lt=cutoff),
                                    chunk_size=PRUNE_CHUNK)
    if deleted:
        logger.info("pruned %d event ids received before %s", deleted, cutoff.isoformat())
    return deleted
