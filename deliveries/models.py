import uuid

from django.conf import settings
from django.contrib.contenttypes.fields import GenericRelation
from django.core.exceptions import ValidationError
from django.db import models

from cohorts.models import Cohort, Profile
from integrations.models import Connection
from outbound import policy
from outbound.health import HealthQuerySet
from outbound.models import DeliveryAttempt, RunSubjectState


class Sync(RunSubjectState):
    """A cohort kept in sync with a connection, one-time or on an interval."""

    class Mode(models.TextChoices):
        ONE_TIME = "one_time", "One-time export"
        DYNAMIC = "dynamic", "Dynamic (on an interval)"

    class State(models.TextChoices):
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"
        FINISHED = "finished", "Finished"

    cohort = models.ForeignKey(Cohort, on_delete=models.CASCADE, related_name="syncs")
    connection = models.ForeignKey(Connection, on_delete=models.PROTECT, related_name="syncs")
    mode = models.CharField(max_length=20, choices=Mode.choices, default=Mode.DYNAMIC)
    interval_minutes = models.PositiveIntegerField(default=policy.DEFAULT_INTERVAL_MINUTES)
    properties = models.JSONField("profile properties to export", default=list, blank=True)
    state = models.CharField(max_length=20, choices=State.choices, default=State.ACTIVE)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    notify_users = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="+")
    # The next run is a full `members` load (operator's "full refresh").
    force_full = models.BooleanField(default=False)
    next_run_at = models.DateTimeField(null=True, blank=True)
    # A run holds the sync by lease; a killed worker's claim simply expires.
    claimed_until = models.DateTimeField(null=True, blank=True)
    claim_token = models.UUIDField(null=True, blank=True, editable=False)
    # Who holds the claim (host and process id), for operators: `runsync` names it.
    claimed_by = models.CharField(max_length=200, blank=True, default="", editable=False)
    # The dispatcher enqueued a run task that has not claimed the sync yet: later ticks leave
    # the sync alone until then (the task expires at the same time, so at most one is live).
    dispatched_until = models.DateTimeField(null=True, blank=True, editable=False)
    # The snapshot: when the delivered state was last advanced (the last successful run).
    snapshot_at = models.DateTimeField(null=True, blank=True)
    snapshot_size = models.PositiveIntegerField(default=0)
    # Which generation of snapshot rows is the delivered state (see SnapshotMember.generation).
    snapshot_generation = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = HealthQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["state", "next_run_at"], name="sync_due")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(interval_minutes__gte=policy.MIN_INTERVAL_MINUTES)
                & models.Q(interval_minutes__lte=policy.MAX_INTERVAL_MINUTES),
                name="sync_interval_bounds",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.cohort} → {self.connection}"

    def clean(self) -> None:
        errors = {}
        if not isinstance(self.properties, list) or not all(isinstance(p, str) and p for p in self.properties):
            errors["properties"] = "Properties must be a list of property names."
        elif len(self.properties) > policy.MAX_EXPORTED_PROPERTIES:
            errors["properties"] = f"At most {policy.MAX_EXPORTED_PROPERTIES} properties can be exported."
        elif len(set(self.properties)) != len(self.properties):
            errors["properties"] = "Each property may be listed once."
        if not policy.MIN_INTERVAL_MINUTES <= (self.interval_minutes or 0) <= policy.MAX_INTERVAL_MINUTES:
            errors["interval_minutes"] = (
                f"Interval must be between {policy.MIN_INTERVAL_MINUTES} and {policy.MAX_INTERVAL_MINUTES} minutes."
            )
        if self.cohort_id and self.connection_id and self.cohort.project_id != self.connection.project_id:
            errors["connection"] = "The connection belongs to another project than the cohort."
        if errors:
            raise ValidationError(errors)


class SyncRun(models.Model):
    """One run of a sync: one session id, its pages, counts and outcome."""

    class Kind(models.TextChoices):
        FULL = "full", "Full (members)"
        DIFF = "diff", "Diff (add/remove)"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        PAUSED = "paused", "Paused the sync"
        SKIPPED = "skipped", "Skipped (could not claim the sync)"

    sync = models.ForeignKey(Sync, on_delete=models.CASCADE, related_name="runs")
    session_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    kind = models.CharField(max_length=10, choices=Kind.choices, blank=True, default="")  # set when it starts
    reason = models.CharField(max_length=40, blank=True, default="")
    trigger = models.CharField(max_length=20, default="schedule")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    total_pages = models.PositiveIntegerField(default=0)
    pages_delivered = models.PositiveIntegerField(default=0)
    members_count = models.PositiveIntegerField(default=0)
    adds_count = models.PositiveIntegerField(default=0)
    removes_count = models.PositiveIntegerField(default=0)
    error_message = models.TextField(blank=True, default="")
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    attempts = GenericRelation(DeliveryAttempt, object_id_field="source_id", content_type_field="source_kind",
                               related_query_name="run")
    # A queued run's task expires then; if the run is still queued, the dispatcher enqueues it again.
    dispatched_until = models.DateTimeField(null=True, blank=True, editable=False)
    # The members a page holds, fixed when the picture is staged: a resumed run cuts the
    # same pages whatever the connection says by then.
    page_size = models.PositiveIntegerField(db_default=0, editable=False)
    # Who ran it last (claim_holder(): host and pid): an abandoned run's label names it.
    worker = models.CharField(max_length=200, blank=True, db_default="", editable=False)
    # A run that stopped (failed, crashed, hit the time limit) is resumed by the next attempt
    # from its first undelivered page; each stop it had is kept here (at, status, error, pages).
    resumed_count = models.PositiveIntegerField(db_default=0, editable=False)
    # False once the run's picture no longer fits the sync (its connection or exported
    # properties changed): a stopped run is then started over, not resumed.
    resumable = models.BooleanField(db_default=True, editable=False)
    stops = models.JSONField(null=True, blank=True, editable=False)

    class Meta:
        indexes = [
            models.Index(fields=["sync", "-started_at"], name="run_sync_recent"),
            # The admin's run list: newest first, whole or filtered by status.
            models.Index(fields=["-started_at", "-id"], name="run_recent"),
            models.Index(fields=["status", "-started_at", "-id"], name="run_status_recent"),
        ]
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"run {self.session_id} ({self.kind}, {self.status})"


class MemberOp(models.IntegerChoices):
    MEMBER = 0, "members"
    ADD = 1, "add_members"
    REMOVE = 2, "remove_members"


class StagedMember(models.Model):
    """A run's fixed picture: who it sends, computed once at the start (docs/design.md)."""

    # Indexed only by staged_run_op_profile; each extra index slows the bulk insert.
    run = models.ForeignKey(SyncRun, on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False)
    # No FK constraint: a removal may name a profile that was deleted since it was delivered.
    profile = models.ForeignKey(
        Profile, null=True, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    op = models.PositiveSmallIntegerField(choices=MemberOp.choices)
    # Filled for removals from the snapshot, which outlives the profile row.
    distinct_id = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        indexes = [models.Index(fields=["run", "op", "profile"], name="staged_run_op_profile")]


class SnapshotMember(models.Model):
    """The delivered state: who the receiver holds after the last successful run."""

    # No database FK: PostgreSQL checks a deferred FK once per row at COMMIT (seconds for a
    # first run of 1M); Django's CASCADE still deletes these rows with their sync.
    sync = models.ForeignKey(Sync, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False)
    profile = models.ForeignKey(
        Profile, null=True, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    distinct_id = models.CharField(max_length=255)
    # A full run over an empty delivered state writes its members here under its own run id,
    # and success only points Sync.snapshot_generation at them: 1M rows written once, not
    # staged and then copied. Rows of any other generation are a failed run's leftovers.
    generation = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["sync", "generation", "profile"], name="snapshot_sync_generation_profile"),
        ]


class Notification(models.Model):
    """Every email we sent about a sync: to whom, why, when."""

    sync = models.ForeignKey(Sync, null=True, on_delete=models.SET_NULL, related_name="notifications")
    run = models.ForeignKey(SyncRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    recipient = models.EmailField()
    reason = models.CharField(max_length=40)
    subject = models.CharField(max_length=300)
    sent_at = models.DateTimeField(auto_now_add=True)
    delivered = models.BooleanField(default=True)
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-sent_at", "-id"]
