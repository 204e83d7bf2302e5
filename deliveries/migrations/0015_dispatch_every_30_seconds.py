"""Beat dispatches due syncs every 30 seconds: a crashed run's sync is free again within the
claim lease (20 s), so its resumption starts within a minute of the crash. An entry an
operator has moved off the one-minute schedule is left as it is."""

from django.db import migrations

TASK_NAME = "Dispatch due syncs"


def every(apps, *, old: tuple, new: tuple):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    schedule, _ = IntervalSchedule.objects.get_or_create(every=new[0], period=new[1])
    PeriodicTask.objects.filter(name=TASK_NAME, interval__every=old[0], interval__period=old[1]).update(
        interval=schedule)


def to_30_seconds(apps, schema_editor):
    every(apps, old=(1, "minutes"), new=(30, "seconds"))


def to_1_minute(apps, schema_editor):
    every(apps, old=(30, "seconds"), new=(1, "minutes"))


class Migration(migrations.Migration):
    dependencies = [
        ("deliveries", "0014_resumable_runs"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]
    operations = [migrations.RunPython(to_30_seconds, to_1_minute)]
