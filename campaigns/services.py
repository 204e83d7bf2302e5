"""Changes to user messages: create, update, state changes (run, pause, resume: each checks its
own preconditions and raises StateConflict), test sends."""

import logging
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.urls import reverse
from django.utils import timezone

from cohorts.models import Cohort, Profile
from integrations.models import Connection
from integrations.send_test import ConnectionTestResult
from outbound.autopause import STREAK_RESET, auto_pause_reason, failure_streak_updates
from outbound.dispatch import dispatch_lease, enqueue, queued_runs_dispatch, run_enqueue_requested
from outbound.errors import StateConflict
from outbound.links import absolute_url
from outbound.sender import open_session, post_page

from . import policy
from .models import Message, MessageRun
from .schedules import message_next_run_at
from .sending import Recipient, batch_id, form_destination, users_body

logger = logging.getLogger(__name__)

EDITABLE_FIELDS = (
    "name", "schedule", "cadence", "interval", "time_of_day", "timezone", "days_of_week", "day_of_month",
    "limit_count", "limit_days", "properties", "connection", "auto_pause_failed_runs", "auto_pause_hours",
)


def message_create(*, cohort: Cohort, connection: Connection, name: str, schedule: str = Message.Schedule.ASAP,
                   cadence: str | None = None, created_by=None, **fields) -> Message:
    """A new message; ASAP ones are due at once, timed ones at their first occurrence.

    `cadence` defaults to what the schedule implies: `asap` for ASAP and recurring
    messages, `daily` for scheduled ones.
    """
    if cadence is None:
        cadence = Message.Cadence.DAILY if schedule == Message.Schedule.SCHEDULED else Message.Cadence.ASAP
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise TypeError(f"unknown message fields: {sorted(unknown)}")
    message = Message(cohort=cohort, connection=connection, name=name, schedule=schedule, cadence=cadence,
                      created_by=created_by, **fields)
    message.full_clean()
    message.created_at = timezone.now()  # the anchor of "every N days/weeks/months"
    message.next_run_at = _first_run_at(message)
    message.save()
    return message


def message_update(*, message: Message, **fields) -> Message:
    """Change a message's fields, validate, and reschedule it from now."""
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise TypeError(f"unknown message fields: {sorted(unknown)}")
    for name, value in fields.items():
        setattr(message, name, value)
    message.full_clean()
    message.refresh_from_db(fields=["state"])  # a run may have paused it meanwhile
    message.next_run_at = _first_run_at(message) if message.state == Message.State.ACTIVE else None
    # Only these columns: a run finishing meanwhile keeps its state and last error.
    message.save(update_fields=[*fields, "next_run_at", "updated_at"])
    return message


def _first_run_at(message: Message):
    now = timezone.now()
    if message.cadence == Message.Cadence.ASAP:
        return now
    return message_next_run_at(message, after=now)


def message_pause(*, message: Message, reason: str = "", status: int | None = None, notify: bool = True) -> Message:
    """Stop an active message: an operator's choice, or a receiver's permanent refusal (`reason`,
    then its creator is emailed unless `notify` is off). A paused message stays as it was."""
    updates = dict(state=Message.State.PAUSED, paused_at=timezone.now(), next_run_at=None)
    if reason:  # an operator's pause keeps the receiver's last error in view
        updates.update(last_error_message=reason, last_error_status=status)
    paused = Message.objects.filter(pk=message.pk, state=Message.State.ACTIVE).update(**updates)
    message.refresh_from_db()
    if paused and reason and notify:
        _notify_message_paused(message=message)
    return message


def message_resume(*, message: Message) -> Message:
    """Active again and rescheduled from now; resuming an active message changes nothing."""
    Message.objects.filter(pk=message.pk, state=Message.State.PAUSED).update(
        state=Message.State.ACTIVE, paused_at=None, next_run_at=_first_run_at(message), **STREAK_RESET,
    )
    message.refresh_from_db()
    return message


def message_record_success(*, message: Message) -> None:
    Message.objects.filter(pk=message.pk).update(last_error_message="", last_error_status=None, **STREAK_RESET)


def message_record_failure(*, message: Message, reason: str, status: int | None) -> bool:
    """A run that did not reach everyone; returns whether it paused the message (outbound.autopause)."""
    Message.objects.filter(pk=message.pk).update(
        last_error_message=reason, last_error_status=status, **failure_streak_updates(now=timezone.now()))
    streak = Message.objects.only("consecutive_failed_runs", "failing_since", "auto_pause_failed_runs",
                                  "auto_pause_hours").get(pk=message.pk)
    pause_reason = auto_pause_reason(subject=streak, last_error=reason)
    if pause_reason:
        Message.objects.filter(pk=message.pk).update(auto_paused=True)
        message_pause(message=message, reason=pause_reason, status=status)
    return bool(pause_reason)


def _notify_message_paused(*, message: Message) -> None:
    recipient = getattr(message.created_by, "email", "")
    if not recipient:
        return
    url = absolute_url(reverse("campaigns:message_detail", kwargs={"message_id": message.pk}))
    why = "its runs kept failing" if message.auto_paused else "the receiver refused it"
    text = (f"Cohortsync paused the message “{message.name}” because {why}:\n\n"
            f"  {message.last_error_status or ''} {message.last_error_message}\n\n"
            f"Fix the receiver or the connection, then resume the message: {url}\n")
    try:
        send_mail(f"Cohortsync paused the message “{message.name}”", text, settings.DEFAULT_FROM_EMAIL, [recipient])
    except Exception as exc:  # a mail outage must not hide the pause itself
        logger.warning("message %s: pause email failed: %s", message.pk, type(exc).__name__)


# --- Scheduling -----------------------------------------------------------------------


def messages_dispatch_due(*, now=None) -> list[int]:
    """Queue one run per due active message (beat, each minute), the most overdue first, and
    re-enqueue queued message runs whose task never started (outbound.dispatch).

    Moving `next_run_at` on with a conditional UPDATE is the claim: two dispatchers cannot
    both start the same occurrence. Each occurrence is a queued run, so a task the broker
    loses is enqueued again; a message whose run is still queued gets no second one.
    """
    from .tasks import run_message

    now = now or timezone.now()
    until = now + dispatch_lease()
    started = []
    waiting = MessageRun.objects.filter(message=OuterRef("pk"), status=MessageRun.Status.QUEUED)
    due = (Message.objects.filter(state=Message.State.ACTIVE, next_run_at__lte=now).exclude(Exists(waiting))
           .order_by("next_run_at")[: settings.COHORTSYNC_DISPATCH_BATCH])
    for message in due:
        following = message_next_run_at(message, after=max(now, message.next_run_at))
        if Message.objects.filter(pk=message.pk, next_run_at=message.next_run_at).update(next_run_at=following):
            started.append(message.pk)
    runs = MessageRun.objects.bulk_create([
        MessageRun(message_id=message_id, status=MessageRun.Status.QUEUED, trigger="schedule", dispatched_until=until)
        for message_id in started
    ])
    if runs:
        transaction.on_commit(lambda: enqueue(
            run_message, [((run.message_id,), {"trigger": run.trigger, "run_id": run.pk}) for run in runs],
            expires=until,  # still queued: a later tick enqueues them again
            on_failure=lambda: MessageRun.objects.filter(pk__in=[run.pk for run in runs]).update(dispatched_until=None),
        ), robust=True)
    queued_runs_dispatch(runs=MessageRun.objects.all(), task=run_message, subject="message_id", now=now)
    return started


def messages_for_recomputed_cohort(*, cohort_id: int) -> list[int]:
    """A cohort was recomputed: its ASAP-cadence messages check their audience now."""
    from .tasks import run_message

    message_ids = list(Message.objects.filter(cohort_id=cohort_id, state=Message.State.ACTIVE,
                                              cadence=Message.Cadence.ASAP).values_list("pk", flat=True))
    for message_id in message_ids:
        # robust: a broker outage is logged, never raised into the sync run that recomputed the cohort.
        transaction.on_commit(lambda message_id=message_id: run_message.delay(message_id, trigger="cohort"),
                              robust=True)
    return message_ids


def message_check_runnable(*, message: Message) -> None:
    """Only an active message runs: a paused one waits for its resume."""
    message.refresh_from_db(fields=["state"])
    if message.state != Message.State.ACTIVE:
        raise StateConflict("The message is paused; resume it first.", state=message.state)


def message_request_run(*, message: Message, trigger: str = "manual") -> MessageRun:
    """Queue a run now (admin, API, status pages); the run row exists at once.

    Only an active message runs (StateConflict otherwise). As for syncs
    (deliveries.services.sync_request_run): a broker that refuses the task leaves nothing
    behind (BrokerUnavailable), a task lost later is re-enqueued by the dispatcher.
    """
    from .tasks import run_message

    message_check_runnable(message=message)
    run = MessageRun.objects.create(message=message, status=MessageRun.Status.QUEUED, trigger=trigger,
                                    dispatched_until=timezone.now() + dispatch_lease())
    transaction.on_commit(lambda: run_enqueue_requested(
        task=run_message, run=run, args=(message.pk,), kwargs={"trigger": trigger, "run_id": run.pk}
    ))
    return run


# --- Test send ------------------------------------------------------------------------


@dataclass(frozen=True)
class MessageTestResult(ConnectionTestResult):
    distinct_ids: list[str]  # the profiles posted


def message_send_test(*, message: Message) -> MessageTestResult:
    """POST 5 random profiles of the project to the message's URL and report the answer (docs/contract.md).

    Nothing is recorded: nobody is marked sent, so the real run still reaches them.
    """
    profiles = list(
        Profile.objects.filter(project_id=message.cohort.project_id).order_by("?")[: policy.TEST_SEND_PROFILES]
        .values_list("pk", "distinct_id", "email", "first_name", "last_name", "phone_number", "properties")
    )
    recipients = [Recipient(*row) for row in profiles]
    body = users_body(recipients, tuple(message.properties or ()))
    with open_session() as session:
        result = post_page(session, form_destination(message.connection), body, batch_id(uuid.uuid4(), 1))
    return MessageTestResult(
        outcome=str(result.verdict.outcome), http_status=result.http_status, latency_ms=result.latency_ms,
        response_excerpt=result.response_excerpt[:500], message=result.verdict.message,
        distinct_ids=[r.distinct_id for r in recipients],
    )
