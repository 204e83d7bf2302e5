"""Mixpanel's ingestion API (/track, /import, /engage, /groups) onto the batch services, with the
same rules and per-item errors as our own batch API, reported by position and Mixpanel's field names.

- Events: `properties.distinct_id`, `event`, `properties.time` (seconds or milliseconds;
  /track: now when absent, and at most 5 days old; /import: required, any age within the
  retention window). `token`, `distinct_id` and `time` leave the properties, the others stay
  (`$insert_id` too, which also de-duplicates resent events).
- Profiles (/engage): `$set` (`$email`, `$first_name`, `$last_name`, `$phone` are the identity
  fields, the rest properties), `$set_once`, `$add`, `$append`, `$union`, `$remove` (the
  profile service's `add`, `append`, `union`, `remove`: on properties, computed under the row
  lock), `$unset` and `$delete`, the updates in order. Mixpanel does not document what `$add`
  does to a non-number or `$append` to a non-list: such an update is refused, with its field.
- Group profiles (/groups): checked (`$group_key`, `$group_id`, one operation) and acknowledged,
  not stored: Cohortsync keeps user profiles only.
"""

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.utils import timezone

from cohorts.ingestion import BatchResult, ItemError, json_size, profile_delete, profiles_upsert
from cohorts.models import Project

from .segment import vendor_field
from .services import events_track_once, insert_id_problem

MAX_BATCH = 2000  # events or profile updates a request, as Mixpanel
MAX_BODY_BYTES = 10 * 1024 * 1024  # uncompressed, as Mixpanel's /import
TRACK_MAX_AGE = timedelta(days=5)  # /track: older events go through /import
# Mixpanel's limits of one event: under 1 MB of JSON, fewer than 255 properties, and fewer than
# 255 keys or elements in every object or array among them.
EVENT_MAX_BYTES = 1024 * 1024
EVENT_MAX_ENTRIES = 254
_MILLISECONDS_FROM = 1e11  # a unix time above this is in milliseconds (year 5138 in seconds)
RESERVED_EVENT_PROPERTIES = ("token", "distinct_id", "time")
IDENTITY_PROPERTIES = {"$email": "email", "$first_name": "first_name", "$last_name": "last_name",
                       "$phone": "phone_number"}
# Mixpanel's operations on a stored value, as the profile service's item keys.
VALUE_OPERATIONS = {"$add": "add", "$append": "append", "$union": "union", "$remove": "remove"}
# Keys of an /engage update that carry no change.
ENGAGE_META = frozenset({"$token", "$distinct_id", "$time", "$ip", "$ignore_time", "$ignore_alias", "$device_id",
                         "$user_id"})
_EVENT_FIELDS = {"distinct_id": "properties.distinct_id", "time": "properties.time"}
_PROFILE_FIELDS = {"distinct_id": "$distinct_id", "set": "$set", "set_once": "$set_once", "unset": "$unset",
                   **{ours: theirs for theirs, ours in VALUE_OPERATIONS.items()},
                   **{ours: f"$set.{theirs}" for theirs, ours in IDENTITY_PROPERTIES.items()}}


class _UpdateInvalid(Exception):
    def __init__(self, field: str | None, message: str):
        super().__init__(message)
        self.field, self.message = field, message


def event_token(event: Any) -> Any:
    """The project token a /track event carries (None when it carries none)."""
    return event_properties(event).get("token")


def update_token(update: Any) -> Any:
    return update.get("$token") if isinstance(update, dict) else None


def mixpanel_events_ingest(*, project: Project, events: Sequence[Any], token: str | None = None,
                           max_age: timedelta | None = None, body_size: int = 0) -> BatchResult:
    """Store /track (`token`: the one every event must carry; `max_age`: 5 days) or /import events
    (`body_size`: the request's, uncompressed; only a body past 1 MB can hold an event past it)."""
    now = timezone.now().timestamp()
    errors: list[ItemError] = []
    items, positions, insert_ids = [], [], []
    for position, event in enumerate(events):
        try:
            if body_size > EVENT_MAX_BYTES and json_size(event) > EVENT_MAX_BYTES:
                raise _UpdateInvalid(None, f"is larger than Mixpanel's {EVENT_MAX_BYTES // 1024:,} KB an event")
            item, insert_id = _event_item(event, token=token, now=now, max_age=max_age)
        except _UpdateInvalid as invalid:
            errors.append(ItemError(position, invalid.field, invalid.message))
            continue
        items.append(item)
        insert_ids.append(insert_id)
        positions.append(position)
    accepted = 0
    if items:
        result = events_track_once(project=project, items=items, insert_ids=insert_ids)
        accepted = result.accepted
        errors += [ItemError(positions[e.index], vendor_field(e.field, _EVENT_FIELDS), e.message) for e in result.errors]
        errors.sort(key=lambda error: error.index)
    return BatchResult(accepted=accepted, errors=errors)


def _event_item(event: Any, *, token: str | None, now: float, max_age: timedelta | None) -> tuple[dict, str | None]:
    if not isinstance(event, dict):
        raise _UpdateInvalid(None, "must be an object")
    properties = event.get("properties")
    if not isinstance(properties, dict):
        raise _UpdateInvalid("properties", "is required, an object")
    if token is not None and properties.get("token") != token:
        raise _UpdateInvalid("properties.token", "must be the same project token as the batch's first event")
    _check_entries(properties, "properties")
    item = {"event": event["event"]} if "event" in event else {}
    item["properties"] = {name: value for name, value in properties.items() if name not in RESERVED_EVENT_PROPERTIES}
    item["distinct_id"] = _distinct_id(properties.get("distinct_id"), "properties.distinct_id")
    time = properties.get("time")
    if time is None:
        if max_age is None:
            raise _UpdateInvalid("properties.time", "is required (unix seconds or milliseconds)")
        time = now
    elif isinstance(time, (int, float)) and not isinstance(time, bool):
        if time > _MILLISECONDS_FROM:
            time /= 1000
        if max_age is not None and time < now - max_age.total_seconds():
            raise _UpdateInvalid("properties.time", f"is more than {max_age.days} days old: send older events to /import")
    item["time"] = time
    insert_id = properties.get("$insert_id")
    if insert_id is not None and (problem := insert_id_problem(insert_id)):
        raise _UpdateInvalid("properties.$insert_id", problem)
    return item, insert_id or None


def _check_entries(properties: dict, field: str) -> None:
    """Mixpanel's fewer than 255 properties, keys of an object, or elements of an array (a loop,
    not recursion: JSON may nest deeper than Python's recursion limit)."""
    pending: list[tuple[dict | list, str]] = [(properties, field)]
    while pending:
        value, path = pending.pop()
        if len(value) > EVENT_MAX_ENTRIES:
            what = "properties" if value is properties else "keys" if isinstance(value, dict) else "elements"
            raise _UpdateInvalid(path, f"has {len(value):,} {what}: Mixpanel takes fewer than {EVENT_MAX_ENTRIES + 1}")
        for name, member in (value.items() if isinstance(value, dict) else enumerate(value)):
            if type(member) is dict or type(member) is list:
                pending.append((member, f"{path}.{name}"))


def _distinct_id(value: Any, field: str) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # Mixpanel's libraries pass numeric ids through
    if value is None:
        raise _UpdateInvalid(field, "is required")
    return value


def mixpanel_engage_ingest(*, project: Project, updates: Sequence[Any], token: str | None = None) -> BatchResult:
    """Apply /engage profile updates in order (`token`: the one every update must carry)."""
    errors: list[ItemError] = []
    accepted = 0
    pending: list[dict] = []
    positions: list[int] = []

    def flush() -> None:
        nonlocal accepted
        if pending:
            result = profiles_upsert(project=project, items=pending)
            accepted += result.accepted
            errors.extend(ItemError(positions[e.index], vendor_field(e.field, _PROFILE_FIELDS), e.message)
                          for e in result.errors)
            pending.clear()
            positions.clear()

    for position, update in enumerate(updates):
        try:
            item, delete = _profile_change(update, token=token)
        except _UpdateInvalid as invalid:
            errors.append(ItemError(position, invalid.field, invalid.message))
            continue
        if delete:
            flush()  # the updates before it apply first
            profile_delete(project=project, distinct_id=item["distinct_id"])
            accepted += 1
        else:
            pending.append(item)
            positions.append(position)
    flush()
    errors.sort(key=lambda error: error.index)
    return BatchResult(accepted=accepted, errors=errors)


def _profile_change(update: Any, *, token: str | None) -> tuple[dict, bool]:
    _check_update(update, token=token)
    distinct_id = _distinct_id(update.get("$distinct_id"), "$distinct_id")
    if not isinstance(distinct_id, str) or not distinct_id.strip():
        raise _UpdateInvalid("$distinct_id", "must be a non-blank string")
    unknown = next((key for key in update if key not in ENGAGE_META and key not in _OPERATIONS), None)
    if unknown is not None:
        raise _UpdateInvalid(str(unknown), f"unknown key (operations: {', '.join(_OPERATIONS)})")
    item: dict[str, Any] = {"distinct_id": distinct_id}
    if "$delete" in update:
        return item, True
    if "$set" in update:
        properties = _operation_object(update, "$set")
        for name, value in properties.items():
            field = IDENTITY_PROPERTIES.get(name)
            if field is None:
                item.setdefault("set", {})[name] = value
            else:
                item[field] = "" if value is None else value
    if "$set_once" in update:
        item["set_once"] = _operation_object(update, "$set_once")
    if "$unset" in update:
        names = update["$unset"]
        if not isinstance(names, list):
            raise _UpdateInvalid("$unset", "must be an array of property names")
        for name in names:
            if name in IDENTITY_PROPERTIES:
                item[IDENTITY_PROPERTIES[name]] = ""
        item["unset"] = [name for name in names if name not in IDENTITY_PROPERTIES]
    for operation, ours in VALUE_OPERATIONS.items():
        if operation in update:
            item[ours] = _operation_object(update, operation)
            # Identity fields are text, not numbers or lists: these operations apply to properties.
            if identity := next((name for name in item[ours] if name in IDENTITY_PROPERTIES), None):
                raise _UpdateInvalid(f"{operation}.{identity}", "is an identity field (text): change it with $set")
    return item, False


_OPERATIONS = ("$set", "$set_once", "$add", "$append", "$union", "$remove", "$unset", "$delete")


def _operation_object(update: dict, operation: str) -> dict:
    value = update[operation]
    if not isinstance(value, dict):
        raise _UpdateInvalid(operation, "must be an object of properties")
    return value


GROUP_OPERATIONS = ("$set", "$set_once", "$unset", "$union", "$remove", "$delete")
GROUP_META = frozenset({"$token", "$group_key", "$group_id", "$time", "$ip", "$ignore_time"})


def mixpanel_groups_ingest(*, updates: Sequence[Any], token: str | None = None) -> BatchResult:
    """Check /groups updates (group profiles) and acknowledge them: Cohortsync keeps user
    profiles only, so nothing is stored (as Segment's `group` calls)."""
    errors = []
    for position, update in enumerate(updates):
        try:
            _group_update_check(update, token=token)
        except _UpdateInvalid as invalid:
            errors.append(ItemError(position, invalid.field, invalid.message))
    return BatchResult(accepted=len(updates) - len(errors), errors=errors)


def _check_update(update: Any, *, token: str | None) -> None:
    """An /engage or /groups update is an object carrying the batch's token."""
    if not isinstance(update, dict):
        raise _UpdateInvalid(None, "must be an object")
    if token is not None and update.get("$token") != token:
        raise _UpdateInvalid("$token", "must be the same project token as the batch's first update")


def _group_update_check(update: Any, *, token: str | None) -> None:
    _check_update(update, token=token)
    if not isinstance(update.get("$group_key"), str) or not update["$group_key"].strip():
        raise _UpdateInvalid("$group_key", "is required, a non-blank string")
    group_id = update.get("$group_id")
    if isinstance(group_id, bool) or not isinstance(group_id, (str, int, float)) or group_id == "":
        raise _UpdateInvalid("$group_id", "is required, a string or a number")
    unknown = next((key for key in update if key not in GROUP_META and key not in GROUP_OPERATIONS), None)
    if unknown is not None:
        raise _UpdateInvalid(str(unknown), f"unknown key (operations: {', '.join(GROUP_OPERATIONS)})")
    operations = [key for key in update if key in GROUP_OPERATIONS]
    if len(operations) != 1:
        raise _UpdateInvalid(None, f"must hold one operation ({', '.join(GROUP_OPERATIONS)}), "
                                   f"not {len(operations)}")
    operation = operations[0]
    if operation == "$unset":
        if not isinstance(update[operation], list):
            raise _UpdateInvalid(operation, "must be an array of property names")
    elif operation != "$delete":
        values = _operation_object(update, operation)
        if operation == "$union" and (name := next((n for n, v in values.items() if not isinstance(v, list)), None)):
            raise _UpdateInvalid(f"$union.{name}", "must be an array of values")


def event_properties(event: Any) -> dict:
    if isinstance(event, dict) and isinstance(event.get("properties"), dict):
        return event["properties"]
    return {}
