from cohorts.ingestion import events_track
from cohorts.management.imports import ImportCommand, event_item_from_csv


class Command(ImportCommand):
    help = (
        "Track events from a CSV file (distinct_id, event, time; other columns become properties) "
        "or a JSON-lines file of event items."
    )
    csv_item = staticmethod(event_item_from_csv)
    ingest = staticmethod(events_track)
