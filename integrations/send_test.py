"""A connection's test send: one harmless sample page, in the connection's own format."""

import uuid
from dataclasses import dataclass

from django.utils import timezone

from outbound import policy
from outbound.sender import Destination, open_session, post_page

from . import payloads
from .models import Connection
from .templating import PayloadTemplateError


@dataclass(frozen=True)
class ConnectionTestResult:
    outcome: str  # policy.Outcome value
    http_status: int | None
    latency_ms: int
    response_excerpt: str
    message: str


def connection_send_test(*, connection: Connection) -> ConnectionTestResult:
    """POST one harmless sample page (an empty `add_members` for a test cohort) and report the answer.

    Empty on purpose: a receiver that applies it changes nothing. No sync state is touched.
    The page is in the connection's own format, signed and authenticated like a real one.
    """
    session_id = uuid.uuid4()
    context = payloads.PageContext(
        action="add_members", project_id=str(connection.project_id), cohort_id="cohortsync-connection-test",
        cohort_name="Cohortsync connection test", cohort_description="A test page sent from Cohortsync; it adds nobody.",
        session_id=str(session_id), page_id=payloads.page_id(session_id, 1), page_count=1, total_pages=1,
        computed_time=int(timezone.now().timestamp()),
    )
    try:
        body = payloads.page_renderer(connection)(context, [], ())
    except PayloadTemplateError as exc:
        return ConnectionTestResult(outcome="pause", http_status=None, latency_ms=0, response_excerpt="",
                                    message=f"the payload template failed: {exc}")
    with open_session() as session:
        result = post_page(session, Destination.from_connection(connection), body, context.page_id)
    outcome, message = result.verdict.outcome, result.verdict.message
    if result.http_status == 404 and policy.is_contract_failure(result.response_excerpt.encode()):
        # Receivers that 404 an unknown cohort on purpose (to pause a sender) answer the test
        # cohort so too: the URL, the credentials and the format all worked.
        outcome = policy.Outcome.SUCCESS
        message = f"reachable and authenticated; the receiver does not know the test cohort ({message})"
    return ConnectionTestResult(
        outcome=str(outcome),
        http_status=result.http_status,
        latency_ms=result.latency_ms,
        response_excerpt=result.response_excerpt[:500],
        message=message,
    )
