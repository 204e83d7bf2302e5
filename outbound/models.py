from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.core.validators import MaxValueValidator
from django.db import models

from .autopause import MAX_AUTO_PAUSE_FAILED_RUNS, MAX_AUTO_PAUSE_HOURS


class DeliveryAttempt(models.Model):
    """One try of one POST: a sync page, a message batch or an alert. Never holds a secret:
    no URL, no request headers.

    Its source (a sync run, a message run, an alert firing) is generic, so the core holds no
    foreign key into the apps built on it; each source declares a GenericRelation `attempts`.
    """

    source_kind = models.ForeignKey(ContentType, on_delete=models.PROTECT, related_name="+")
    source_id = models.PositiveBigIntegerField()
    source = GenericForeignKey("source_kind", "source_id")
    page_number = models.PositiveIntegerField()
    page_id = models.UUIDField()
    action = models.CharField(max_length=20)
    attempt_number = models.PositiveSmallIntegerField()
    outcome = models.CharField(max_length=20)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    response_excerpt = models.TextField(blank=True, default="")
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            # A source's attempts in page order: the run pages, the inlines, the API.
            models.Index(fields=["source_kind", "source_id", "page_number", "attempt_number"],
                         name="attempt_source_page"),
            # The admin's "not a success" filter, newest first; partial, so successful tries
            # (nearly all of them) cost the insert nothing.
            models.Index(fields=["-id"], condition=~models.Q(outcome="success"), name="attempt_problems"),
        ]
        ordering = ["source_kind_id", "source_id", "page_number", "attempt_number"]


class ReceiverPace(models.Model):
    """The database store of outbound.limits (when no Redis is configured): one row per connection.

    `next_request_at` is the earliest time the next request may go (its rate), `not_before` the
    time a receiver's Retry-After asked every sender to wait for. No FK: the core knows no app above.
    """

    connection_id = models.PositiveBigIntegerField(primary_key=True)
    next_request_at = models.DateTimeField(null=True, blank=True)
    not_before = models.DateTimeField(null=True, blank=True)


class ReceiverRunSlot(models.Model):
    """One run holding one of a connection's concurrent-run slots, until `expires_at` (renewed while it sends)."""

    connection_id = models.PositiveBigIntegerField()
    token = models.UUIDField(unique=True)
    expires_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["connection_id", "expires_at"], name="run_slot_connection")]


class RunSubjectState(models.Model):
    """What a run's subject (a sync, a user message) keeps of how its runs went: the receiver's
    last refusal (shown on the pages and in the pause email), when it was paused, and its
    failure streak with its own auto-pause limits (outbound.autopause)."""

    last_error_message = models.TextField(blank=True, default="")
    last_error_status = models.PositiveSmallIntegerField(null=True, blank=True)
    paused_at = models.DateTimeField(null=True, blank=True)
    # The current streak of failed runs, reset by a success or a resume, and this subject's own
    # limits (empty: the settings' defaults; 0: that rule off).
    consecutive_failed_runs = models.PositiveIntegerField(default=0, editable=False)
    failing_since = models.DateTimeField(null=True, blank=True, editable=False)
    auto_paused = models.BooleanField(default=False, editable=False)
    auto_pause_failed_runs = models.PositiveIntegerField(
        null=True, blank=True, validators=[MaxValueValidator(MAX_AUTO_PAUSE_FAILED_RUNS)],
        help_text="Pause after this many failed runs in a row (empty: the default; 0: never).")
    auto_pause_hours = models.PositiveIntegerField(
        null=True, blank=True, validators=[MaxValueValidator(MAX_AUTO_PAUSE_HOURS)],
        help_text="Pause after this many hours of failures without a success (empty: the default; 0: never).")

    class Meta:
        abstract = True
