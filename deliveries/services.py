"""Changes to syncs: create and update, claim and release, state changes (run, pause, resume,
full refresh: each checks its own preconditions and raises StateConflict), record outcomes."""

import logging
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import Case, DateTimeField, DurationField, ExpressionWrapper, F, IntegerField, Q, Value, When
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from cohorts.models import Cohort
from integrations.models import Connection
from outbound import policy
from outbound.autopause import STREAK_RESET, auto_pause_reason, failure_streak_updates
from outbound.claims import claim_holder, claim_holder_died, claim_lease, claim_release, claim_renew, claim_take
from outbound.dispatch import dispatch_lease, run_enqueue_requested
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
        # A stopped run's pages were cut for the old receiver or columns: never resumed.
        SyncRun.objects.filter(sync=sync).exclude(status=SyncRun.Status.SUCCEEDED).update(resumable=False)
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
    # The dispatcher's mark has done its job once the task runs: a run that crashes leaves the
    # sync due, and the next tick after its claim lapses enqueues it again.
    return claim_take(subject=eligible, claimed_by=claim_holder(), dispatched_until=None)


def sync_claim_silent_for(*, sync: Sync, now: datetime | None = None) -> timedelta | None:
    """How long the claim's holder has not renewed it (None: not claimed). A live holder renews
    every quarter lease (engine.records.RunRecords.hold_claim)."""
    if sync.claimed_until is None:
        return None
    return (now or timezone.now()) - (sync.claimed_until - claim_lease())


def sync_claim_is_silent(*, sync: Sync) -> bool:
    """Two renewals missed: the holder has stopped (killed, or hung)."""
    silent_for = sync_claim_silent_for(sync=sync)
    return silent_for is not None and silent_for > claim_lease() / 2


def sync_claim_holder_died(*, sync: Sync) -> bool:
    """The claim is held by a process of this host that no longer exists (a killed pool child
    whose task Celery redelivered): no need to wait for its lease."""
    return sync.claimed_until is not None and claim_holder_died(holder=sync.claimed_by)


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
    return claim_renew(subject=Sync.objects.filter(pk=sync_id), token=token)


def sync_release(*, sync_id: int, token: uuid.UUID, failed: bool = False) -> None:
    """Give the lease back and schedule the next run (none for paused or finished syncs): after
    a failed run sooner than the interval (sync_retry_delay), so its resumption follows."""
    now = timezone.now()
    subject = Sync.objects.filter(pk=sync_id)
    if not failed:  # the interval from now, read from the row as released: one statement
        interval = ExpressionWrapper(
            Value(timedelta(minutes=1)) * ExpressionWrapper(F("interval_minutes"), output_field=IntegerField()),
            output_field=DurationField())
        next_run_at = Case(When(state=Sync.State.ACTIVE,
                                then=ExpressionWrapper(Value(now) + interval, output_field=DateTimeField())))
        claim_release(subject=subject, token=token, claimed_by="", dispatched_until=None, next_run_at=next_run_at)
        return
    sync = subject.filter(claim_token=token).only("state", "interval_minutes", "consecutive_failed_runs").first()
    if sync is None:
        return
    next_run_at = now + sync_retry_delay(sync=sync) if sync.state == Sync.State.ACTIVE else None
    claim_release(subject=subject, token=token, claimed_by="", dispatched_until=None, next_run_at=next_run_at)


def sync_retry_delay(*, sync: Sync) -> timedelta:
    """After the n-th failed run in a row: COHORTSYNC_RETRY_FIRST_MINUTES × 2^(n-1), at most the interval."""
    failures = max(1, sync.consecutive_failed_runs)
    minutes = settings.COHORTSYNC_RETRY_FIRST_MINUTES * 2 ** min(failures - 1, 20)
    return timedelta(minutes=min(minutes, sync.interval_minutes))


# --- Outcomes -------------------------------------------------------------------------


def sync_record_success(*, sync: Sync, snapshot_at: datetime, snapshot_size: int, full: bool) -> None:
    """A requested full load stays requested until a full run succeeds (a diff does not count)."""
    updates = dict(
        snapshot_at=snapshot_at, snapshot_size=snapshot_size, last_error_message="", last_error_status=None,
        **STREAK_RESET,
    )
    if full:
        updates["force_full"] = False
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


def sync_request_run(*, sync: Sync, full: bool = False, trigger: str = "manual") -> SyncRun:
    """Queue a run now (admin, API, status pages): the run row exists at once, so callers get its id.

    Only an active sync runs (StateConflict otherwise). The row is committed, then its task
    enqueued; a broker that refuses the task leaves nothing behind (BrokerUnavailable), and a
    task lost later is re-enqueued by the dispatcher. A full run is asked for on the sync
    (force_full), so it survives re-enqueuing.
    """
    from .engine.run import queue_resumption, unqueue_resumption
    from .tasks import run_sync

    sync_check_runnable(sync=sync)
    if full:
        sync = sync_request_full_refresh(sync=sync)
    until = timezone.now() + dispatch_lease()
    # A run that stopped with pages left is what runs next (engine.run): queue it again.
    if run := queue_resumption(sync=sync, full=full, trigger=trigger, dispatched_until=until):
        on_failure = partial(unqueue_resumption, run=run)
    else:
        run = SyncRun.objects.create(sync=sync, status=SyncRun.Status.QUEUED, trigger=trigger, dispatched_until=until)
        on_failure = None
    transaction.on_commit(lambda: run_enqueue_requested(
        task=run_sync, run=run, args=(sync.pk,), kwargs={"trigger": trigger, "run_id": run.pk}, on_failure=on_failure,
    ))
    return run
