from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from cohorts.management.imports import distinct_ids_from_file
from cohorts.models import Cohort
from cohorts.services import cohort_members_import


class Command(BaseCommand):
    help = "Add, remove or replace a static cohort's members from a file of distinct ids (one a line, or a CSV)."

    def add_arguments(self, parser):
        parser.add_argument("cohort_id", type=int)
        mode = parser.add_mutually_exclusive_group(required=True)
        mode.add_argument("--replace", dest="mode", action="store_const", const="replace",
                          help="the cohort holds exactly the file's ids afterwards")
        mode.add_argument("--add", dest="mode", action="store_const", const="add")
        mode.add_argument("--remove", dest="mode", action="store_const", const="remove")
        parser.add_argument("file", type=Path, help="one distinct id a line, or a CSV with a distinct_id column")

    def handle(self, *args, cohort_id: int, mode: str, file: Path, **options):
        cohort = Cohort.objects.filter(pk=cohort_id).first()
        if cohort is None:
            raise CommandError(f"Cohort {cohort_id} does not exist.")
        try:
            lines, distinct_ids = [], []
            for line, distinct_id in distinct_ids_from_file(file):
                lines.append(line)
                distinct_ids.append(distinct_id)
            change = cohort_members_import(cohort=cohort, distinct_ids=distinct_ids, mode=mode)
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"Cannot read {file}: {getattr(exc, 'strerror', None) or exc}") from exc
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        for error in change.rejected:
            self.stdout.write(f"line {lines[error.index]}: distinct_id: {error.message}")
        self.stdout.write(
            f"added {change.added}, removed {change.removed}; cohort {cohort.pk} has {change.size} members"
        )
        if change.rejected:
            self.stdout.write(f"rejected {len(change.rejected)} distinct ids (not applied)")
        if change.unknown_count:
            sample = ", ".join(change.unknown_sample)
            more = ", …" if change.unknown_count > len(change.unknown_sample) else ""
            self.stdout.write(f"unknown distinct ids: {change.unknown_count} ({sample}{more})")
