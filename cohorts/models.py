from django.conf import settings
from django.db import models


class Project(models.Model):
    """A tenant: its id is the `mixpanel_project_id` of every payload."""

    name = models.CharField(max_length=200, unique=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="projects")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Profile(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="profiles")
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

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="cohorts")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.STATIC)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.name


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
