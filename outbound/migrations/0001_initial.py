"""DeliveryAttempt moves here from deliveries (its 0009 gave it a generic source): the state
is created over the existing table, which is then renamed for its new app. No row is copied."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("deliveries", "0009_attempt_generic_source"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="DeliveryAttempt",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False,
                                                   verbose_name="ID")),
                        ("source_id", models.PositiveBigIntegerField()),
                        ("page_number", models.PositiveIntegerField()),
                        ("page_id", models.UUIDField()),
                        ("action", models.CharField(max_length=20)),
                        ("attempt_number", models.PositiveSmallIntegerField()),
                        ("outcome", models.CharField(max_length=20)),
                        ("http_status", models.PositiveSmallIntegerField(blank=True, null=True)),
                        ("latency_ms", models.PositiveIntegerField(default=0)),
                        ("response_excerpt", models.TextField(blank=True, default="")),
                        ("error", models.TextField(blank=True, default="")),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("source_kind", models.ForeignKey(on_delete=django.db.models.deletion.PROTECT,
                                                          related_name="+", to="contenttypes.contenttype")),
                    ],
                    options={
                        "ordering": ["source_kind_id", "source_id", "page_number", "attempt_number"],
                        "db_table": "deliveries_deliveryattempt",
                        "indexes": [
                            models.Index(fields=["source_kind", "source_id", "page_number", "attempt_number"],
                                         name="attempt_source_page"),
                            models.Index(condition=models.Q(("outcome", "success"), _negated=True), fields=["-id"],
                                         name="attempt_problems"),
                        ],
                    },
                ),
            ],
        ),
        migrations.AlterModelTable(name="deliveryattempt", table=None),
    ]
