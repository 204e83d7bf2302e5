"""Reads over user messages, their runs and sends (the status pages)."""

from django.db.models import Count, F, IntegerField, OuterRef, Prefetch, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from cohorts.selectors import narrowed, projects_for_user
from outbound.models import DeliveryAttempt

from .models import Message, MessageRun, MessageSend

DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")  # days_of_week: 0 = Monday


def message_list_for_user(*, user) -> QuerySet:
    """The messages a person sees on the status pages and may act on: those of the projects they
    are a member of (superusers: all), paused first, then failing, then the rest.

    Each message carries `health` (outbound.health: "paused", "failing", or "active")
    and `sent_users`: how many users it has reached (send records marked sent).
    """
    return (
        Message.objects.filter(cohort__project__in=projects_for_user(user=user))
        .select_related("cohort__project", "connection")
        .with_health()
        .annotate(sent_users=message_sent_users())
        .order_by("attention", "cohort__project__name", "name", "id")
    )


def message_sent_users() -> Coalesce:
    """A subquery expression: the outer message's send records marked sent (served by the
    (message, status, reserved_at) index, one count per message row)."""
    sent = (
        MessageSend.objects.filter(message=OuterRef("pk"), status=MessageSend.Status.SENT)
        .order_by().values("message").annotate(count=Count("*")).values("count")
    )
    return Coalesce(Subquery(sent, output_field=IntegerField()), Value(0))


def messages_described(*, messages: QuerySet) -> list[Message]:
    """The messages, each carrying `schedule_in_words` for the pages to show."""
    described = list(messages)
    for message in described:
        message.schedule_in_words = message_schedule_in_words(message=message)
    return described


def message_run_history(*, message: Message) -> QuerySet:
    """The message's runs, newest first, each with its batch attempts in batch and try order."""
    return (
        MessageRun.objects.filter(message=message)
        .annotate(duration=F("finished_at") - F("started_at"))
        .order_by("-started_at", "-id")
        .prefetch_related(
            Prefetch("attempts", queryset=DeliveryAttempt.objects.order_by("page_number", "attempt_number", "id"))
        )
    )


def message_schedule_in_words(*, message: Message) -> str:
    """When a message goes out and to whom again, as a sentence: "Recurring, weekly on Mon and
    Wed at 09:00 Europe/Paris, at most 1 per 7 days per user"."""
    if message.schedule == Message.Schedule.ASAP:
        return "ASAP, as soon as a user matches (checked each time the cohort is recomputed), once per user"
    when = _cadence_in_words(message)
    if message.schedule == Message.Schedule.SCHEDULED:
        return f"Scheduled, {when}, once per user ever"
    window = "day" if message.limit_days == 1 else f"{message.limit_days} days"
    return f"Recurring, {when}, at most {message.limit_count} per {window} per user"


def _cadence_in_words(message: Message) -> str:
    if message.cadence == Message.Cadence.ASAP:
        return "as criteria are met (each time the cohort is recomputed)"
    every = message.interval
    if message.cadence == Message.Cadence.DAILY:
        repeat = "daily" if every == 1 else f"every {every} days"
    elif message.cadence == Message.Cadence.WEEKLY:
        repeat = ("weekly" if every == 1 else f"every {every} weeks") + f" on {_days_in_words(message.days_of_week)}"
    else:
        repeat = ("monthly" if every == 1 else f"every {every} months") + f" on day {message.day_of_month}"
        if message.day_of_month > 28:
            repeat += " (the last day in shorter months)"
    return f"{repeat} at {message.time_of_day:%H:%M} {message.timezone}"


def _days_in_words(days: list[int]) -> str:
    names = [DAY_NAMES[day] for day in sorted(days or [])]
    if len(names) <= 1:
        return "".join(names) or "no day"
    return ", ".join(names[:-1]) + " and " + names[-1]


def message_list(*, projects: QuerySet, state: str | None = None, cohort_id: int | None = None,
                 connection_id: int | None = None) -> QuerySet:
    """Messages of these projects (a message belongs to its cohort's project), optionally filtered."""
    messages = Message.objects.filter(cohort__project__in=projects).order_by("id")
    return narrowed(messages, state=state, cohort_id=cohort_id, connection_id=connection_id)


def message_run_list(*, projects: QuerySet, message_id: int | None = None) -> QuerySet:
    """Runs of the messages of these projects (or of one message), newest first."""
    runs = MessageRun.objects.filter(message__cohort__project__in=projects)
    if message_id is not None:
        runs = runs.filter(message_id=message_id)
    return runs.order_by("-started_at", "-id")
