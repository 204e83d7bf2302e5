"""Staging rows live only for one run: on PostgreSQL skip the WAL for them (docs/design.md)."""

from django.db import migrations


def set_unlogged(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE deliveries_stagedmember SET UNLOGGED")


def set_logged(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE deliveries_stagedmember SET LOGGED")


class Migration(migrations.Migration):
    dependencies = [("deliveries", "0002_dispatch_schedule")]
    operations = [migrations.RunPython(set_unlogged, set_logged)]
