"""Changes to projects, profiles and static cohort membership."""

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from django.core.exceptions import ValidationError
from django.db import transaction

from .ingestion import ItemError, distinct_id_problem
from .models import Cohort, CohortMember, CohortSize, Profile, Project
from .selectors import cohort_member_count
from .signals import cohort_recomputed

UNKNOWN_SAMPLE_SIZE = 10  # unknown distinct ids named back to whoever sent a member list


def cohort_members_add(*, cohort: Cohort, distinct_ids: Iterable[str]) -> int:
    """Add existing profiles (by distinct id) to a static cohort; unknown ids are ignored."""
    added = 0
    for chunk in _chunks(distinct_ids):
        profile_ids = Profile.objects.filter(project_id=cohort.project_id, distinct_id__in=chunk).values_list(
            "pk", flat=True
        )
        present = set(
            CohortMember.objects.filter(cohort=cohort, profile_id__in=profile_ids).values_list("profile_id", flat=True)
        )
        rows = [CohortMember(cohort=cohort, profile_id=pid) for pid in profile_ids if pid not in present]
        CohortMember.objects.bulk_create(rows, ignore_conflicts=True)  # a concurrent add may still win
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


@dataclass
class MembershipChange:
    added: int
    removed: int
    size: int  # members after the change
    unknown_count: int  # distinct ids with no profile in the cohort's project
    unknown_sample: list[str]
    rejected: list[ItemError] = field(default_factory=list)  # ids refused by the distinct id rule, by index


@transaction.atomic
def cohort_members_import(
    *, cohort: Cohort, distinct_ids: Iterable[str], mode: Literal["add", "remove", "replace"]
) -> MembershipChange:
    """Add, remove or replace a static cohort's members from a list of distinct ids (a file);
    counts what really changed and which ids name no profile. Ids the distinct id rule refuses
    (ingestion.distinct_id_problem) are reported by their index and left out; the others apply."""
    if cohort.kind != Cohort.Kind.STATIC:
        raise ValidationError(f"Cohort {cohort.pk} is computed from rules; only static "
                              "cohorts take member lists.")
    rejected, accepted = [], []
    for index, distinct_id in enumerate(distinct_ids):
        problem = distinct_id_problem(distinct_id)
        if problem:
            rejected.append(ItemError(index, None, problem))
        else:
            accepted.append(distinct_id)
    distinct_ids = list(dict.fromkeys(accepted))
    members = CohortMember.objects.filter(cohort=cohort)
    before = members.count()
    if mode == "add":
        # Counted from the table: cohort_members_add counts the rows it tried, not those added.
        cohort_members_add(cohort=cohort, distinct_ids=distinct_ids)
        added, removed = members.count() - before, 0
    elif mode == "remove":
        added, removed = 0, cohort_members_remove(cohort=cohort, distinct_ids=distinct_ids)
    elif mode == "replace":
        kept = sum(members.filter(profile__distinct_id__in=chunk).count() for chunk in _chunks(distinct_ids))
        cohort_members_replace(cohort=cohort, distinct_ids=distinct_ids)
        added, removed = members.count() - kept, before - kept
    else:
        raise ValueError(f"unknown mode {mode!r}")
    unknown_count, unknown_sample = _unknown_distinct_ids(cohort.project_id, distinct_ids)
    return MembershipChange(added, removed, before + added - removed, unknown_count, unknown_sample, rejected)


def _unknown_distinct_ids(project_id: int, distinct_ids: list[str]) -> tuple[int, list[str]]:
    count, sample = 0, []
    for chunk in _chunks(distinct_ids):
        known = set(Profile.objects.filter(project_id=project_id, distinct_id__in=chunk)
                    .values_list("distinct_id", flat=True))
        for distinct_id in chunk:
            if distinct_id not in known:
                count += 1
                if len(sample) < UNKNOWN_SAMPLE_SIZE:
                    sample.append(distinct_id)
    return count, sample


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
    """Append to the size history (charts and alerts read it); tells followers the cohort
    was recomputed (ASAP messages check their audience, size alerts evaluate)."""
    recorded = CohortSize.objects.create(cohort=cohort, size=size)
    cohort_recomputed.send(sender=Cohort, cohort_id=cohort.pk, size=size, cohort_size_id=recorded.pk)
    return recorded


def cohort_compute(*, cohort: Cohort) -> int:
    """Count the cohort's members now, in the database, and record the size."""
    size = cohort_member_count(cohort=cohort)
    cohort_size_record(cohort=cohort, size=size)
    return size


def cohort_create(
    *, project: Project, name: str, description: str = "", kind: str = Cohort.Kind.STATIC, definition: dict | None = None
) -> Cohort:
    """A static cohort, or a rule cohort whose definition is validated (docs/cohort-rules.md)."""
    cohort = Cohort(project=project, name=name, description=description, kind=kind, definition=definition or {})
    return _cohort_checked_save(cohort)


def cohort_update(*, cohort: Cohort, **fields) -> Cohort:
    """Change a cohort's fields (name, description, definition) and validate the result."""
    for name, value in fields.items():
        setattr(cohort, name, value)
    return _cohort_checked_save(cohort)


@transaction.atomic
def _cohort_checked_save(cohort: Cohort) -> Cohort:
    if cohort.kind == Cohort.Kind.RULES:
        # Validation reads the project's other rule cohorts (cycles, reference limits): two saves
        # at once must not each pass against the other's old definition.
        Project.objects.select_for_update().filter(pk=cohort.project_id).first()
    cohort.full_clean()
    cohort.save()
    return cohort
