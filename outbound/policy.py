"""Delivery policy as data: limits, status classes and the one classifier (docs/contract.md)."""

import enum
from dataclasses import dataclass

import orjson

PAGE_SIZE = 1000
MAX_EXPORTED_PROPERTIES = 50
DEFAULT_INTERVAL_MINUTES = 30
MIN_INTERVAL_MINUTES = 1
MAX_INTERVAL_MINUTES = 7 * 24 * 60
RESPONSE_EXCERPT_BYTES = 4096
ERROR_MESSAGE_CHARS = 500

PAUSE_STATUSES = frozenset({400, 401, 403, 404, 410})


class Outcome(enum.StrEnum):
    SUCCESS = "success"
    TRANSIENT = "transient"  # retry with backoff, then fail the run
    PAUSE = "pause"  # stop, pause the sync, tell the people who set it up
    FAIL = "fail"  # fail the run without retries


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    message: str = ""
    code: int | None = None


def classify_status(status: int) -> Outcome:
    if 200 <= status < 300:
        return Outcome.SUCCESS
    if status == 429 or 500 <= status < 600:
        return Outcome.TRANSIENT
    if status in PAUSE_STATUSES:
        return Outcome.PAUSE
    return Outcome.FAIL


def classify_response(status: int, reason: str, body: bytes) -> Verdict:
    """What a receiver's answer means: HTTP status, then a 2xx body that says failure."""
    payload = _json_object(body)
    error = payload.get("error") if payload else None
    message = error.get("message") if isinstance(error, dict) else None
    message = storable_text(str(message))[:ERROR_MESSAGE_CHARS] if message else ""
    outcome = classify_status(status)
    if outcome is Outcome.SUCCESS:
        if payload and payload.get("status") == "failure":
            code = error.get("code") if isinstance(error, dict) else None
            code = code if isinstance(code, int) and not isinstance(code, bool) else None
            inner = classify_status(code) if code is not None else Outcome.FAIL
            if inner is Outcome.SUCCESS:  # "failure" with a 2xx code: still a failure
                inner = Outcome.FAIL
            return Verdict(inner, message or f"receiver reported failure (code {code})", code)
        return Verdict(Outcome.SUCCESS, "" if payload is not None else "response body was not a JSON object", status)
    return Verdict(outcome, message or f"{status} {reason}".strip(), status)


def _json_object(body: bytes) -> dict | None:
    try:
        value = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def storable_text(text: str) -> str:
    """Receiver text as the database can keep it (PostgreSQL refuses NUL characters)."""
    return text.replace("\x00", "\ufffd")
