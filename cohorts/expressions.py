"""Typed reads of JSON properties that behave the same on PostgreSQL and SQLite.

A property of another type reads as NULL, so `score > 5` never matches the string "10"
and a malformed date never raises: typed comparison, not JSON's cross-type ordering.
"""

from django.db.models import BooleanField, DateTimeField, Expression, FloatField, Func, TextField

SQLITE_TYPES = {
    "string": "('text')",
    "number": "('integer', 'real')",
    "boolean": "('true', 'false')",
    "date": "('text')",
}
PG_TYPES = {"string": "'string'", "number": "'number'", "boolean": "'boolean'", "date": "'string'"}
# ISO 8601 date, optional time, optional Z or ±HH:MM offset.
ISO_DATE_RE = r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:\d{2})?$"
SQLITE_ISO_GLOB = "'[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*'"
OUTPUT_FIELDS = {"string": TextField, "number": FloatField, "boolean": BooleanField, "date": DateTimeField,
                 "present": BooleanField}


class JSONProperty(Func):
    """`source[key]` as a typed value (string, number, boolean, date) or `present` (set, not null)."""

    def __init__(self, source: Expression, key: str, value_type: str):
        self.key = key
        self.value_type = value_type
        super().__init__(source, output_field=OUTPUT_FIELDS[value_type]())

    def as_postgresql(self, compiler, connection):
        column, params = compiler.compile(self.source_expressions[0])
        kind = self.value_type
        if kind == "present":
            sql = f"(jsonb_typeof({column} -> %s) IS NOT NULL AND jsonb_typeof({column} -> %s) <> 'null')"
            return sql, (*params, self.key, *params, self.key)
        cast = {"string": "", "number": "::double precision", "boolean": "::boolean"}.get(kind)
        if kind == "date":
            # Only ISO 8601 text is a date (not 'now', 'today' or '2026/01/15'), as on SQLite.
            sql = (f"(CASE WHEN jsonb_typeof({column} -> %s) = 'string' AND {column} ->> %s ~ %s "
                   f"THEN cohortsync_try_timestamptz({column} ->> %s) END)")
            return sql, (*params, self.key, *params, self.key, ISO_DATE_RE, *params, self.key)
        value = f"({column} ->> %s){cast}"
        sql = f"(CASE WHEN jsonb_typeof({column} -> %s) = {PG_TYPES[kind]} THEN {value} END)"
        return sql, (*params, self.key, *params, self.key)

    def as_sqlite(self, compiler, connection):
        column, params = compiler.compile(self.source_expressions[0])
        path = json_path(self.key)
        kind = self.value_type
        if kind == "present":
            sql = f"(json_type({column}, %s) IS NOT NULL AND json_type({column}, %s) <> 'null')"
            return sql, (*params, path, *params, path)
        value = f"json_extract({column}, %s)"
        if kind == "date":
            # julianday() reads '10' as a Julian day and rolls 02-30 over to March: check the
            # ISO shape and that the calendar date survives a round trip first.
            sql = (f"(CASE WHEN json_type({column}, %s) = 'text' AND {value} GLOB {SQLITE_ISO_GLOB} "
                   f"AND date(julianday(substr({value}, 1, 10))) = substr({value}, 1, 10) THEN julianday({value}) END)")
            return sql, (*params, path, *params, path, *params, path, *params, path, *params, path)
        sql = f"(CASE WHEN json_type({column}, %s) IN {SQLITE_TYPES[kind]} THEN {value} END)"
        return sql, (*params, path, *params, path)

    def as_sql(self, compiler, connection, **extra):
        raise NotImplementedError(f"JSON properties are supported on PostgreSQL and SQLite, not {connection.vendor}")


class DateParam(Func):
    """A datetime parameter in the form JSONProperty(..., "date") compares against."""

    output_field = DateTimeField()

    def as_sqlite(self, compiler, connection):
        sql, params = compiler.compile(self.source_expressions[0])
        return f"julianday({sql})", params

    def as_postgresql(self, compiler, connection):
        sql, params = compiler.compile(self.source_expressions[0])
        return f"({sql})::timestamptz", params


def json_path(key: str) -> str:
    # Rule validation refuses keys with quotes or backslashes, so quoting is enough here.
    return f'$."{key}"'
