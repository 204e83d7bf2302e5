"""Changes to syncs: create and update, claim and release, state changes (run, pause, resume,
full refresh: each checks its own preconditions and raises StateConflict), record outcomes."""

import logging
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import Case, F, Q, Value, When
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from cohorts.models import Cohort
from integrations.models import Connection
from outbound import policy
from outbound.autopause import STREAK_RESET, auto_pause_reason, failure_streak_updates
from outbound.claims import claim_release, claim_renew, claim_take
from outbound.errors import StateConflict
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
    notify_users: Iterable | None = None,
    auto_pause_failed_runs: int | None = None,
    auto_pause_hours: int | None = None,
) -> Sync:
    """A new sync is due at once: its first run sends the whole cohort as `members`.

    Its creator and `notify_users` get the pause emails.
    """
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
    if notify_users:
        sync.notify_users.add(*notify_users)
    return sync


# What an operator may change on an existing sync. Its cohort and mode stay: the receiver holds
# that cohort's members, and a finished one-time export does not become a dynamic sync.
SYNC_EDITABLE_FIELDS = ("connection", "interval_minutes", "properties", "notify_users", "auto_pause_failed_runs",
                        "auto_pause_hours")


def sync_update(*, sync: Sync, **fields) -> Sync:
    """Change a sync's connection, interval, properties or notify list, and validate.

    A new connection or property list makes the next run a full `members` load (the new
    receiver holds nobody; a diff would not resend unchanged members with the new
    properties). A shorter interval brings the next run forward. Only these columns are
    written, so a run finishing meanwhile keeps its snapshot, claim and counters.
    """
    unknown = set(fields) - set(SYNC_EDITABLE_FIELDS)
    if unknown:
        raise TypeError(f"unknown sync fields: {sorted(unknown)}")
    notify_users = fields.pop("notify_users", None)
    changed = [name for name, value in fields.items() if getattr(sync, name) != value]
    for name in changed:
        setattr(sync, name, fields[name])
    sync.full_clean()
    if {"connection", "properties"} & set(changed):
        sync.force_full = True
        changed.append("force_full")
    if "interval_minutes" in changed and sync.state == Sync.State.ACTIVE and sync.next_run_at is not None:
        sync.next_run_at = min(sync.next_run_at, timezone.now() + timedelta(minutes=sync.interval_minutes))
        changed.append("next_run_at")
    if changed:
        sync.save(update_fields=[*changed, "updated_at"])
    if notify_users is not None:
        sync.notify_users.set(notify_users)
    return sync


# --- Claims: one run per sync at a time (outbound.claims) -----------------------------------


def sync_claim(*, sync_id: int, require_due: bool = True) -> uuid.UUID | None:
    """Take the sync's lease with one conditional UPDATE; None if another run holds it."""
    eligible = Sync.objects.filter(pk=sync_id, state=Sync.State.ACTIVE)
    if require_due:
        eligible = eligible.filter(next_run_at__lte=timezone.now())
    return claim_take(subject=eligible)


def sync_renew_claim(*, sync_id: int, token: uuid.UUID) -> bool:
    return claim_renew(subject=Sync.objects.filter(pk=sync_id), token=token)


def sync_release(*, sync_id: int, token: uuid.UUID) -> None:
    """Give the lease back and schedule the next run (none for paused or finished syncs)."""
    now = timezone.now()
    sync = Sync.objects.filter(pk=sync_id, claim_token=token).only("state", "interval_minutes").first()
    if sync is None:
        return
    next_run_at = now + timedelta(minutes=sync.interval_minutes) if sync.state == Sync.State.ACTIVE else None
    claim_release(subject=Sync.objects.filter(pk=sync_id), token=token, next_run_at=next_run_at)


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


def sync_pause_message(*, message: str, status: int | None) -> str:
    """The pause message, with what resuming will do when the receiver forgot the cohort."""
    if status in policy.FORGOTTEN_COHORT_STATUSES:
        return f"{message} (the receiver does not know the cohort: resuming sends it whole, as a full load)"
    return message


# --- State changes: each checks its own preconditions (callers do not) ---------------------

_NOT_RUNNABLE = {
    Sync.State.PAUSED: "The sync is paused; resume it first.",
    Sync.State.FINISHED: "The sync is finished; a one-time export runs once.",
}


def sync_check_runnable(*, sync: Sync) -> None:
    """Only an active sync runs: a paused one waits for its resume, a finished one-time export is done."""
    sync.refresh_from_db(fields=["state"])
    if sync.state in _NOT_RUNNABLE:
        raise StateConflict(_NOT_RUNNABLE[sync.state], state=sync.state)


def sync_pause(
    *, sync: Sync, message: str, status: int | None, run: SyncRun | None = None, notify: bool = True
) -> Sync:
    """Pause an active sync (an operator, or a receiver's permanent refusal: then keep its
    message and email who set it up). A paused sync stays as it was; a finished one refuses."""
    paused = Sync.objects.filter(pk=sync.pk, state=Sync.State.ACTIVE).update(
        state=Sync.State.PAUSED, last_error_message=message, last_error_status=status,
        paused_at=timezone.now(), next_run_at=None,
    )
    sync.refresh_from_db()
    if sync.state == Sync.State.FINISHED:
        raise StateConflict("The sync is finished; a one-time export has nothing left to pause.", state=sync.state)
    if paused and notify:
        notify_sync_paused(sync=sync, run=run)
    return sync


def sync_resume(*, sync: Sync) -> Sync:
    """Back to active and due now; the last error stays visible in the run history.

    Resuming an active sync changes nothing; a finished one-time export refuses. A sync paused
    by a 404/410 resumes with a full load: the receiver has forgotten the cohort, so a diff would
    be refused again (every resume path comes through here).
    """
    forgotten = Q(last_error_status__in=policy.FORGOTTEN_COHORT_STATUSES)
    Sync.objects.filter(pk=sync.pk, state=Sync.State.PAUSED).update(
        state=Sync.State.ACTIVE, paused_at=None, next_run_at=timezone.now(), **STREAK_RESET,
        force_full=Case(When(forgotten, then=Value(True)), default=F("force_full")),
    )
    sync.refresh_from_db()
    if sync.state == Sync.State.FINISHED:
        raise StateConflict("The sync is finished; a one-time export cannot be resumed.", state=sync.state)
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
    """The next run sends the whole cohort as `members` (a paused sync's next run is after its resume)."""
    Sync.objects.filter(pk=sync.pk).exclude(state=Sync.State.FINISHED).update(force_full=True)
    sync.refresh_from_db()
    if sync.state == Sync.State.FINISHED:
        raise StateConflict("The sync is finished; a one-time export does not run again.", state=sync.state)
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
    sync_url = absolute_url(reverse("deliveries:sync_detail", kwargs={"sync_id": sync.pk}))
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
    """Queue a run now (admin, API, status pages): the run row exists at once, so callers get its id.

    Only an active sync runs (StateConflict otherwise).
    """
    from .tasks import run_sync

    sync_check_runnable(sync=sync)
    run = SyncRun.objects.create(sync=sync, status=SyncRun.Status.QUEUED, trigger=trigger)
    transaction.on_commit(lambda: run_sync.delay(sync.pk, full=full, trigger=trigger, run_id=run.pk))
    return run
