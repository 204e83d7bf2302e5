from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models


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
