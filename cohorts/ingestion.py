"""Data in: batches of profiles and events, validated item by item.

The REST API and the import commands call these services. A batch answers with a BatchResult:
how many items were accepted and, for each refused item, its index, field and reason. Valid
items are written even when others in the batch are refused.
"""

import logging
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import orjson
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection as db, transaction
from django.db.models import QuerySet
from django.utils import timezone

from .models import IDENTITY_FIELDS, Event, Profile, Project

logger = logging.getLogger(__name__)

MAX_BATCH = 10_000
MAX_NAME_LENGTH = 255  # distinct ids, event names and property names
# Clocks drift a little; an event further ahead is a unit mistake (milliseconds as seconds).
FUTURE_TOLERANCE = timedelta(hours=1)
_HOURS_AHEAD = FUTURE_TOLERANCE / timedelta(hours=1)
_TOO_FAR_AHEAD = f"is more than {_HOURS_AHEAD:g} hour{'' if _HOURS_AHEAD == 1 else 's'} in the future"
PRUNE_CHUNK = 10_000  # event rows deleted per statement, so no delete holds locks for long

IDENTITY_MAX_LENGTHS = {name: Profile._meta.get_field(name).max_length for name in IDENTITY_FIELDS}
# Operations on a stored value (an increment, list changes): applied after `set`, before `unset`.
PROFILE_OPERATIONS = ("add", "append", "union", "remove")
PROFILE_FIELDS = frozenset({"distinct_id", *IDENTITY_FIELDS, "set", "set_once", "unset", *PROFILE_OPERATIONS})
# What orjson (our JSON codec) can write: a sum outside is refused rather than stored otherwise.
_INTEGER_RANGE = range(-(2**63), 2**64)
EVENT_FIELDS = frozenset({"distinct_id", "event", "time", "properties"})
# PostgreSQL refuses NUL in text and jsonb: an escaped \u0000 not itself escaped.
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
# Distinct ids a receiver would store altered (trimmed, cleaned, re-encoded, truncated): two of
# our members could become one of theirs, and removing one would remove the other.
_EDGE_WHITESPACE = re.compile(r"^[\s\ufeff]|[\s\ufeff]$")  # JavaScript's trim() strips U+FEFF too
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # only lone ones reach a Python str: JSON pairs are joined
# Anything the distinct id rule could refuse at its ends or inside: absent in almost every id, so
# one search clears it and only a match runs the rule's checks one by one (for their message).
_DISTINCT_ID_SUSPECT = re.compile("^[\\s\ufeff]|[\\s\ufeff]$|[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# The same for property names: NUL or a lone surrogate anywhere in them.
_PROPERTY_NAME_SUSPECT = re.compile("[\x00\ud800-\udfff]")
_JSON_TYPES = {type(None): "null", bool: "a boolean", int: "a number", float: "a number", str: "a string",
               list: "an array", dict: "an object"}


@dataclass(frozen=True)
class ItemError:
    index: int  # position of the item in the batch
    field: str | None  # None when the item as a whole is wrong
    message: str


@dataclass
class BatchResult:
    accepted: int = 0
    errors: list[ItemError] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return len({error.index for error in self.errors})


class _ItemInvalid(Exception):
    def __init__(self, field: str | None, message: str):
        super().__init__(message)
        self.field, self.message = field, message


# --- Profiles ------------------------------------------------------------------------------


@dataclass
class _ProfileChange:
    index: int  # in the batch
    identity: dict[str, str]
    set: dict[str, Any]
    set_once: dict[str, Any]
    unset: list[str]
    operations: tuple[tuple[str, str, Any], ...] = ()  # (operation, property, value), in PROFILE_OPERATIONS order


def profiles_upsert(*, project: Project, items: Sequence[dict]) -> BatchResult:
    """Create or update profiles by distinct id ("Data in: profiles, batch upsert").

    Identity fields given replace the stored ones, absent ones stay. Properties change by
    `set_once` (only where the profile has no such property yet), `set`, `add` (numbers added
    to the stored ones, absent counting as 0), `append` (a value to the end of an array),
    `union` (an array's values not yet in the stored array), `remove` (every element equal to
    a value from an array) and `unset`, applied in that order within an item, and items for one
    distinct id in batch order. The stored values are read under the row lock, so concurrent
    batches' increments all count. An item whose operation does not fit the stored value (a
    number added to text, a value appended to a non-array) is refused whole, the others apply.
    """
    check_batch_size(items)
    result = BatchResult()
    changes: dict[str, list[_ProfileChange]] = {}
    for index, item in enumerate(items):
        try:
            distinct_id, change = _profile_change(item, index)
        except _ItemInvalid as invalid:
            result.errors.append(ItemError(index, invalid.field, invalid.message))
            continue
        changes.setdefault(distinct_id, []).append(change)
        result.accepted += 1
    if changes:
        refused = _profiles_write(project, changes)
        if refused:
            result.accepted -= len(refused)
            result.errors = sorted([*result.errors, *refused], key=lambda error: error.index)
    return result


def profile_delete(*, project: Project, distinct_id: str) -> bool:
    """Delete a profile; it leaves every cohort (its CohortMember rows cascade) and the next
    sync of each sends the removal. Returns whether there was such a profile."""
    deleted, _ = Profile.objects.filter(project=project, distinct_id=distinct_id).delete()
    return deleted > 0


def _profile_change(item: Any, index: int) -> tuple[str, _ProfileChange]:
    _check_object(item, PROFILE_FIELDS)
    distinct_id = _required_name(item, "distinct_id")
    identity = {}
    for name in IDENTITY_FIELDS:
        if name in item:
            identity[name] = _identity_value(item[name], name)
    # Decoded from our own encoding: only plain JSON values reach the merge and the database.
    set_properties = orjson.loads(_properties(item["set"], "set")) if "set" in item else {}
    set_once = orjson.loads(_properties(item["set_once"], "set_once")) if "set_once" in item else {}
    unset = _property_names(item["unset"], "unset") if "unset" in item else []
    change = _ProfileChange(index, identity, set_properties, set_once, unset)
    if "add" in item or "append" in item or "union" in item or "remove" in item:
        change.operations = _profile_operations(item)
    return distinct_id, change


def _profile_operations(item: dict) -> tuple[tuple[str, str, Any], ...]:
    operations = []
    for operation in PROFILE_OPERATIONS:
        if operation not in item:
            continue
        for name, value in orjson.loads(_properties(item[operation], operation)).items():
            if operation == "add" and type(value) not in (int, float):
                raise _ItemInvalid(f"add.{name}", f"must be a number, not {_json_type(value)}")
            if operation == "union" and not isinstance(value, list):
                raise _ItemInvalid(f"union.{name}", f"must be an array of values, not {_json_type(value)}")
            operations.append((operation, name, value))
    return tuple(operations)


def _identity_value(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise _ItemInvalid(name, f"must be a string, not {_json_type(value)}")
    return _bounded_text(value, name, IDENTITY_MAX_LENGTHS[name])


def _bounded_text(value: str, name: str, limit: int) -> str:
    """A string no longer than `limit`, without NUL, lone surrogates or control characters."""
    if len(value) > limit:
        raise _ItemInvalid(name, f"must be at most {limit} characters")
    if "\x00" in value:
        raise _ItemInvalid(name, "must not contain NUL characters")
    problem = _text_problem(value, control=False)
    if problem:
        raise _ItemInvalid(name, problem)
    return value


def _property_names(value: Any, name: str) -> list[str]:
    if not isinstance(value, list):
        raise _ItemInvalid(name, f"must be an array of property names, not {_json_type(value)}")
    for property_name in value:
        _check_property_name(property_name, name)
    return value


class _StoredProfile(NamedTuple):
    pk: int
    identity: tuple[str, ...]
    properties: dict
    ctid: str | None = None  # PostgreSQL: the row version we hold locked, found again by a TID scan


def _profiles_write(project: Project, changes: dict[str, list[_ProfileChange]]) -> list[ItemError]:
    """Write the batch's changes; returns the errors of the items the stored values refused."""
    # Sorted, so that concurrent batches lock and create rows in one order (no deadlock).
    distinct_ids = sorted(changes)
    if db.vendor == "postgresql":
        return _profiles_write_postgresql(project, distinct_ids, changes)
    with transaction.atomic():
        stored = {
            row[0]: _StoredProfile(row[1], row[2:-1], row[-1])
            for row in Profile.objects.filter(project=project, distinct_id__in=distinct_ids).values_list(
                "distinct_id", "pk", *IDENTITY_FIELDS, "properties"
            )
        }
        rows, refused = _profiles_merged(stored, distinct_ids, changes)
        Profile.objects.bulk_create(
            [Profile(project=project, distinct_id=d, **row) for d, row in rows.items()],
            update_conflicts=True,
            unique_fields=["project", "distinct_id"],
            update_fields=[*IDENTITY_FIELDS, "properties", "updated_at"],
        )
    return [error for errors in refused.values() for error in errors]


# The batch's merged rows on their way in: COPY into it, then one INSERT and one UPDATE from
# it (an ORM bulk upsert of 10,000 rows spends seconds building and quoting its SQL).
_BATCH_TABLE = "cohortsync_profile_batch"
_BATCH_TABLE_CREATE = f"""CREATE TEMPORARY TABLE IF NOT EXISTS {_BATCH_TABLE} (
    distinct_id text PRIMARY KEY, is_new boolean, email text, first_name text, last_name text, phone_number text,
    properties jsonb
) ON COMMIT DELETE ROWS"""
_BATCH_COLUMNS = f"distinct_id, is_new, {', '.join(IDENTITY_FIELDS)}, properties"


def _profiles_write_postgresql(project: Project, distinct_ids: list[str], changes: dict) -> list[ItemError]:
    import psycopg  # the PostgreSQL driver, only needed here

    profile_table = Profile._meta.db_table
    now = timezone.now()  # the application's clock, as auto_now uses (SQL now() is the transaction's start)
    with transaction.atomic(), db.cursor() as wrapper:
        # Server-side binding: array parameters travel as values instead of being quoted into the SQL.
        cursor = psycopg.Cursor(wrapper.cursor.connection)
        cursor.execute(_BATCH_TABLE_CREATE)
        cursor.execute(f"TRUNCATE {_BATCH_TABLE}")
        stored = _profiles_locked(cursor, project, distinct_ids)
        rows, refused = _profiles_merged(stored, distinct_ids, changes)
        _batch_table_fill(cursor, rows, stored)
        cursor.execute(
            f"""INSERT INTO {profile_table} (project_id, distinct_id, {', '.join(IDENTITY_FIELDS)}, properties,
                created_at, updated_at)
            SELECT %s, distinct_id, {', '.join(IDENTITY_FIELDS)}, properties, %s, %s
            FROM {_BATCH_TABLE} WHERE is_new ORDER BY distinct_id
            ON CONFLICT (project_id, distinct_id) DO NOTHING RETURNING distinct_id""",
            [project.pk, now, now],
        )
        inserted = {row[0] for row in cursor.fetchall()}
        raced = [d for d in rows if d not in stored and d not in inserted]
        if raced:
            # A concurrent batch created these ids after we looked: merge onto its rows.
            stored_raced = _profiles_locked(cursor, project, raced)
            cursor.execute(f"DELETE FROM {_BATCH_TABLE} WHERE distinct_id = ANY(%s)", [raced])
            rows_raced, refused_raced = _profiles_merged(stored_raced, list(stored_raced), changes)
            _batch_table_fill(cursor, rows_raced, stored_raced)
            refused = {d: errors for d, errors in refused.items() if d not in stored_raced} | refused_raced
            stored |= stored_raced
        if stored:
            # The locked rows by TID: no plan can turn this into a scan of the table.
            cursor.execute(
                f"""UPDATE {profile_table} p SET {', '.join(f'{f} = b.{f}' for f in IDENTITY_FIELDS)},
                    properties = b.properties, updated_at = %s
                FROM {_BATCH_TABLE} b WHERE p.ctid = ANY(%s::tid[]) AND b.distinct_id = p.distinct_id""",
                [now, [profile.ctid for profile in stored.values()]],
            )
    return [error for errors in refused.values() for error in errors]


def _profiles_locked(cursor, project: Project, distinct_ids: list[str]) -> dict[str, _StoredProfile]:
    """The stored profiles among these distinct ids, locked until commit so that a concurrent
    batch's changes cannot be lost by our write."""
    # One index lookup a distinct id, locked in the order given. A plain `distinct_id = ANY`
    # lets a planner with stale statistics read every profile of the project instead.
    cursor.execute(
        f"""SELECT p.distinct_id, p.id, {', '.join(f'p.{f}' for f in IDENTITY_FIELDS)}, p.properties::text,
            p.ctid::text
        FROM unnest(%s::text[]) AS wanted (distinct_id) CROSS JOIN LATERAL (
            SELECT *, ctid FROM {Profile._meta.db_table} p
            WHERE p.project_id = %s AND p.distinct_id = wanted.distinct_id FOR UPDATE
        ) p""",
        [distinct_ids, project.pk],
    )
    return {row[0]: _StoredProfile(row[1], row[2:-2], orjson.loads(row[-2]), row[-1]) for row in cursor.fetchall()}


def _batch_table_fill(cursor, rows: dict[str, dict], stored: dict[str, _StoredProfile]) -> None:
    with cursor.copy(f"COPY {_BATCH_TABLE} ({_BATCH_COLUMNS}) FROM STDIN") as copy:
        for distinct_id, row in rows.items():
            copy.write_row((
                distinct_id, distinct_id not in stored, *(row[f] for f in IDENTITY_FIELDS),
                orjson.dumps(row["properties"]).decode(),
            ))


def _profiles_merged(stored: dict[str, _StoredProfile], distinct_ids: Iterable[str],
                     changes: dict[str, list[_ProfileChange]]) -> tuple[dict[str, dict], dict[str, list[ItemError]]]:
    """The rows to write (none for a profile whose every change was refused) and the errors
    of the refused items, by distinct id."""
    rows, refused = {}, {}
    for distinct_id in distinct_ids:
        row, errors = _profile_merged(stored.get(distinct_id), changes[distinct_id])
        if errors:
            refused[distinct_id] = errors
        if row is not None:
            rows[distinct_id] = row
    return rows, refused


def _profile_merged(stored: _StoredProfile | None,
                    changes: list[_ProfileChange]) -> tuple[dict[str, Any] | None, list[ItemError]]:
    """The profile's fields after applying the batch's changes, in order, to the stored ones
    (None when every change was refused), and the errors of the refused ones. A change that
    would take the properties past COHORTSYNC_PROFILE_MAX_BYTES is refused too."""
    merged, errors = _profile_changes_applied(stored, changes, bounded=False)
    if merged is not None and json_size(merged["properties"]) > settings.COHORTSYNC_PROFILE_MAX_BYTES:
        # Rare: again, one change at a time, to refuse the ones that go past it.
        merged, errors = _profile_changes_applied(stored, changes, bounded=True)
    return merged, errors


def json_size(value: Any) -> int:
    """Bytes of `value` as JSON; 0 when it cannot be encoded (the item's own check says why)."""
    try:
        return len(orjson.dumps(value))
    except TypeError:  # not JSON, or nested past orjson's depth
        return 0


def _profile_changes_applied(stored: _StoredProfile | None, changes: list[_ProfileChange], *,
                             bounded: bool) -> tuple[dict[str, Any] | None, list[ItemError]]:
    if stored is None:
        identity, properties = dict.fromkeys(IDENTITY_FIELDS, ""), {}
    else:
        identity, properties = dict(zip(IDENTITY_FIELDS, stored.identity)), dict(stored.properties or {})
    errors = []
    limit = settings.COHORTSYNC_PROFILE_MAX_BYTES
    for change in changes:
        if change.operations or bounded:
            try:
                # On a copy: a refused item changes nothing.
                changed = _properties_operated(properties, change)
                # Only growth is refused: a profile stored past the limit may still shrink.
                if bounded and limit < json_size(changed) > json_size(properties):
                    raise _ItemInvalid(None, f"would grow the profile's properties past {limit:,} bytes of JSON "
                                             "(COHORTSYNC_PROFILE_MAX_BYTES)")
            except _ItemInvalid as invalid:
                errors.append(ItemError(change.index, invalid.field, invalid.message))
                continue
            properties = changed
            identity.update(change.identity)
            continue
        identity.update(change.identity)
        for name, value in change.set_once.items():
            properties.setdefault(name, value)
        properties.update(change.set)
        for name in change.unset:
            properties.pop(name, None)
    if errors and len(errors) == len(changes):
        return None, errors
    return {**identity, "properties": properties}, errors


def _properties_operated(stored: dict[str, Any], change: _ProfileChange) -> dict[str, Any]:
    """A change with operations applied to a copy of the properties (_ItemInvalid: refused)."""
    properties = dict(stored)
    for name, value in change.set_once.items():
        properties.setdefault(name, value)
    properties.update(change.set)
    for operation, name, value in change.operations:
        current = properties.get(name)
        field = f"{operation}.{name}"
        if operation == "add":
            current = 0 if name not in properties else current
            if type(current) not in (int, float):
                raise _ItemInvalid(field, f"the profile's value is {_json_type(current)}, not a number to add to")
            try:
                total = current + value
            except OverflowError:  # an integer too large for a float
                total = math.inf
            if type(total) is int and total not in _INTEGER_RANGE:
                raise _ItemInvalid(field, "the sum is out of range (64-bit integers)")
            if type(total) is float and not math.isfinite(total):
                raise _ItemInvalid(field, "the sum is not a finite number")
            properties[name] = total
            continue
        if name not in properties:
            current = []
        elif not isinstance(current, list):
            raise _ItemInvalid(field, f"the profile's value is {_json_type(current)}, not an array")
        if operation == "append":
            properties[name] = [*current, value]
        elif operation == "union":
            present = {json_key(element) for element in current}
            added = []
            for element in value:
                key = json_key(element)
                if key not in present:
                    present.add(key)
                    added.append(element)
            properties[name] = [*current, *added]
        elif name in properties:  # remove: nothing to do on an absent property
            key = json_key(value)
            properties[name] = [element for element in current if json_key(element) != key]
    for name in change.unset:
        properties.pop(name, None)
    return properties


def json_key(value: Any) -> Any:
    """A hashable key equal for equal JSON values: numbers by value (1 and 1.0), never equal to
    a boolean (Python's True == 1), objects whatever their key order."""
    if isinstance(value, bool) or value is None:
        return (type(value).__name__, value)
    if isinstance(value, (int, float)):
        return ("number", value)
    if isinstance(value, str):
        return ("string", value)
    if isinstance(value, list):
        return ("array", tuple(json_key(element) for element in value))
    return ("object", frozenset((name, json_key(element)) for name, element in value.items()))


# --- Events --------------------------------------------------------------------------------


def events_track(*, project: Project, items: Sequence[dict]) -> BatchResult:
    """Record events ("Data in: events, batch track"); times more than an hour ahead or older
    than the retention window (COHORTSYNC_EVENT_RETENTION_DAYS) are refused."""
    check_batch_size(items)
    encoded = EncodedEvents()
    # Each item is checked as it goes into the COPY: PostgreSQL stores rows while the next are checked.
    events_write(project=project, rows=encoded.rows_of(items))
    return BatchResult(accepted=len(encoded.positions), errors=encoded.errors)


EventRow = tuple[str, str, datetime, str]  # distinct id, name, time, properties as JSON text


class EncodedEvents:
    """A batch's events checked by events_track's rules and encoded as table rows: the error of
    each refused item, and the batch positions of the rows given out."""

    def __init__(self) -> None:
        self.errors: list[ItemError] = []
        self.positions: list[int] = []
        now = timezone.now()
        self._window = _EventWindow(
            latest=now + FUTURE_TOLERANCE,
            earliest=now - timedelta(days=settings.COHORTSYNC_EVENT_RETENTION_DAYS),
        )

    def rows_of(self, items: Sequence[Any]) -> Iterator[EventRow]:
        """The rows of the valid items, in batch order (lazily: a refused item adds an error)."""
        window, errors, positions = self._window, self.errors, self.positions
        for index, item in enumerate(items):
            try:
                row = _event_row(item, window)
            except _ItemInvalid as invalid:
                errors.append(ItemError(index, invalid.field, invalid.message))
                continue
            positions.append(index)
            yield row


@dataclass(frozen=True)
class _EventWindow:
    latest: datetime
    earliest: datetime
    latest_timestamp: float = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "latest_timestamp", self.latest.timestamp())


def _event_row(item: Any, window: _EventWindow) -> EventRow:
    _check_object(item, EVENT_FIELDS)
    distinct_id = _required_name(item, "distinct_id")
    name = _required_name(item, "event")
    if "time" not in item:
        raise _ItemInvalid("time", "is required")
    time = _event_time(item["time"], window)
    properties = _properties(item["properties"], "properties") if "properties" in item else b"{}"
    return distinct_id, name, time, properties.decode()


def _event_time(value: Any, window: _EventWindow) -> datetime:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise _ItemInvalid("time", "must be a finite number of seconds")
        if value > window.latest_timestamp:
            raise _ItemInvalid("time", f"{_TOO_FAR_AHEAD} (unix time in milliseconds? send seconds)")
        try:
            time = datetime.fromtimestamp(value, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise _ItemInvalid("time", "is out of range") from None
    elif isinstance(value, str):
        try:
            time = datetime.fromisoformat(value)
        except ValueError:
            raise _ItemInvalid(
                "time", f"{value[:40]!r} is not an ISO 8601 date-time (e.g. 2024-05-01T12:00:00Z) or unix seconds"
            ) from None
        # Times without an offset are UTC, whatever the server's zone.
        try:
            time = time.replace(tzinfo=UTC) if time.tzinfo is None else time.astimezone(UTC)
        except OverflowError:  # year 1 or 9999 with an offset: outside datetime's range once in UTC
            raise _ItemInvalid("time", "is out of range") from None
    else:
        raise _ItemInvalid("time", f"must be an ISO 8601 string or unix seconds, not {_json_type(value)}")
    if time > window.latest:
        raise _ItemInvalid("time", _TOO_FAR_AHEAD)
    if time < window.earliest:
        days = settings.COHORTSYNC_EVENT_RETENTION_DAYS
        raise _ItemInvalid("time", f"is older than the {days}-day retention window")
    return time


def events_write(*, project: Project, rows: Iterable[EventRow]) -> None:
    """Store event rows (from EncodedEvents), in the caller's transaction if there is one."""
    if db.vendor == "postgresql":
        rows = iter(rows)
        first = next(rows, None)
        if first is None:
            return
        # COPY: several times faster than a multi-row INSERT for batches of thousands.
        copy_sql = f"COPY {Event._meta.db_table} (project_id, distinct_id, name, time, properties) FROM STDIN"
        project_id = project.pk
        # No savepoint inside the caller's transaction: two round trips, and nothing to undo alone.
        with transaction.atomic(savepoint=False), db.cursor() as cursor:
            with cursor.cursor.copy(copy_sql) as copy:
                copy.write_row((project_id, *first))
                for row in rows:
                    copy.write_row((project_id, *row))
    else:
        Event.objects.bulk_create(
            Event(project=project, distinct_id=distinct_id, name=name, time=time, properties=orjson.loads(properties))
            for distinct_id, name, time, properties in rows
        )


def events_prune(*, older_than_days: int | None = None) -> int:
    """Delete events older than the retention window (COHORTSYNC_EVENT_RETENTION_DAYS by
    default), a chunk a statement; returns how many were deleted."""
    days = settings.COHORTSYNC_EVENT_RETENTION_DAYS if older_than_days is None else older_than_days
    cutoff = timezone.now() - timedelta(days=days)
    deleted = rows_delete_in_chunks(rows=Event.objects.filter(time__lt=cutoff), chunk_size=PRUNE_CHUNK)
    if deleted:
        logger.info("pruned %d events older than %s", deleted, cutoff.isoformat())
    return deleted


def rows_delete_in_chunks(*, rows: QuerySet, chunk_size: int) -> int:
    """Delete these rows, one short statement (each its own transaction) a chunk rather than one
    huge DELETE that holds its locks for long; returns how many were deleted."""
    deleted = 0
    while True:
        chunk = rows.values("pk")[:chunk_size]
        count, _ = rows.model._default_manager.filter(pk__in=chunk).delete()
        deleted += count
        if count < chunk_size:
            return deleted


# --- Validation shared by profiles and events -------------------------------------------------


def check_batch_size(items: Sequence) -> None:
    """Refuse a batch (ValidationError, code batch_too_large) of more than MAX_BATCH items."""
    if len(items) > MAX_BATCH:
        raise ValidationError(
            f"A batch holds at most {MAX_BATCH:,} items; this one has {len(items):,}. Send it in smaller batches.",
            code="batch_too_large",
        )


def _check_object(item: Any, allowed: frozenset[str]) -> None:
    if not isinstance(item, dict):
        raise _ItemInvalid(None, f"must be an object, not {_json_type(item)}")
    if not item.keys() <= allowed:
        unknown = next(key for key in item if key not in allowed)
        # Named back as sent, but a lone surrogate cannot go out as UTF-8: escape it.
        field = str(unknown).encode("utf-8", "backslashreplace").decode()
        raise _ItemInvalid(field, f"unknown field (expected {', '.join(sorted(allowed))})")


def distinct_id_problem(value: Any) -> str | None:
    """Why a distinct id is refused, or None if it is kept as sent.

    The one rule of every way in (API, imports, static member lists): a string of 1 to 255
    characters, without surrounding whitespace, control characters or lone surrogates.
    """
    if type(value) is str and 0 < len(value) <= MAX_NAME_LENGTH and not _DISTINCT_ID_SUSPECT.search(value):
        return None
    if not isinstance(value, str):
        return f"must be a string, not {_json_type(value)}"
    if not value.strip():
        return "must not be blank"
    if len(value) > MAX_NAME_LENGTH:
        return f"must be at most {MAX_NAME_LENGTH} characters"
    if _EDGE_WHITESPACE.search(value):
        return "must not begin or end with whitespace (receivers would strip it)"
    return _text_problem(value, control=True)


def _text_problem(value: str, *, control: bool) -> str | None:
    found = (control and _CONTROL.search(value)) or LONE_SURROGATE.search(value)
    if not found:
        return None
    character = f"U+{ord(found.group()):04X} at character {found.start() + 1}"
    if LONE_SURROGATE.match(found.group()):
        return f"must not contain a lone surrogate ({character}): it is not valid Unicode text"
    return f"must not contain control characters ({character})"


def _required_name(item: dict, name: str) -> str:
    if name not in item:
        raise _ItemInvalid(name, "is required")
    value = item[name]
    if name == "distinct_id":
        problem = distinct_id_problem(value)
        if problem:
            raise _ItemInvalid(name, problem)
        return value
    if not isinstance(value, str):
        raise _ItemInvalid(name, f"must be a string, not {_json_type(value)}")
    if not value.strip():
        raise _ItemInvalid(name, "must not be blank")
    return _bounded_text(value, name, MAX_NAME_LENGTH)


def _properties(value: Any, name: str) -> bytes:
    """An object of properties, checked and encoded as JSON."""
    if not isinstance(value, dict):
        raise _ItemInvalid(name, f"must be an object, not {_json_type(value)}")
    if not value:
        return b"{}"
    if not _property_names_plain(value):
        for property_name in value:
            _check_property_name(property_name, name)
    try:
        encoded = orjson.dumps(value)
    except TypeError as exc:  # orjson.JSONEncodeError: not JSON, or text with a lone surrogate
        problem = ("holds a lone surrogate: not valid Unicode text" if "surrogates" in str(exc)
                   else f"nests deeper than {_MAX_NESTING} levels" if "Recursion" in str(exc) else "is not a JSON value")
        raise _ItemInvalid(f"{name}.{_unencodable(value)}", problem) from None
    if b"\\u0000" in encoded and _JSON_NUL.search(encoded):
        raise _ItemInvalid(name, "values must not contain NUL characters")
    return encoded


def _property_names_plain(properties: dict) -> bool:
    """Whether every property name passes _check_property_name, checked at once (False: check them one by one)."""
    try:
        joined = "".join(properties)
    except TypeError:  # a name that is not a string
        return False
    return (all(properties) and max(map(len, properties)) <= MAX_NAME_LENGTH
            and not _PROPERTY_NAME_SUSPECT.search(joined))


def _check_property_name(value: Any, name: str) -> None:
    if not isinstance(value, str):
        raise _ItemInvalid(name, f"property names must be strings, not {_json_type(value)}")
    if not value:
        raise _ItemInvalid(name, "property names must not be empty")
    if len(value) > MAX_NAME_LENGTH:
        raise _ItemInvalid(name, f"property name {value[:20]!r}… is longer than {MAX_NAME_LENGTH} characters")
    if "\x00" in value:
        raise _ItemInvalid(name, "property names must not contain NUL characters")
    if LONE_SURROGATE.search(value):
        raise _ItemInvalid(name, f"property name {value[:20]!r} holds a lone surrogate: not valid Unicode text")


_MAX_NESTING = 254  # orjson's limit when it encodes


def _unencodable(properties: dict) -> str:
    for name, value in properties.items():
        try:
            orjson.dumps(value)
        except TypeError:
            return name
    return "?"


def _json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)
