"""Reads over projects, profiles and cohorts."""

from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet

from .charts import SizePoint
from .models import Cohort, CohortMember, CohortSize, Profile, Project


def narrowed(queryset: QuerySet, **lookups) -> QuerySet:
    """The queryset filtered by each lookup that has a value (None: that filter is not asked for)."""
    return queryset.filter(**{lookup: value for lookup, value in lookups.items() if value is not None})


def projects_of_member(*, user) -> QuerySet[Project]:
    """The projects a person is a member of (none for an anonymous visitor)."""
    if user is None or not user.is_authenticated:
        return Project.objects.none()
    return Project.objects.filter(members=user)


def projects_for_user(*, user) -> QuerySet[Project]:
    """The projects whose syncs, messages, cohorts and alerts a person sees on the status
    pages: those they are a member of (superusers: all)."""
    return Project.objects.all() if user.is_superuser else projects_of_member(user=user)


def cohort_membership(*, cohort: Cohort, now: datetime | None = None) -> QuerySet:
    """The one way to ask who is in a cohort: a queryset of `profile_id` values.

    The sync engine embeds its SQL in set operations (diffs, staging), so any cohort kind
    (static lists today, rules later) only has to answer with such a queryset.
    """
    if cohort.kind == Cohort.Kind.STATIC:
        return CohortMember.objects.filter(cohort_id=cohort.pk).values("profile_id")
    if cohort.kind == Cohort.Kind.RULES:
        from .rules import rule_membership  # rules use this function for cohort references

        return rule_membership(cohort=cohort, now=now)
    raise NotImplementedError(f"cohort kind {cohort.kind!r} has no membership query")


def cohort_member_count(*, cohort: Cohort) -> int:
    return cohort_membership(cohort=cohort).count()


def cohort_member_profiles(*, cohort: Cohort) -> QuerySet:
    return Profile.objects.filter(pk__in=cohort_membership(cohort=cohort))


def cohort_size_history(*, cohort: Cohort, limit: int = 500) -> QuerySet:
    return CohortSize.objects.filter(cohort=cohort).order_by("-computed_at")[:limit]


def cohort_preview(*, project_id: int, definition: dict, sample_size: int = 10) -> tuple[int, list[Profile]]:
    """Count and a sample of members for an unsaved rule definition (validated first)."""
    from .rules import validate_definition

    validate_definition(definition, project_id=project_id)
    draft = Cohort(project_id=project_id, kind=Cohort.Kind.RULES, definition=definition)
    membership = cohort_membership(cohort=draft)
    sample = list(Profile.objects.filter(pk__in=membership).order_by("distinct_id")[:sample_size])
    return membership.count(), sample


def cohort_list(*, projects: QuerySet) -> QuerySet:
    """Cohorts of these projects (the REST API passes the projects its client acts for)."""
    return Cohort.objects.filter(project__in=projects).order_by("id")


def profile_list(*, projects: QuerySet) -> QuerySet:
    return Profile.objects.filter(project__in=projects).order_by("id")


# --- Status pages ------------------------------------------------------------------------

CHART_SIZES = 120  # measurements drawn on a cohort's page
RECENT_SIZES = 20  # rows of its size table


@dataclass(frozen=True)
class SizeRow:
    """One measurement of a cohort's size, and how it differs from the one before (None: the first)."""

    computed_at: datetime
    size: int
    change: int | None


def cohort_size_rows(*, cohort: Cohort, limit: int = CHART_SIZES) -> list[SizeRow]:
    """The cohort's last measurements, newest first, each with its change from the previous one."""
    sizes = list(cohort_size_history(cohort=cohort, limit=limit + 1).values_list("computed_at", "size"))
    return [
        SizeRow(computed_at=at, size=size, change=size - sizes[i + 1][1] if i + 1 < len(sizes) else None)
        for i, (at, size) in enumerate(sizes[:limit])
    ]


def cohort_size_points(*, rows: list[SizeRow]) -> list[SizePoint]:
    """The measurements as chart points (cohorts.charts.size_chart sorts them oldest first)."""
    return [SizePoint(at=row.computed_at, size=row.size) for row in rows]
