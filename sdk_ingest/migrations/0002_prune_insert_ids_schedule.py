"""The daily beat entry that forgets event ids past the retention window (editable in the admin)."""

from django.db import migrations

TASK_NAME = "Prune received event ids"


def create_prune_entry(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    # Beside the events' own pruning (03:30 UTC).
    daily, _ = CrontabSchedule.objects.get_or_create(
        minute="45", hour="3", day_of_week="*", day_of_month="*", month_of_year="*", timezone="UTC"
    )
    PeriodicTask.objects.get_or_create(
        name=TASK_NAME,
        defaults={"task": "sdk_ingest.prune_insert_ids", "crontab": daily, "enabled": True},
    )


def remove_prune_entry(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=TASK_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("sdk_ingest", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]
    operations = [migrations.RunPython(create_prune_entry, remove_prune_entry)]
