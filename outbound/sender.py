"""The HTTP layer: POST one page to one destination. Knows nothing of cohorts.

One `requests.Session` per run (keep-alive), connect/read timeouts, no redirects, a cap
on the response body read, and the SSRF guard of requests-hardened, which checks the
address actually connected to.
"""

import email.utils
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

import requests
from django.conf import settings
from requests_hardened import Config, HTTPSession
from requests_hardened.ip_filter import InvalidIPAddress

from . import limits, policy
from .policy import Outcome, Verdict
from .secrets import redact_secrets, sent_secrets
from .signals import page_attempted
from .signing import signature_headers

logger = logging.getLogger(__name__)

USER_AGENT = "Cohortsync/0.1.0"
# Our own SSRF guard, not the receiver, refused: say so and name the setting that allows it.
GUARD_REFUSAL = (
    "Cohortsync refused to connect: the destination address is private, loopback or reserved "
    "(set COHORTSYNC_ALLOW_PRIVATE_URLS=true to allow such addresses)"
)


@dataclass(frozen=True)
class Destination:
    url: str
    auth_username: str = ""
    auth_password: str = ""
    api_key: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str = "application/json"
    signing_secrets: tuple[str, ...] = ()
    connection_id: int | None = None  # labels metrics, keys the receiver's limits; never sent
    max_requests_per_second: float | None = None  # outbound.limits
    max_concurrent_runs: int | None = None

    @classmethod
    def from_connection(cls, connection) -> "Destination":
        return cls(
            url=connection.url,
            auth_username=connection.auth_username,
            auth_password=connection.auth_password,
            api_key=connection.api_key,
            headers=tuple((name, value) for name, value in (connection.headers or {}).items() if value),
            content_type=connection.content_type or "application/json",
            signing_secrets=connection.active_signing_secrets,
            connection_id=connection.pk,
            max_requests_per_second=connection.max_requests_per_second,
            max_concurrent_runs=connection.max_concurrent_runs,
        )

    @property
    def receiver_limits(self) -> limits.ReceiverLimits:
        return limits.ReceiverLimits(self.connection_id, self.max_requests_per_second, self.max_concurrent_runs)


@dataclass(frozen=True)
class PostResult:
    verdict: Verdict
    http_status: int | None
    latency_ms: int
    response_excerpt: str
    retry_after: float | None = None


def open_session() -> requests.Session:
    config = Config(
        ip_filter_enable=not settings.COHORTSYNC_ALLOW_PRIVATE_URLS,
        ip_filter_allow_loopback_ips=False,
        never_redirect=True,
        default_timeout=(settings.COHORTSYNC_CONNECT_TIMEOUT, settings.COHORTSYNC_READ_TIMEOUT),
        user_agent_override=USER_AGENT,
    )
    session = HTTPSession(config)
    session.trust_env = False  # no proxies or .netrc credentials from the worker's environment
    return session


def page_request(destination: Destination, body: bytes, page_id: str, sent_at: datetime) -> requests.Request:
    """The request for one try of a page (docs/receiving.md shows what it becomes on the wire)."""
    headers = dict(destination.headers)
    headers.update({"Content-Type": destination.content_type, "webhook-id": page_id})
    headers.update(signature_headers(signing_secrets=destination.signing_secrets, page_id=page_id,
                                     sent_at=sent_at, body=body))
    if destination.api_key:
        headers["x-api-key"] = destination.api_key
    auth = (destination.auth_username, destination.auth_password) if destination.auth_username else None
    return requests.Request("POST", destination.url, data=body, headers=headers, auth=auth)


def post_page(session: requests.Session, destination: Destination, body: bytes, page_id: str) -> PostResult:
    # Signed per try: the timestamp is the moment of sending, the id stays the page's.
    request = page_request(destination, body, page_id, datetime.now(timezone.utc))
    started = time.monotonic()
    try:
        response = session.post(request.url, data=request.data, headers=request.headers, auth=request.auth,
                                stream=True)
    except InvalidIPAddress:
        return _failed(Outcome.PAUSE, GUARD_REFUSAL, started)
    except requests.Timeout:
        return _failed(Outcome.TRANSIENT, "timed out", started)
    except requests.ConnectionError as exc:
        return _failed(Outcome.TRANSIENT, f"connection error: {type(exc).__name__}", started)
    except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema):
        return _failed(Outcome.PAUSE, "invalid destination URL", started)
    except (requests.exceptions.InvalidHeader, UnicodeError):
        # A connection saved before header validation tightened: an operator must fix it.
        return _failed(Outcome.PAUSE, "a custom header cannot be sent (invalid name or value)", started)
    except requests.RequestException as exc:
        return _failed(Outcome.FAIL, f"request failed: {type(exc).__name__}", started)
    try:
        content = _read_capped(response)
    except (requests.RequestException, OSError) as exc:
        response.close()
        return _failed(Outcome.TRANSIENT, f"reading the response failed: {type(exc).__name__}", started)
    latency_ms = int((time.monotonic() - started) * 1000)
    # A receiver echoing our request back must not put our credentials into what we store and show.
    content = redact_secrets(content, secrets=sent_secrets(destination))
    verdict = policy.classify_response(response.status_code, response.reason or "", content,
                                       location=response.headers.get("Location"))
    return PostResult(
        verdict=verdict,
        http_status=response.status_code,
        latency_ms=latency_ms,
        response_excerpt=policy.storable_text(content.decode("utf-8", errors="replace"))[:1000],
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
    )


def post_with_retries(
    *,
    session: requests.Session,
    destination: Destination,
    body: bytes,
    page_id: str,
    before_try: Callable[[int], None] | None = None,
    record: Callable[[int, PostResult], None] | None = None,
) -> Verdict:
    """POST one body with the contract's retries: transient outcomes are tried again after
    COHORTSYNC_RETRY_DELAYS (with jitter, honouring Retry-After up to its cap).

    The one retry loop of every delivery surface (sync pages, message batches, alerts).
    `before_try(attempt)` may raise to stop (a lost claim); `record(attempt, result)` keeps
    each try (a DeliveryAttempt row).
    """
    delays = settings.COHORTSYNC_RETRY_DELAYS
    attempt = 0
    while True:
        attempt += 1
        if before_try is not None:
            before_try(attempt)
        limits.wait_for_turn(destination.receiver_limits)  # the connection's rate and any receiver's Retry-After
        result = post_page(session, destination, body, page_id)
        if result.retry_after is not None and result.verdict.outcome is Outcome.TRANSIENT:
            limits.hold_off(destination.receiver_limits, result.retry_after)  # every sender on the connection waits
        if record is not None:
            record(attempt, result)
        page_attempted.send(sender=Destination, connection_id=destination.connection_id, attempt=attempt,
                            outcome=result.verdict.outcome.value, http_status=result.http_status,
                            latency_ms=result.latency_ms)
        verdict = result.verdict
        if verdict.outcome is not Outcome.TRANSIENT or attempt > len(delays):
            return verdict
        wait = delays[attempt - 1] * random.uniform(1.0, 1.1)  # jitter spreads retries of many senders
        if result.retry_after is not None:
            if result.retry_after > settings.COHORTSYNC_RETRY_AFTER_MAX:
                # Retrying sooner than asked would be rude; the next scheduled attempt tries again.
                return Verdict(Outcome.TRANSIENT, f"{verdict.message} (Retry-After {result.retry_after:.0f}s)",
                               verdict.code)
            wait = max(wait, result.retry_after)
        time.sleep(wait)


def _read_capped(response: requests.Response) -> bytes:
    content = response.raw.read(policy.RESPONSE_EXCERPT_BYTES + 1, decode_content=True)
    if len(content) > policy.RESPONSE_EXCERPT_BYTES:
        response.close()  # an oversized body: drop the connection rather than read it all
        return content[: policy.RESPONSE_EXCERPT_BYTES]
    response.raw.release_conn()  # fully read: hand the connection back for keep-alive
    return content


def _failed(outcome: Outcome, message: str, started: float) -> PostResult:
    return PostResult(
        verdict=Verdict(outcome, message),
        http_status=None,
        latency_ms=int((time.monotonic() - started) * 1000),
        response_excerpt="",
    )


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


MASKED = "••••••••"


def masked_request_headers(destination: Destination, body: bytes, page_id: str) -> dict[str, str]:
    """The headers one try of this request would carry, with every secret value masked (a dry run shows them).

    Custom header values are write-only secrets like the credentials; the signature is masked too.
    """
    request = page_request(destination, body, page_id, datetime.now(timezone.utc)).prepare()
    secret_names = {"authorization", "x-api-key", "webhook-signature", *(name.lower() for name, _ in destination.headers)}
    headers = {"User-Agent": USER_AGENT, **request.headers}
    return {name: MASKED if name.lower() in secret_names else value for name, value in headers.items()}
