"""Changes to syncs: create, claim and release, pause and resume, record outcomes."""

import logging
import uuid
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
from outbound.autopause import STREAK_RESET, auto_pause_reason, failure_streak_updates
from outbound.links import absolute_url

from .models import Notification, Sync, SyncRun

logger = logging.getLogger(__name__)


def sync_create(
    *,
    cohort: Cohort,
    connection: Connection,
    mode: str = Sync.Mode.DYNAMIC,
    interval_minutes: int = 30,
    properties: list[str] | None = None,
    created_by=None,
    auto_pause_failed_runs: int | None = None,
    auto_pause_hours: int | None = None,
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
        auto_pause_failed_runs=auto_pause_failed_runs,
        auto_pause_hours=auto_pause_hours,
    )
    sync.full_clean()
    sync.save()
    if created_by is not None:
        sync.notify_users.add(created_by)
    return sync


# --- Claims: one run per sync at a time, on SQLite and PostgreSQL alike (docs/design.md) -----


def sync_claim(*, sync_id: int, require_due: bool = True) -> uuid.UUID | None:
    """Take the sync's lease with one conditional UPDATE; None if another run holds it."""
    now = timezone.now()
    token = uuid.uuid4()
    eligible = Sync.objects.filter(pk=sync_id, state=Sync.State.ACTIVE).filter(
        Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    )
    if require_due:
        eligible = eligible.filter(next_run_at__lte=now)
    claimed = eligible.update(claimed_until=now + _lease(), claim_token=token)
    return token if claimed else None


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
        claimed_until=None, claim_token=None, next_run_at=next_run_at
    )


def _lease() -> timedelta:
    return timedelta(seconds=settings.COHORTSYNC_CLAIM_LEASE_SECONDS)


# --- Outcomes -------------------------------------------------------------------------


def sync_record_success(*, sync: Sync, snapshot_at: datetime, snapshot_size: int) -> None:
    updates = dict(
        snapshot_at=snapshot_at, snapshot_size=snapshot_size, force_full=False,
        last_error_message="", last_error_status=None, **STREAK_RESET,
    )
    if sync.mode == Sync.Mode.ONE_TIME:
        updates["state"] = Sync.State.FINISHED
    Sync.objects.filter(pk=sync.pk).update(**updates)


def sync_record_failure(*, sync: Sync, message: str, status: int | None, run: SyncRun | None = None) -> None:
    """A failed run leaves the snapshot as it was; the next scheduled run starts over.

    One failure too many (outbound.autopause) pauses the sync and emails its people; the run
    that did it then reads "Paused the sync", as a refusal's run does.
    """
    Sync.objects.filter(pk=sync.pk).update(
        last_error_message=message, last_error_status=status, **failure_streak_updates(now=timezone.now()))
    streak = Sync.objects.only("consecutive_failed_runs", "failing_since", "auto_pause_failed_runs",
                               "auto_pause_hours").get(pk=sync.pk)
    reason = auto_pause_reason(subject=streak, last_error=message)
    if not reason:
        return
    if run is not None:
        SyncRun.objects.filter(pk=run.pk).update(status=SyncRun.Status.PAUSED)
        run.status = SyncRun.Status.PAUSED
    Sync.objects.filter(pk=sync.pk).update(auto_paused=True)
    sync_pause(sync=sync, message=reason, status=status, run=run)


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
        state=Sync.State.ACTIVE, paused_at=None, next_run_at=timezone.now(), **STREAK_RESET
    )
    sync.refresh_from_db()
    return sync


def sync_set_auto_pause(*, sync: Sync, **limits: int | None) -> Sync:
    """Set the sync's own auto-pause limits (`auto_pause_failed_runs`, `auto_pause_hours`; None: the defaults)."""
    unknown = set(limits) - {"auto_pause_failed_runs", "auto_pause_hours"}
    if unknown:
        raise TypeError(f"not auto-pause limits: {sorted(unknown)}")
    for name, value in limits.items():
        setattr(sync, name, value)
    sync.full_clean()
    Sync.objects.filter(pk=sync.pk).update(**limits)
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


# --- Scheduling -----------------------------------------------------------------------


def syncs_dispatch_due(*, now: datetime | None = None) -> list[int]:
    """Enqueue one run task per due, unclaimed, active sync (called by beat each minute)."""
    from .tasks import run_sync  # tasks are thin wrappers over this module

    now = now or timezone.now()
    due_ids = list(
        Sync.objects.filter(state=Sync.State.ACTIVE, next_run_at__lte=now)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .order_by("next_run_at")
        .values_list("pk", flat=True)[:10_000]
    )
    for sync_id in due_ids:
        transaction.on_commit(lambda sync_id=sync_id: run_sync.delay(sync_id))
    return due_ids


def sync_request_run(*, sync: Sync, full: bool = False, trigger: str = "manual") -> SyncRun:
    """Queue a run now (admin, API, status pages): the run row exists at once, so callers get its id."""
    from .tasks import run_sync

    run = SyncRun.objects.create(sync=sync, status=SyncRun.Status.QUEUED, trigger=trigger)
    transaction.on_commit(lambda: run_sync.delay(sync.pk, full=full, trigger=trigger, run_id=run.pk))
    return run
