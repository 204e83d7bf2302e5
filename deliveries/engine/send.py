"""Send: every page in order, each with the retry policy; stop at the first that does not succeed."""

from integrations import payloads
from integrations.templating import PayloadTemplateError
from outbound.claims import ClaimHeartbeat, ClaimLost
from outbound.limits import ReceiverBusy, run_slot
from outbound.policy import Outcome, Verdict
from outbound.sender import Destination, open_session, post_with_retries

from ..models import Sync, SyncRun
from .pages import stream_pages
from .plan import ACTIONS, PagePlan, page_sessions
from .records import RunRecords


def deliver_run(*, run: SyncRun, sync: Sync, page_plans: list[PagePlan], token, progress=None,
                heartbeat: ClaimHeartbeat | None = None) -> Verdict:
    """Send every page in order, from the first the run has not delivered yet (a resumed run);
    stop at the first page that does not succeed."""
    connection = sync.connection
    destination = Destination.from_connection(connection)
    try:
        render = payloads.page_renderer(connection)
    except PayloadTemplateError as exc:  # saved before validation tightened: an operator must fix it
        return Verdict(Outcome.PAUSE, f"the payload template is invalid: {exc}")
    properties = tuple(sync.properties or ())
    records = RunRecords(run, heartbeat, token)
    try:
        with run_slot(destination.receiver_limits):  # the connection's concurrent-run limit (outbound.limits)
            return _send_pages(run=run, sync=sync, page_plans=page_plans, token=token, progress=progress,
                               render=render, destination=destination, properties=properties, records=records)
    except ReceiverBusy as exc:
        return Verdict(Outcome.TRANSIENT, str(exc))
    finally:
        records.flush_surely()  # also when a page or the database failed: what was tried stays on record


def _send_pages(*, run, sync, page_plans, token, progress, render, destination, properties, records) -> Verdict:
    page_count = 0  # run-wide: page numbers of attempts and progress, and webhook ids
    delivered = run.pages_delivered  # by an earlier attempt of this run: not sent again
    notes = ""
    with open_session() as session:
        for session_id, plans in page_sessions(run=run, page_plans=page_plans):
            session_pages = sum(plan.pages for plan in plans)
            session_page = 0  # page_info counts within the session
            for plan in plans:
                skip = min(plan.pages, max(0, delivered - page_count))
                page_count += skip
                session_page += skip
                if skip == plan.pages:
                    continue
                for rows in stream_pages(run=run, plan=plan, properties=properties, skip=skip):
                    page_count += 1
                    session_page += 1
                    context = page_context(run=run, sync=sync, plan=plan, page_count=page_count, session_id=session_id,
                                           session_page=session_page, session_pages=session_pages)
                    try:
                        body = render(context, rows, properties)
                    except PayloadTemplateError as exc:
                        return Verdict(Outcome.PAUSE, f"the payload template failed on page {page_count}: {exc}")
                    verdict = send_page(
                        session=session, destination=destination, run=run, body=body, action=context.action,
                        page_number=page_count, token=token, records=records,
                    )
                    if verdict.outcome is not Outcome.SUCCESS:
                        return verdict
                    notes = notes or verdict.message
                    records.page_delivered(page_count)
                    if progress:
                        progress(len(rows))
    return Verdict(Outcome.SUCCESS, notes)


def page_context(*, run: SyncRun, sync: Sync, plan: PagePlan, page_count: int, session_id,
                 session_page: int, session_pages: int) -> payloads.PageContext:
    """What a page says about itself besides its members (shared with engine.preview): its
    webhook id is numbered across the run, its `page_info` within its session."""
    return payloads.PageContext(
        action=ACTIONS[plan.op], project_id=str(sync.cohort.project_id), cohort_id=str(sync.cohort_id),
        cohort_name=sync.cohort.name, cohort_description=sync.cohort.description,
        session_id=str(session_id), page_id=payloads.page_id(run.session_id, page_count),
        page_count=session_page, total_pages=session_pages, computed_time=int(run.started_at.timestamp()),
    )


def send_page(*, session, destination: Destination, run: SyncRun, body: bytes, action: str, page_number: int,
              token, records: RunRecords) -> Verdict:
    """One page with its retries, inside the run so pages stay in order (docs/design.md)."""
    page_id = payloads.page_id(run.session_id, page_number)

    def before_try(attempt: int) -> None:
        if not records.hold_claim(token):
            raise ClaimLost(f"sync {run.sync_id}: claim lost during page {page_number}")

    def record(attempt: int, result) -> None:
        records.attempt(page_number=page_number, page_id=page_id, action=action, attempt_number=attempt, result=result)

    return post_with_retries(session=session, destination=destination, body=body, page_id=page_id,
                             before_try=before_try, record=record)
