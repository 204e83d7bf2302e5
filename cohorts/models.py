from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone


class Project(models.Model):
    """A tenant: its id is the `mixpanel_project_id` of every payload."""

    name = models.CharField(max_length=200, unique=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="projects")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


# A profile's identity columns beside distinct_id; anything else is a custom property.
IDENTITY_FIELDS = ("email", "first_name", "last_name", "phone_number")


class Profile(models.Model):
    # No index of its own: (project, distinct_id) serves project lookups, and a lone project_id
    # index tempts the planner into reading a whole project.
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="profiles", db_index=False)
    distinct_id = models.CharField(max_length=255)
    email = models.CharField(max_length=254, blank=True, default="")
    first_name = models.CharField(max_length=150, blank=True, default="")
    last_name = models.CharField(max_length=150, blank=True, default="")
    phone_number = models.CharField(max_length=50, blank=True, default="")
    properties = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "distinct_id"], name="profile_unique_distinct_id"),
        ]

    def __str__(self) -> str:
        return self.distinct_id


class Cohort(models.Model):
    class Kind(models.TextChoices):
        STATIC = "static", "Static list"
        RULES = "rules", "Rules over profiles and events"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="cohorts")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.STATIC)
    # For rule cohorts: AND/OR groups of conditions (cohorts/rules.py validates and compiles it).
    definition = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from .rules import validate_definition  # rules import the models

        if self.kind == self.Kind.RULES:
            validate_definition(self.definition, project_id=self.project_id, cohort_id=self.pk)
        elif self.definition:
            raise ValidationError({"definition": "Only rule cohorts have a definition."})


class CohortSize(models.Model):
    """The size history: one row each time a cohort's membership is computed."""

    cohort = models.ForeignKey(Cohort, on_delete=models.CASCADE, related_name="sizes")
    size = models.PositiveIntegerField()
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["cohort", "-computed_at"], name="cohort_size_recent")]
        ordering = ["-computed_at", "-id"]


class Event(models.Model):
    """Something a person did. Keyed by distinct id: events may arrive before the profile."""

    # No database FK: PostgreSQL checks a deferred FK once per row at COMMIT, the largest part
    # of an ingested batch's commit (docs/benchmarks.md); Django's CASCADE still deletes a
    # project's events, and rows are only written for a project the request resolved.
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+", db_index=False,
                                db_constraint=False)
    distinct_id = models.CharField(max_length=255)
    name = models.CharField(max_length=255)
    time = models.DateTimeField()
    properties = models.JSONField(default=dict, blank=True)

    class Meta:
        indexes = [
            # Behavioural conditions: one event name in a time window, grouped by person.
            models.Index(fields=["project", "name", "time", "distinct_id"], name="event_name_time"),
            # Retention pruning.
            models.Index(fields=["time"], name="event_time"),
        ]


class CohortMember(models.Model):
    """An explicit member of a static cohort."""

    cohort = models.ForeignKey(Cohort, on_delete=models.CASCADE, related_name="static_members")
    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="+")
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # Also the (cohort, profile) index that membership and diff queries use.
            models.UniqueConstraint(fields=["cohort", "profile"], name="cohort_member_unique"),
        ]
