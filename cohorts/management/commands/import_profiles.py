from cohorts.ingestion import BatchResult, profiles_upsert
from cohorts.management.imports import ImportCommand, profile_item_from_csv
from cohorts.models import Project


class Command(ImportCommand):
    help = (
        "Upsert profiles from a CSV file (distinct_id, email, first_name, last_name, phone_number; "
        "other columns become properties) or a JSON-lines file of profile items."
    )

    def csv_item(self, row: dict[str, str]) -> dict:
        return profile_item_from_csv(row)

    def send(self, *, project: Project, items: list[dict]) -> BatchResult:
        return profiles_upsert(project=project, items=items)
