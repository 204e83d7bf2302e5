from cohorts.ingestion import profiles_upsert
from cohorts.management.imports import ImportCommand, profile_item_from_csv


class Command(ImportCommand):
    help = (
        "Upsert profiles from a CSV file (distinct_id, email, first_name, last_name, phone_number; "
        "other columns become properties) or a JSON-lines file of profile items."
    )
    csv_item = staticmethod(profile_item_from_csv)
    ingest = staticmethod(profiles_upsert)
