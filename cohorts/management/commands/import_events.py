from cohorts.ingestion import BatchResult, events_track
from cohorts.management.imports import ImportCommand, event_item_from_csv
from cohorts.models import Project


class Command(ImportCommand):
    help = (
        "Track events from a CSV file (distinct_id, event, time; other columns become properties) "
        "or a JSON-lines file of event items."
    )

    def csv_item(self, row: dict[str, str]) -> dict:
        return event_item_from_csv(row)

    def send(self, *, project: Project, items: list[dict]) -> BatchResult:
        return events_track(project=project, items=items)
