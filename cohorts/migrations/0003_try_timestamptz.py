"""PostgreSQL helper for typed date conditions: text → timestamptz, or NULL if it is no date."""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION cohortsync_try_timestamptz(value text) RETURNS timestamptz AS $$
BEGIN
    RETURN value::timestamptz;
EXCEPTION WHEN others THEN
    RETURN NULL;
END;
$$ LANGUAGE plpgsql STABLE;
"""


def create_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP FUNCTION IF EXISTS cohortsync_try_timestamptz(text)")


class Migration(migrations.Migration):
    dependencies = [("cohorts", "0002_rules_events_sizes")]
    operations = [migrations.RunPython(create_function, drop_function)]
