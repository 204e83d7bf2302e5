"""Ingestion keys (issue, revoke, mark used) and the event id ledger that makes resent events
idempotent (Mixpanel `$insert_id`, Segment `messageId`)."""

import logging
from collections.abc import Sequence
from datetime import timedelta

from django.conf import settings
from django.db import connection as db, transaction
from django.utils import timezone

from access.services import hashed_key_create
from cohorts.ingestion import PRUNE_CHUNK, BatchResult, ItemError, events_track, rows_delete_in_chunks
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
    with transaction.atomic():
        claimed = _insert_ids_claim(project, {i for i in insert_ids if i})
        fresh_items, fresh_positions = [], []
        for position, (item, insert_id) in enumerate(zip(items, insert_ids, strict=True)):
            if insert_id:
                if insert_id not in claimed:
                    continue  # stored before, or earlier in this batch
                claimed.discard(insert_id)
            fresh_items.append(item)
            fresh_positions.append(position)
        result = events_track(project=project, items=fresh_items)
        errors = [ItemError(fresh_positions[error.index], error.field, error.message) for error in result.errors]
        refused_ids = [insert_ids[error.index] for error in errors if insert_ids[error.index]]
        if refused_ids:
            # A refused event leaves no trace, so the corrected event sent again is stored.
            ReceivedInsertId.objects.filter(project=project, insert_id__in=refused_ids).delete()
    duplicates = len(items) - len(fresh_items)
    return BatchResult(accepted=result.accepted + duplicates, errors=errors)


def _insert_ids_claim(project: Project, insert_ids: set[str]) -> set[str]:
    """Record these ids; returns the ones not recorded before (the others are duplicates). A
    concurrent batch holding one of them makes us wait for its commit or rollback."""
    if not insert_ids:
        return set()
    table = ReceivedInsertId._meta.db_table
    now = timezone.now()
    ordered = sorted(insert_ids)  # one lock order for concurrent batches
    with db.cursor() as cursor:
        if db.vendor == "postgresql":
            cursor.execute(
                f"""INSERT INTO {table} (project_id, insert_id, received_at)
                SELECT %s, insert_id, %s FROM unnest(%s::text[]) AS ids (insert_id)
                ON CONFLICT (project_id, insert_id) DO NOTHING RETURNING insert_id""",
                [project.pk, now, ordered],
            )
            return {row[0] for row in cursor.fetchall()}
        claimed = set()
        for start in range(0, len(ordered), _SQLITE_CLAIM_CHUNK):
            chunk = ordered[start:start + _SQLITE_CLAIM_CHUNK]
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
