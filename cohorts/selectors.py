"""Reads over projects, profiles and cohorts."""

from django.db.models import QuerySet

from .models import Cohort, CohortMember, Profile


def cohort_membership(*, cohort: Cohort) -> QuerySet:
    """The one way to ask who is in a cohort: a queryset of `profile_id` values.

    The sync engine embeds its SQL in set operations (diffs, staging), so any cohort kind
    (static lists today, rules later) only has to answer with such a queryset.
    """
    if cohort.kind == Cohort.Kind.STATIC:
        return CohortMember.objects.filter(cohort_id=cohort.pk).values("profile_id")
    raise NotImplementedError(f"cohort kind {cohort.kind!r} has no membership query")


def cohort_member_count(*, cohort: Cohort) -> int:
    return cohort_membership(cohort=cohort).count()


def cohort_member_profiles(*, cohort: Cohort) -> QuerySet:
    return Profile.objects.filter(pk__in=cohort_membership(cohort=cohort))
