"""The one beat entry (stored by django-celery-beat, editable in the admin)."""

from django.db import migrations

TASK_NAME = "Dispatch due syncs"


def create_dispatch_entry(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every_minute, _ = IntervalSchedule.objects.get_or_create(every=1, period="minutes")
    PeriodicTask.objects.get_or_create(
        name=TASK_NAME,
        defaults={"task": "deliveries.dispatch_due_syncs", "interval": every_minute, "enabled": True},
    )


def remove_dispatch_entry(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=TASK_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("deliveries", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]
    operations = [migrations.RunPython(create_dispatch_entry, remove_dispatch_entry)]
