"""Alerts on what Cohortsync knows (cohort sizes, sync health) and each time one fired.

A firing POSTs the `custom_alert_triggered` payload (docs/contract.md) to the alert's notification
webhooks, through the same sender and retries as syncs, and optionally emails.
"""

from django.conf import settings
from django.contrib.contenttypes.fields import GenericRelation
from django.core.exceptions import ValidationError
from django.db import models

from cohorts.models import Cohort, CohortSize, Project
from deliveries.models import Sync, SyncRun
from integrations.models import Connection
from outbound.models import DeliveryAttempt


class Alert(models.Model):
    class Kind(models.TextChoices):
        COHORT_SIZE = "cohort_size", "Cohort size above / below a threshold"
        COHORT_SIZE_CHANGE = "cohort_size_change", "Cohort size change (%) between computations"
        SYNC_PAUSED = "sync_paused", "Sync paused"
        SYNC_FAILING = "sync_failing", "Sync failing N runs in a row"

    class Operator(models.TextChoices):
        GREATER_THAN = "greater_than", "greater than"
        LESS_THAN = "less_than", "less than"
        INCREASES_BY = "increases_by", "increases by at least (%)"
        DECREASES_BY = "decreases_by", "decreases by at least (%)"
        CHANGES_BY = "changes_by", "changes by at least (%)"
        IS = "is", "is"  # sync paused
        AT_LEAST = "at_least", "at least"  # failed runs in a row

    OPERATORS_BY_KIND = {
        Kind.COHORT_SIZE: (Operator.GREATER_THAN, Operator.LESS_THAN),
        Kind.COHORT_SIZE_CHANGE: (Operator.INCREASES_BY, Operator.DECREASES_BY, Operator.CHANGES_BY),
        Kind.SYNC_PAUSED: (Operator.IS,),
        Kind.SYNC_FAILING: (Operator.AT_LEAST,),
    }

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="alerts")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=30, choices=Kind.choices)
    operator = models.CharField(max_length=20, choices=Operator.choices)
    threshold = models.FloatField(default=0)
    cohort = models.ForeignKey(Cohort, null=True, blank=True, on_delete=models.CASCADE, related_name="alerts")
    sync = models.ForeignKey(Sync, null=True, blank=True, on_delete=models.CASCADE, related_name="alerts")
    webhooks = models.ManyToManyField(Connection, blank=True, related_name="alerts",
                                      help_text="Notification webhooks of the project that get the alert payload.")
    email = models.BooleanField("also email", default=False,
                                help_text="Email the alert's creator and the people listed to notify.")
    notify_users = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="+")
    is_active = models.BooleanField(default=True)
    # Whether the condition held at the last evaluation: an alert fires only on the
    # evaluation that turns this from False to True (once per crossing).
    is_triggered = models.BooleanField(default=False, editable=False)
    last_evaluated_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_value = models.FloatField(null=True, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["cohort", "is_active"], name="alert_cohort_active"),
            models.Index(fields=["sync", "is_active"], name="alert_sync_active"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def watches_cohort(self) -> bool:
        return self.kind in (self.Kind.COHORT_SIZE, self.Kind.COHORT_SIZE_CHANGE)

    def clean(self) -> None:
        errors = {}
        allowed = self.OPERATORS_BY_KIND.get(self.kind, ())
        if self.kind and self.operator not in allowed:
            errors["operator"] = (f"A “{self.kind}” alert takes the operator "
                                  + " or ".join(f"“{op}”" for op in allowed) + ".")
        if self.kind in (self.Kind.COHORT_SIZE, self.Kind.COHORT_SIZE_CHANGE):
            if not self.cohort_id:
                errors["cohort"] = "A cohort alert needs a cohort."
            if self.sync_id:
                errors["sync"] = "A cohort alert watches a cohort, not a sync."
        elif self.kind in (self.Kind.SYNC_PAUSED, self.Kind.SYNC_FAILING):
            if not self.sync_id:
                errors["sync"] = "A sync alert needs a sync."
            if self.cohort_id:
                errors["cohort"] = "A sync alert watches a sync, not a cohort."
        if self.threshold is None or self.threshold != self.threshold or abs(self.threshold) == float("inf"):
            errors["threshold"] = "The threshold must be a finite number."
        elif self.threshold < 0:
            errors["threshold"] = "The threshold cannot be negative."
        elif self.kind == self.Kind.SYNC_FAILING and (self.threshold < 1 or self.threshold != int(self.threshold)):
            errors["threshold"] = "The number of failed runs in a row must be a whole number, at least 1."
        if self.project_id:
            if self.cohort_id and self.cohort.project_id != self.project_id:
                errors["cohort"] = "The cohort belongs to another project."
            if self.sync_id and self.sync.cohort.project_id != self.project_id:
                errors["sync"] = "The sync belongs to another project."
        if errors:
            raise ValidationError(errors)


class AlertFiring(models.Model):
    """One time an alert fired: the value, what was sent, and whether it arrived."""

    class Status(models.TextChoices):
        PENDING = "pending", "Sending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Not delivered"
        NO_WEBHOOK = "no_webhook", "No webhook to send to"

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="firings")
    fired_at = models.DateTimeField()
    current_value = models.FloatField()
    sentence = models.TextField()
    payload = models.JSONField()  # the body POSTed (never holds a secret)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    error_message = models.TextField(blank=True, default="")
    emailed_to = models.JSONField(default=list, blank=True)
    # The root cause: the run that paused or failed the sync, or the size computation.
    sync_run = models.ForeignKey(SyncRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    cohort_size = models.ForeignKey(CohortSize, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    attempts = GenericRelation(DeliveryAttempt, object_id_field="source_id", content_type_field="source_kind",
                               related_query_name="alert_firing")

    class Meta:
        ordering = ["-fired_at", "-id"]
        indexes = [models.Index(fields=["alert", "-fired_at"], name="firing_alert_recent")]

    def __str__(self) -> str:
        return f"{self.alert} fired at {self.fired_at:%Y-%m-%d %H:%M}"
