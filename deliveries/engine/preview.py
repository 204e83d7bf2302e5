"""Preview: what the next run would do, computed by the run's own steps and then thrown away.

plan → stage → the first page, rendered as it would be sent, inside one transaction that is
rolled back: nothing is sent and no state changes (snapshot, claim, runs, next run time).
Staging is the run's own SQL, so a preview costs what a run's staging costs (O(change) for
a diff); only the first page is read into Python.
"""

from dataclasses import dataclass, field

from django.db import transaction

from integrations import payloads
from integrations.templating import PayloadTemplateError
from outbound.secrets import redact_secrets, sent_secrets
from outbound.sender import Destination, masked_request_headers

from ..models import Sync, SyncRun
from .pages import stream_pages
from .plan import ACTIONS, page_position, plan_run
from .run import last_stopped_run
from .send import page_context
from .stage import stage_members, staged_page_plans


@dataclass(frozen=True)
class FirstPage:
    action: str
    url: str
    headers: dict[str, str]  # secret values masked
    body: str  # exactly as it would be sent, with any secret of the connection redacted
    members: int


@dataclass(frozen=True)
class RunPreview:
    kind: str  # SyncRun.Kind
    reason: str
    members_count: int
    adds_count: int
    removes_count: int
    total_pages: int
    pages: dict[str, int] = field(default_factory=dict)  # action → pages
    first_page: FirstPage | None = None
    error: str = ""  # the payload template cannot render (the run would pause)


class _Discard(Exception):
    """Raised inside the preview's transaction to roll everything back."""


def sync_preview(*, sync: Sync, full: bool = False) -> RunPreview:
    """What `sync_run` would do next, without sending or changing anything (issue #17, dry run)."""
    result: list[RunPreview] = []
    try:
        with transaction.atomic():
            result.append(_preview(sync=sync, full=full))
            raise _Discard  # staging rows, the scratch run and the cohort size record all go
    except _Discard:
        pass
    return result[0]


def _preview(*, sync: Sync, full: bool) -> RunPreview:
    plan = plan_run(sync=sync, full=full)
    stopped, resumable = last_stopped_run(sync=sync, plan=plan)
    if resumable:  # the next run resumes it (engine.run): its picture, from its first undelivered page
        run, reason = stopped, (f"resumes the stopped run {stopped.session_id} from page "
                                f"{stopped.pages_delivered + 1} of {stopped.total_pages}")
        page_plans = staged_page_plans(run=run, sync=sync)
    else:
        run = SyncRun.objects.create(sync=sync, kind=plan.kind, reason=plan.reason, trigger="preview")
        reason = plan.reason
        page_plans = stage_members(run=run, sync=sync)
    preview = dict(
        kind=run.kind, reason=reason, members_count=run.members_count, adds_count=run.adds_count,
        removes_count=run.removes_count, total_pages=run.total_pages,
        pages={ACTIONS[page_plan.op]: page_plan.pages for page_plan in page_plans},
    )
    # The first page the run sends (an empty `add_members` page of a diff included).
    page_count = min(run.pages_delivered + 1, run.total_pages) if resumable else 1
    at = page_position(run=run, page_plans=page_plans, page_count=page_count)
    properties = tuple(sync.properties or ())
    rows = next(stream_pages(run=run, plan=at.plan, properties=properties, skip=at.index_in_plan))
    context = page_context(run=run, sync=sync, plan=at.plan, page_count=page_count, session_id=at.session_id,
                           session_page=at.session_page, session_pages=at.session_pages)
    try:
        body = payloads.page_renderer(sync.connection)(context, rows, properties)
    except PayloadTemplateError as exc:
        return RunPreview(**preview, error=f"the payload template cannot render the first page: {exc}")
    destination = Destination.from_connection(sync.connection)
    shown = redact_secrets(body, secrets=sent_secrets(destination)).decode("utf-8", errors="replace")
    first_page = FirstPage(action=context.action, url=destination.url, members=len(rows), body=shown,
                           headers=masked_request_headers(destination, body, context.page_id))
    return RunPreview(**preview, first_page=first_page)
