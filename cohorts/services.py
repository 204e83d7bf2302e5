"""Changes to projects, profiles and static cohort membership."""

from collections.abc import Iterable

from django.db import transaction

from .models import Cohort, CohortMember, CohortSize, Profile, Project
from .selectors import cohort_member_count

BATCH_SIZE = 5000


def profile_upsert_many(*, project: Project, profiles: Iterable[dict]) -> int:
    """Insert or update profiles by distinct id, in batches; returns how many were written."""
    written = 0
    batch: list[Profile] = []
    for item in profiles:
        batch.append(Profile(project=project, **item))
        if len(batch) >= BATCH_SIZE:
            written += _profile_write_batch(batch)
            batch = []
    if batch:
        written += _profile_write_batch(batch)
    return written


def _profile_write_batch(batch: list[Profile]) -> int:
    Profile.objects.bulk_create(
        batch,
        update_conflicts=True,
        unique_fields=["project", "distinct_id"],
        update_fields=["email", "first_name", "last_name", "phone_number", "properties"],
    )
    return len(batch)


def cohort_members_add(*, cohort: Cohort, distinct_ids: Iterable[str]) -> int:
    """Add existing profiles (by distinct id) to a static cohort; unknown ids are ignored."""
    added = 0
    for chunk in _chunks(distinct_ids):
        profile_ids = Profile.objects.filter(project_id=cohort.project_id, distinct_id__in=chunk).values_list(
            "pk", flat=True
        )
        rows = [CohortMember(cohort=cohort, profile_id=pid) for pid in profile_ids]
        CohortMember.objects.bulk_create(rows, ignore_conflicts=True)
        added += len(rows)
    return added


def cohort_members_remove(*, cohort: Cohort, distinct_ids: Iterable[str]) -> int:
    removed = 0
    for chunk in _chunks(distinct_ids):
        removed += CohortMember.objects.filter(cohort=cohort, profile__distinct_id__in=chunk).delete()[0]
    return removed


@transaction.atomic
def cohort_members_replace(*, cohort: Cohort, distinct_ids: Iterable[str]) -> None:
    CohortMember.objects.filter(cohort=cohort).delete()
    cohort_members_add(cohort=cohort, distinct_ids=distinct_ids)


def _chunks(values: Iterable[str], size: int = 900) -> Iterable[list[str]]:
    # 900 stays under SQLite's bound-parameter limit once other parameters are added.
    chunk: list[str] = []
    for value in values:
        chunk.append(value)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def cohort_size_record(*, cohort: Cohort, size: int) -> CohortSize:
    """Append to the size history (charts and alerts read it)."""
    return CohortSize.objects.create(cohort=cohort, size=size)


def cohort_compute(*, cohort: Cohort) -> int:
    """Count the cohort's members now, in the database, and record the size."""
    size = cohort_member_count(cohort=cohort)
    cohort_size_record(cohort=cohort, size=size)
    return size
