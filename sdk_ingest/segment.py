"""Segment's HTTP Tracking API (identify, track, page, screen, alias, group, batch) onto the
batch services: each message becomes a profile upsert or an event, with the same rules and
per-item errors as our own batch API, reported by the message's position and Segment's field names.

- identify: `userId` (else `anonymousId`) is the distinct id; traits `email`, `firstName`,
  `lastName`, `phone` are the identity fields (null clears one), other traits are `set`.
- track: `event`, `properties`, `timestamp` (else `originalTimestamp`, else the time received);
  with `sentAt` (the message's, else the request's) corrected for the device's clock skew as
  Segment does: receivedAt − (sentAt − timestamp).
- page / screen: events named `$page` / `$screen`, with the message's `name` and `category`
  added to the properties.
- track, page, screen: `context` (less `library`, the SDK's own name and version) is kept in
  the event's properties as `$context`; `messageId` de-duplicates resent events.
- alias and group: acknowledged (counted as accepted) and not stored: Cohortsync has no
  identity merging and no group profiles.
- Whatever else a message carries (`writeKey`, `sentAt`, `_metadata`, `integrations`, …) is
  not stored.
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from cohorts.ingestion import BatchResult, ItemError, profiles_upsert
from cohorts.models import Project

from .payloads import PayloadInvalid
from .services import events_track_once, insert_id_problem

MESSAGE_MAX_BYTES = 32 * 1024  # Segment: 32 KB per call and per message in a batch
BATCH_MAX_BYTES = 500 * 1024  # Segment: 500 KB per batch request
BATCH_MAX_MESSAGES = 2_500  # Segment: messages past it are refused with a 200 answer
MESSAGE_TYPES = ("identify", "track", "page", "screen", "alias", "group")
ACKNOWLEDGED_TYPES = frozenset({"alias", "group"})
EVENT_NAMES = {"page": "$page", "screen": "$screen"}
TRAIT_FIELDS = {"email": "email", "firstName": "first_name", "lastName": "last_name", "phone": "phone_number"}
# Our item fields as Segment's clients name them, for per-item errors.
_PROFILE_FIELDS = {"distinct_id": "userId", "set": "traits", **{ours: f"traits.{theirs}"
                                                                for theirs, ours in TRAIT_FIELDS.items()}}
_EVENT_FIELDS = {"distinct_id": "userId", "time": "timestamp"}


class _MessageInvalid(Exception):
    def __init__(self, field: str | None, message: str):
        super().__init__(message)
        self.field, self.message = field, message


def segment_messages_ingest(*, project: Project, messages: Sequence[Any], message_type: str | None = None,
                            sent_at: Any = None) -> BatchResult:
    """Store a batch of Segment messages (`message_type` for the single-call endpoints, else each
    message's `type`; `sent_at`: the batch's `sentAt`); errors carry the message's position and
    Segment's field name."""
    errors: list[ItemError] = []
    profiles, profile_positions = [], []
    events, event_positions, insert_ids = [], [], []
    acknowledged = 0
    received = _Received(datetime.now(tz=UTC), sent_at)
    for position, message in enumerate(messages):
        if position >= BATCH_MAX_MESSAGES:
            errors.append(ItemError(position, None, f"is past Segment's {BATCH_MAX_MESSAGES:,} messages a batch: "
                                    "not stored, send it in another batch"))
            continue
        try:
            kind = _message_type(message, message_type)
            if kind in ACKNOWLEDGED_TYPES:
                _distinct_id(message)
                acknowledged += 1
            elif kind == "identify":
                profiles.append(_profile_item(message))
                profile_positions.append(position)
            else:
                insert_id = _message_id(message)
                events.append(_event_item(message, kind, received))
                insert_ids.append(insert_id)
                event_positions.append(position)
        except _MessageInvalid as invalid:
            errors.append(ItemError(position, invalid.field, invalid.message))
    accepted = acknowledged
    if profiles:
        result = profiles_upsert(project=project, items=profiles)
        accepted += result.accepted
        errors += _their_errors(result, profile_positions, _PROFILE_FIELDS)
    if events:
        result = events_track_once(project=project, items=events, insert_ids=insert_ids)
        accepted += result.accepted
        errors += _their_errors(result, event_positions, _EVENT_FIELDS)
    errors.sort(key=lambda error: error.index)
    return BatchResult(accepted=accepted, errors=errors)


def _message_type(message: Any, message_type: str | None) -> str:
    if not isinstance(message, dict):
        raise _MessageInvalid(None, "must be an object")
    if message_type is not None:
        return message_type
    kind = message.get("type")
    if kind not in MESSAGE_TYPES:
        raise _MessageInvalid("type", f"must be one of {', '.join(MESSAGE_TYPES)}")
    return kind


def _distinct_id(message: dict) -> Any:
    distinct_id = message.get("userId")
    if distinct_id is None or distinct_id == "":
        distinct_id = message.get("anonymousId")
    if distinct_id is None or distinct_id == "":
        raise _MessageInvalid("userId", "userId or anonymousId is required")
    # Some SDKs send numeric user ids; a string is what every rule compares.
    if isinstance(distinct_id, int) and not isinstance(distinct_id, bool):
        return str(distinct_id)
    return distinct_id


def _profile_item(message: dict) -> dict:
    item = {"distinct_id": _distinct_id(message)}
    traits = message.get("traits")
    if traits is None:
        return item
    if not isinstance(traits, dict):
        raise _MessageInvalid("traits", "must be an object")
    properties = {}
    for name, value in traits.items():
        field = TRAIT_FIELDS.get(name)
        if field is None:
            properties[name] = value
        else:
            item[field] = "" if value is None else value
    if properties:
        item["set"] = properties
    return item


class _Received:
    """When the request came in, and the `sentAt` of its batch."""

    def __init__(self, at: datetime, sent_at: Any):
        self.at, self.sent_at = at, sent_at

    def time(self, message: dict) -> Any:
        """The message's time: its `timestamp` (else `originalTimestamp`) corrected for the device's
        clock skew, Segment's receivedAt − (sentAt − originalTimestamp), when both are date-times
        (else as sent, for the usual check); the time received when it has none."""
        original = message.get("timestamp") or message.get("originalTimestamp")
        if not original:
            return self.at.isoformat()
        sent_time = _iso_time(message.get("sentAt") or self.sent_at)
        original_time = _iso_time(original) if sent_time is not None else None
        if original_time is None:
            return original
        try:
            return (self.at - (sent_time - original_time)).isoformat()
        except OverflowError:  # years apart beyond datetime's range: refused by the usual check
            return original


def _iso_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        time = datetime.fromisoformat(value)
    except ValueError:
        return None
    return time.replace(tzinfo=UTC) if time.tzinfo is None else time


def _event_item(message: dict, kind: str, received: _Received) -> dict:
    item = {"distinct_id": _distinct_id(message), "time": received.time(message)}
    if kind == "track":
        if "event" in message:
            item["event"] = message["event"]
    else:
        item["event"] = EVENT_NAMES[kind]
    properties = message.get("properties")
    if properties is not None and not isinstance(properties, dict):
        raise _MessageInvalid("properties", "must be an object")
    properties = dict(properties or {})
    if kind in EVENT_NAMES:
        properties.update({name: message[name] for name in ("name", "category") if message.get(name) is not None})
    context = message.get("context")
    if isinstance(context, dict) and context.keys() - {"library"}:
        properties["$context"] = context = dict(context)
        context.pop("library", None)
    item["properties"] = properties
    return item


def _message_id(message: dict) -> str | None:
    message_id = message.get("messageId")
    if message_id is None or message_id == "":
        return None
    if problem := insert_id_problem(message_id):
        raise _MessageInvalid("messageId", problem)
    return message_id


def _their_errors(result: BatchResult, positions: list[int], names: dict[str, str]) -> list[ItemError]:
    """Errors of the batch service, by the message's position and the vendor's field names."""
    return [ItemError(positions[error.index], vendor_field(error.field, names), error.message)
            for error in result.errors]


def vendor_field(field: str | None, names: dict[str, str]) -> str | None:
    if field is None:
        return None
    head, dot, rest = field.partition(".")
    return names.get(head, head) + dot + rest


def segment_payload_messages(payload: Any, *, batch: bool, body_size: int) -> list:
    """The messages of a call (one) or a batch (its `batch` array), refused as a whole past
    Segment's 32 KB a message."""
    if not isinstance(payload, dict):
        raise PayloadInvalid("The body must be a JSON object.")
    if not batch:
        if body_size > MESSAGE_MAX_BYTES:
            raise PayloadInvalid(f"The call is larger than {MESSAGE_MAX_BYTES // 1024} KB.", code="payload_too_large")
        return [payload]
    messages = payload.get("batch")
    if not isinstance(messages, list):
        raise PayloadInvalid("`batch` is required: an array of messages.")
    if body_size > MESSAGE_MAX_BYTES:  # only then can one message be larger
        for position, message in enumerate(messages):
            if len(orjson.dumps(message)) > MESSAGE_MAX_BYTES:
                raise PayloadInvalid(f"batch[{position}] is larger than {MESSAGE_MAX_BYTES // 1024} KB.",
                                     code="payload_too_large")
    return messages


def analytics_js_settings(*, write_key: str, api_host: str, protocol: str) -> dict:
    """What analytics.js loads from `<cdnURL>/v1/projects/<write key>/settings`: only its
    Segment.io destination, sending to `<protocol>://<api_host>/<t|i|p|s|a|g>` (or `/b`, batching)
    with this write key, and no metrics sent (its `/m`). The same document for any key, valid or
    not: it tells nothing about keys, and the key is checked when events arrive."""
    return {
        "integrations": {"Segment.io": {"apiKey": write_key, "apiHost": api_host, "protocol": protocol}},
        "plan": {},
        "metrics": {"sampleRate": 0},
        "middlewareSettings": {},
        "enabledMiddleware": {},
        "legacyVideoPluginsEnabled": False,
        "remotePlugins": [],
    }
