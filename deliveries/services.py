"""Changes to syncs: create, claim and release, pause and resume, record outcomes."""

import logging
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from cohorts.models import Cohort
from integrations.models import Connection

from . import payloads
from .models import Notification, Sync, SyncRun
from .sender import Destination, open_session, post_page
from .templating import PayloadTemplateError

logger = logging.getLogger(__name__)


def sync_create(
    *,
    cohort: Cohort,
    connection: Connection,
    mode: str = Sync.Mode.DYNAMIC,
    interval_minutes: int = 30,
    properties: list[str] | None = None,
    created_by=None,
) -> Sync:
    """A new sync is due at once: its first run sends the whole cohort as `members`."""
    sync = Sync(
        cohort=cohort,
        connection=connection,
        mode=mode,
        interval_minutes=interval_minutes,
        properties=properties or [],
        created_by=created_by,
        next_run_at=timezone.now(),
    )
    sync.full_clean()
    sync.save()
    if created_by is not None:
        sync.notify_users.add(created_by)
    return sync


# --- Claims: one run per sync at a time, on SQLite and PostgreSQL alike (DESIGN.md) -----


def sync_claim(*, sync_id: int, require_due: bool = True) -> uuid.UUID | None:
    """Take the sync's lease with one conditional UPDATE; None if another run holds it."""
    now = timezone.now()
    token = uuid.uuid4()
    eligible = Sync.objects.filter(pk=sync_id, state=Sync.State.ACTIVE).filter(
        Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    )
    if require_due:
        eligible = eligible.filter(next_run_at__lte=now)
    claimed = eligible.update(claimed_until=now + _lease(), claim_token=token, claimed_by=claim_holder())
    return token if claimed else None


def claim_holder() -> str:
    return f"{socket.gethostname()} pid {os.getpid()}"


def sync_claim_silent_for(*, sync: Sync, now: datetime | None = None) -> timedelta | None:
    """How long the claim's holder has not renewed it (None: not claimed). A live holder renews
    every quarter lease (engine.records.RunRecords.hold_claim)."""
    if sync.claimed_until is None:
        return None
    return (now or timezone.now()) - (sync.claimed_until - _lease())


def sync_claim_is_silent(*, sync: Sync) -> bool:
    """Two renewals missed: the holder has stopped (killed, or hung)."""
    silent_for = sync_claim_silent_for(sync=sync)
    return silent_for is not None and silent_for > _lease() / 2


def sync_claim_holder_died(*, sync: Sync) -> bool:
    """The claim is held by a process of this host that no longer exists (a killed pool child
    whose task Celery redelivered): no need to wait for its lease."""
    host, _, pid = sync.claimed_by.rpartition(" pid ")
    if sync.claimed_until is None or host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)  # signal 0: does the process exist?
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, under another user
        return False
    return False


def sync_break_claim(*, sync: Sync, reason: str | None = None) -> bool:
    """Take the claim away from a holder that stopped renewing it (runsync --break-claim) or
    died (`reason` given: the caller checked), and fail its runs left `running` with the reason.

    The conditional UPDATE names the claim as read, so a holder that renewed meanwhile keeps
    it; a holder still alive stops at its next claim check."""
    if reason is None:
        if not sync_claim_is_silent(sync=sync):
            return False
        reason = f"{sync.claimed_by or 'its worker'} stopped renewing the claim; an operator broke it"
    broken = Sync.objects.filter(pk=sync.pk, claim_token=sync.claim_token, claimed_until=sync.claimed_until).update(
        claimed_until=None, claim_token=None, claimed_by=""
    )
    if broken:
        SyncRun.objects.filter(sync_id=sync.pk, status=SyncRun.Status.RUNNING).update(
            status=SyncRun.Status.FAILED, finished_at=timezone.now(), error_message=f"stopped: {reason}"
        )
    return bool(broken)


def sync_renew_claim(*, sync_id: int, token: uuid.UUID) -> bool:
    return bool(Sync.objects.filter(pk=sync_id, claim_token=token).update(claimed_until=timezone.now() + _lease()))


def sync_release(*, sync_id: int, token: uuid.UUID) -> None:
    """Give the lease back and schedule the next run (none for paused or finished syncs)."""
    now = timezone.now()
    sync = Sync.objects.filter(pk=sync_id, claim_token=token).only("state", "interval_minutes").first()
    if sync is None:
        return
    next_run_at = now + timedelta(minutes=sync.interval_minutes) if sync.state == Sync.State.ACTIVE else None
    Sync.objects.filter(pk=sync_id, claim_token=token).update(
        claimed_until=None, claim_token=None, claimed_by="", dispatched_until=None, next_run_at=next_run_at
    )


def _lease() -> timedelta:
    return timedelta(seconds=settings.COHORTSYNC_CLAIM_LEASE_SECONDS)


# --- Outcomes -------------------------------------------------------------------------


def sync_record_success(*, sync: Sync, snapshot_at: datetime, snapshot_size: int, full: bool) -> None:
    """A requested full load stays requested until a full run succeeds (a diff does not count)."""
    updates = dict(
        snapshot_at=snapshot_at, snapshot_size=snapshot_size, last_error_message="", last_error_status=None,
    )
    if full:
        updates["force_full"] = False
    if sync.mode == Sync.Mode.ONE_TIME:
        updates["state"] = Sync.State.FINISHED
    Sync.objects.filter(pk=sync.pk).update(**updates)


def sync_record_failure(*, sync: Sync, message: str, status: int | None) -> None:
    """A failed run leaves the snapshot as it was; the next scheduled run starts over."""
    Sync.objects.filter(pk=sync.pk).update(last_error_message=message, last_error_status=status)


def sync_pause(
    *, sync: Sync, message: str, status: int | None, run: SyncRun | None = None, notify: bool = True
) -> None:
    """A permanent refusal: pause, keep the receiver's message, email who set it up."""
    Sync.objects.filter(pk=sync.pk).update(
        state=Sync.State.PAUSED, last_error_message=message, last_error_status=status,
        paused_at=timezone.now(), next_run_at=None,
    )
    sync.refresh_from_db()
    if notify:
        notify_sync_paused(sync=sync, run=run)


def sync_resume(*, sync: Sync) -> Sync:
    """Back to active and due now; the last error stays visible in the run history."""
    Sync.objects.filter(pk=sync.pk, state=Sync.State.PAUSED).update(
        state=Sync.State.ACTIVE, paused_at=None, next_run_at=timezone.now()
    )
    sync.refresh_from_db()
    return sync


def sync_request_full_refresh(*, sync: Sync) -> Sync:
    Sync.objects.filter(pk=sync.pk).update(force_full=True)
    sync.refresh_from_db()
    return sync


# --- Notifications --------------------------------------------------------------------


def sync_notification_recipients(*, sync: Sync) -> list[str]:
    """Everyone who set up a sync of this cohort, plus the sync's own notify list."""
    users = get_user_model().objects.filter(
        Q(pk__in=Sync.objects.filter(cohort_id=sync.cohort_id).values("created_by"))
        | Q(pk__in=sync.notify_users.values("pk"))
    )
    return sorted({email for email in users.values_list("email", flat=True) if email})


def notify_sync_paused(*, sync: Sync, run: SyncRun | None) -> list[Notification]:
    sync_url = absolute_url(reverse("deliveries:sync", kwargs={"sync_id": sync.pk}))
    context = {
        "sync": sync,
        "cohort": sync.cohort,
        "connection": sync.connection,
        "message": sync.last_error_message,
        "status": sync.last_error_status,
        "sync_url": sync_url,
        # Resuming is a POST from the sync page; the link lands on its resume button.
        "resume_url": f"{sync_url}#resume",
    }
    subject = f"Cohortsync paused the sync of “{sync.cohort.name}” to “{sync.connection.name}”"
    text = render_to_string("deliveries/email/sync_paused.txt", context)
    html = render_to_string("deliveries/email/sync_paused.html", context)
    sent = []
    for recipient in sync_notification_recipients(sync=sync):
        message = EmailMultiAlternatives(subject, text, settings.DEFAULT_FROM_EMAIL, [recipient])
        message.attach_alternative(html, "text/html")
        error = ""
        try:
            message.send()
        except Exception as exc:  # a mail outage must not hide the pause itself
            logger.warning("sync %s: pause email to a recipient failed: %s", sync.pk, type(exc).__name__)
            error = f"{type(exc).__name__}"
        sent.append(
            Notification.objects.create(
                sync=sync, run=run, recipient=recipient, reason="sync_paused", subject=subject,
                delivered=not error, error=error,
            )
        )
    return sent


def absolute_url(path: str) -> str:
    """A page's link for emails and webhooks (COHORTSYNC_BASE_URL + path)."""
    return settings.COHORTSYNC_BASE_URL.rstrip("/") + path


# --- Scheduling -----------------------------------------------------------------------


def sync_request_run(*, sync: Sync, full: bool = False, trigger: str = "manual") -> SyncRun:
    """Queue a run now (admin, API, status pages): the run row exists at once, so callers get its id.

    The row is committed, then its task enqueued; a broker that refuses the task leaves
    nothing behind (dispatch.BrokerUnavailable), and a task lost later is re-enqueued by the
    dispatcher. A full run is asked for on the sync (force_full), so it survives re-enqueuing.
    """
    from .dispatch import dispatch_lease, run_enqueue_requested
    from .tasks import run_sync

    if full:
        sync_request_full_refresh(sync=sync)
    run = SyncRun.objects.create(sync=sync, status=SyncRun.Status.QUEUED, trigger=trigger,
                                 dispatched_until=timezone.now() + dispatch_lease())
    transaction.on_commit(lambda: run_enqueue_requested(
        task=run_sync, run=run, args=(sync.pk,), kwargs={"trigger": trigger, "run_id": run.pk}
    ))
    return run


# --- Connection test ------------------------------------------------------------------


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
    return ConnectionTestResult(
        outcome=str(result.verdict.outcome),
        http_status=result.http_status,
        latency_ms=result.latency_ms,
        response_excerpt=result.response_excerpt[:500],
        message=result.verdict.message,
    )
