"""User messages (legacy webhook campaigns, docs/contract.md): a cohort's matching users POSTed to a
connection as form-encoded `users` batches of 50, on a schedule, with per-user send records."""

import datetime
import uuid
import zoneinfo

from django.conf import settings
from django.contrib.contenttypes.fields import GenericRelation
from django.core.exceptions import ValidationError
from django.db import models

from cohorts.models import Cohort, Profile
from integrations.models import Connection
from outbound.health import HealthQuerySet
from outbound.models import DeliveryAttempt, RunSubjectState

from . import policy


class Message(RunSubjectState):
    class Schedule(models.TextChoices):
        ASAP = "asap", "ASAP (as soon as a user matches; once per user)"
        SCHEDULED = "scheduled", "Scheduled (at set times; once per user, ever)"
        RECURRING = "recurring", "Recurring (repeats within a per-user limit)"

    class Cadence(models.TextChoices):
        ASAP = "asap", "As criteria are met (each time the cohort is recomputed)"
        DAILY = "daily", "Daily"
        WEEKLY = "weekly", "Weekly"
        MONTHLY = "monthly", "Monthly"

    class State(models.TextChoices):
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"

    name = models.CharField(max_length=200)
    cohort = models.ForeignKey(Cohort, on_delete=models.CASCADE, related_name="messages")
    connection = models.ForeignKey(Connection, on_delete=models.PROTECT, related_name="messages")
    schedule = models.CharField(max_length=20, choices=Schedule.choices, default=Schedule.ASAP)
    cadence = models.CharField(max_length=20, choices=Cadence.choices, default=Cadence.ASAP)
    # "Every N days / weeks / months" for the timed cadences, counted from the creation date.
    interval = models.PositiveSmallIntegerField(default=1)
    time_of_day = models.TimeField(default=datetime.time(9, 0))
    timezone = models.CharField(max_length=64, default="UTC")
    days_of_week = models.JSONField("days of week (0 = Monday)", default=list, blank=True)
    day_of_month = models.PositiveSmallIntegerField(default=1)
    # Recurring only: each user gets at most `limit_count` messages in any `limit_days` days.
    limit_count = models.PositiveSmallIntegerField(default=1)
    limit_days = models.PositiveSmallIntegerField(default=7)
    # Profile properties to send; empty sends all of them (as the legacy webhook did).
    properties = models.JSONField("profile properties to send", default=list, blank=True)
    state = models.CharField(max_length=20, choices=State.choices, default=State.ACTIVE)
    next_run_at = models.DateTimeField(null=True, blank=True)
    # A run holds the message by lease (outbound.claims), as a sync run holds its sync.
    claimed_until = models.DateTimeField(null=True, blank=True)
    claim_token = models.UUIDField(null=True, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = HealthQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["state", "next_run_at"], name="message_due")]
        constraints = [
            models.CheckConstraint(condition=models.Q(interval__gte=1), name="message_interval_positive"),
            models.CheckConstraint(
                condition=models.Q(limit_count__gte=1) & models.Q(limit_days__gte=1), name="message_limit_positive"
            ),
            models.CheckConstraint(
                condition=models.Q(day_of_month__gte=1) & models.Q(day_of_month__lte=31), name="message_day_of_month"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def once_per_user(self) -> bool:
        """ASAP and scheduled messages reach each user at most once, ever (docs/contract.md, "Legacy user messages")."""
        return self.schedule != self.Schedule.RECURRING

    def clean(self) -> None:
        errors = {}
        if self.schedule == self.Schedule.ASAP and self.cadence != self.Cadence.ASAP:
            errors["cadence"] = "An ASAP message is sent as criteria are met: its cadence is “asap”."
        if self.schedule == self.Schedule.SCHEDULED and self.cadence == self.Cadence.ASAP:
            errors["cadence"] = "A scheduled message needs a daily, weekly or monthly cadence."
        if not 1 <= (self.interval or 0) <= policy.MAX_INTERVAL:
            errors["interval"] = f"Interval must be between 1 and {policy.MAX_INTERVAL}."
        try:
            zoneinfo.ZoneInfo(self.timezone or "")
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):  # "America" is a directory, not a zone
            errors["timezone"] = f"Unknown time zone {self.timezone!r} (use an IANA name such as Europe/Paris)."
        days = self.days_of_week
        if not isinstance(days, list) or not all(type(d) is int and 0 <= d <= 6 for d in days):
            errors["days_of_week"] = "Days of week must be a list of numbers 0 (Monday) to 6 (Sunday)."
        elif len(set(days)) != len(days):
            errors["days_of_week"] = "Each day may be listed once."
        elif self.cadence == self.Cadence.WEEKLY and not days:
            errors["days_of_week"] = "A weekly cadence needs at least one day of the week."
        if not 1 <= (self.day_of_month or 0) <= 31:
            errors["day_of_month"] = "Day of month must be between 1 and 31 (past a month's end: its last day)."
        if self.schedule == self.Schedule.RECURRING:
            if not 1 <= (self.limit_count or 0) <= policy.MAX_LIMIT_COUNT:
                errors["limit_count"] = f"The limit must be between 1 and {policy.MAX_LIMIT_COUNT} messages."
            if not 1 <= (self.limit_days or 0) <= policy.MAX_LIMIT_DAYS:
                errors["limit_days"] = f"The limit window must be between 1 and {policy.MAX_LIMIT_DAYS} days."
        properties = self.properties
        if not isinstance(properties, list) or not all(isinstance(p, str) and p for p in properties):
            errors["properties"] = "Properties must be a list of property names."
        elif len(properties) > policy.MAX_PROPERTIES:
            errors["properties"] = f"At most {policy.MAX_PROPERTIES} properties can be sent."
        if self.cohort_id and self.connection_id and self.cohort.project_id != self.connection.project_id:
            errors["connection"] = "The connection belongs to another project than the cohort."
        if errors:
            raise ValidationError(errors)


class MessageRun(models.Model):
    """One attempt at a message: who it reserved, its batches, outcome."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Some users not sent"
        PAUSED = "paused", "Paused the message"
        SKIPPED = "skipped", "Skipped"

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="runs")
    session_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    trigger = models.CharField(max_length=20, default="schedule")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    users_count = models.PositiveIntegerField(default=0)  # reserved at the start
    sent_count = models.PositiveIntegerField(default=0)
    total_batches = models.PositiveIntegerField(default=0)
    batches_delivered = models.PositiveIntegerField(default=0)
    batches_failed = models.PositiveIntegerField(default=0)
    error_message = models.TextField(blank=True, default="")
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    attempts = GenericRelation(DeliveryAttempt, object_id_field="source_id", content_type_field="source_kind",
                               related_query_name="message_run")
    # A queued run's task expires then; if the run is still queued, the dispatcher enqueues it again.
    dispatched_until = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        indexes = [models.Index(fields=["message", "-started_at"], name="message_run_recent")]
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"message run {self.session_id} ({self.status})"


class MessageSend(models.Model):
    """One user's n-th send of a message: reserved by a run, then sent, or deleted (given
    back for the next attempt) when its POST did not succeed.

    The unique (message, profile, sequence) is what makes "at most once" and the limits
    hold across retries, crashed workers and two workers: a second reservation of the
    same send conflicts in the database instead of going out twice.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Reserved, being sent"
        SENT = "sent", "Sent (the receiver answered 2xx)"

    # No database FKs: PostgreSQL checks deferred FKs row by row at COMMIT, most of a large
    # reservation's time (docs/benchmarks.md). Django's collector still cascades deletes.
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="+", db_index=False,
                                db_constraint=False)
    # A deleted profile's sends stay as history (DO_NOTHING); pages join to live profiles only.
    profile = models.ForeignKey(Profile, on_delete=models.DO_NOTHING, related_name="+", db_index=False,
                                db_constraint=False)
    sequence = models.PositiveIntegerField(default=1)  # 1 for once-per-user messages
    run = models.ForeignKey(MessageRun, null=True, on_delete=models.SET_NULL, related_name="sends", db_index=False,
                            db_constraint=False)
    batch_number = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    reserved_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["message", "profile", "sequence"], name="message_send_once"),
        ]
        indexes = [
            models.Index(fields=["run", "profile"], name="message_send_run_profile"),
            models.Index(fields=["message", "status", "reserved_at"], name="message_send_status"),
        ]
