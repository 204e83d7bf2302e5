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

# A 4xx says the request will never succeed as it is, so the sync pauses for an operator,
# except these, which say "later" (Request Timeout, Too Early, Too Many Requests).
TRANSIENT_CLIENT_STATUSES = frozenset({408, 425, 429})
# 3xx too: redirects are not followed (SSRF guard), so only a new URL can fix one.
PAUSE_STATUSES = frozenset(range(300, 500)) - TRANSIENT_CLIENT_STATUSES
# A receiver that answers these for add/remove has forgotten the cohort: only a full load
# gives it back its copy, so resuming such a pause runs one (services.sync_resume).
FORGOTTEN_COHORT_STATUSES = frozenset({404, 410})
EXPLANATION_CHARS = 200  # of a body that says nothing in a known shape


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
    if status in TRANSIENT_CLIENT_STATUSES or 500 <= status < 600:
        return Outcome.TRANSIENT
    if status in PAUSE_STATUSES:
        return Outcome.PAUSE
    return Outcome.FAIL


def classify_response(status: int, reason: str, body: bytes, *, location: str | None = None) -> Verdict:
    """What a receiver's answer means: HTTP status, then a 2xx body that says failure.

    `location` is a redirect's Location header: the pause message names it.
    """
    payload = _json_object(body)
    error = payload.get("error") if payload else None
    message = receiver_explanation(payload)
    outcome = classify_status(status)
    if 300 <= status < 400:
        target = storable_text(location or "(no Location header)")[:ERROR_MESSAGE_CHARS // 2]
        return Verdict(outcome, f"the receiver redirects to {target}; redirects are not followed: update the URL",
                       status)
    if outcome is Outcome.SUCCESS:
        if payload and payload.get("status") == "failure":
            code = error.get("code") if isinstance(error, dict) else None
            code = code if isinstance(code, int) and not isinstance(code, bool) else None
            inner = classify_status(code) if code is not None else Outcome.FAIL
            if inner is Outcome.SUCCESS:  # "failure" with a 2xx code: still a failure
                inner = Outcome.FAIL
            return Verdict(inner, message or f"receiver reported failure (code {code})", code)
        return Verdict(Outcome.SUCCESS, "" if payload is not None else "response body was not a JSON object", status)
    if not message:
        excerpt = " ".join(storable_text(body.decode("utf-8", errors="replace")).split())
        message = f"{status} {reason}".strip()
        if excerpt:
            message = f"{message}: {excerpt[:EXPLANATION_CHARS]}"
    return Verdict(outcome, message[:ERROR_MESSAGE_CHARS], status)


def receiver_explanation(payload: dict | None) -> str:
    """The receiver's own words, from the shapes frameworks commonly answer with: the
    contract's `error.message`, `error` as text, DRF's `detail`, `message`, JSON:API's and
    GraphQL's `errors[0].message|detail|title`; "" when there are none."""
    if not payload:
        return ""
    error = payload.get("error")
    errors = payload.get("errors")
    first = errors[0] if isinstance(errors, list) and errors else None
    candidates = [
        error.get("message") if isinstance(error, dict) else error,
        payload.get("detail"),
        payload.get("message"),
        *((first.get(key) for key in ("message", "detail", "title")) if isinstance(first, dict) else (first,)),
    ]
    for candidate in candidates:
        if isinstance(candidate, str) and candidate.strip():
            return storable_text(candidate.strip())[:ERROR_MESSAGE_CHARS]
    return ""


def is_contract_failure(body: bytes) -> bool:
    """Whether a body is the contract's answer saying failure: `{"status": "failure", "error": {...}}`."""
    payload = _json_object(body)
    return bool(payload) and payload.get("status") == "failure" and isinstance(payload.get("error"), dict)


def _json_object(body: bytes) -> dict | None:
    try:
        value = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def storable_text(text: str) -> str:
    """Receiver text as the database can keep it (PostgreSQL refuses NUL characters)."""
    return text.replace("\x00", "\ufffd")
