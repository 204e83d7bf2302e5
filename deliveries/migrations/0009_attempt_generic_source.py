"""Attempts name their source generically (source_kind + source_id) instead of one foreign key
per app built on the delivery core; then the model moves to the core app `outbound`.

Data-preserving: every row gets the kind and id of the one foreign key it had, before the
three keys are dropped. The table itself is renamed by outbound's 0001 migration.
"""

import django.db.models.deletion
from django.db import migrations, models

# (foreign key column, the model it pointed at)
SOURCES = [("run", "deliveries", "syncrun"), ("message_run", "campaigns", "messagerun"),
           ("alert_firing", "alerts", "alertfiring")]


def fill_sources(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    DeliveryAttempt = apps.get_model("deliveries", "DeliveryAttempt")
    for field, app_label, model in SOURCES:
        kind, _ = ContentType.objects.get_or_create(app_label=app_label, model=model)
        # One UPDATE a source: set work in SQL, whatever the table's size.
        DeliveryAttempt.objects.filter(**{f"{field}__isnull": False}).update(
            source_kind=kind, source_id=models.F(f"{field}_id"))


def restore_sources(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    DeliveryAttempt = apps.get_model("deliveries", "DeliveryAttempt")
    for field, app_label, model in SOURCES:
        kind = ContentType.objects.filter(app_label=app_label, model=model).first()
        if kind is not None:
            DeliveryAttempt.objects.filter(source_kind=kind).update(**{f"{field}_id": models.F("source_id")})


class Migration(migrations.Migration):

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("alerts", "0002_recompute_schedule"),
        ("campaigns", "0002_dispatch_schedule"),
        ("deliveries", "0008_snapshot_generations"),
    ]

    operations = [
        migrations.AddField(
            model_name="deliveryattempt",
            name="source_kind",
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.PROTECT, related_name="+",
                                    to="contenttypes.contenttype"),
        ),
        migrations.AddField(
            model_name="deliveryattempt",
            name="source_id",
            field=models.PositiveBigIntegerField(null=True),
        ),
        # Before the fill, so that undoing re-adds the check only once the keys are back.
        migrations.RemoveConstraint(model_name="deliveryattempt", name="attempt_one_source"),
        migrations.RunPython(fill_sources, restore_sources),
        migrations.RemoveIndex(model_name="deliveryattempt", name="attempt_run_page"),
        migrations.RemoveField(model_name="deliveryattempt", name="run"),
        migrations.RemoveField(model_name="deliveryattempt", name="message_run"),
        migrations.RemoveField(model_name="deliveryattempt", name="alert_firing"),
        migrations.AlterField(
            model_name="deliveryattempt",
            name="source_kind",
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name="+",
                                    to="contenttypes.contenttype"),
        ),
        migrations.AlterField(
            model_name="deliveryattempt",
            name="source_id",
            field=models.PositiveBigIntegerField(),
        ),
        migrations.AddIndex(
            model_name="deliveryattempt",
            index=models.Index(fields=["source_kind", "source_id", "page_number", "attempt_number"],
                               name="attempt_source_page"),
        ),
        # The model now lives in outbound (same table, renamed there): only Django's state moves.
        migrations.SeparateDatabaseAndState(state_operations=[migrations.DeleteModel(name="DeliveryAttempt")]),
    ]
