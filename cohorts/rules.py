"""Rule cohorts: validate a JSON definition and compile it to one SQL membership query.

A definition is a group: {"match": "all" | "any", "conditions": [condition or group, ...]}.
Conditions (see docs/cohort-rules.md for the full reference):
  {"type": "property", "property": "plan", "operator": "equals", "value": "pro"}
  {"type": "event", "event": "Play", "performed": true, "operator": "at_least", "count": 3,
   "within_days": 7, "where": <property condition over the event's properties>}
  {"type": "cohort", "cohort_id": 12, "in": true}
Errors name the path of the bad part, e.g. `conditions[1].within_days`.
"""

from collections.abc import Callable
from datetime import datetime, timedelta, timezone as dt_timezone

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection as db
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Value
from django.db.models.expressions import RawSQL
from django.db.models.lookups import (
    Exact, GreaterThan, GreaterThanOrEqual, IContains, In, IsNull, LessThan, LessThanOrEqual,
)
from django.utils import timezone
from django.utils.dateparse import parse_datetime, parse_date

from .json_depth import json_depth_exceeds

from .expressions import DateParam, JSONProperty
from .ingestion import LONE_SURROGATE
from .models import IDENTITY_FIELDS, Cohort, Event, Profile

MAX_DEPTH = 5
# Groups nest MAX_DEPTH deep, two JSON levels each, plus a condition and its value list: anything
# deeper is refused before any recursive walk (a 3,000-deep definition must be a 400, not a crash).
MAX_JSON_DEPTH = 2 * MAX_DEPTH + 6
MAX_CONDITIONS = 50
MAX_WITHIN_DAYS = 90
MAX_DAYS_AGO = 36_500
MAX_IN_VALUES = 1000
IDENTITY_COLUMNS = {"distinct_id", *IDENTITY_FIELDS}
VALUE_TYPES = ("string", "number", "boolean", "date")
OPERATORS = {
    "equals": VALUE_TYPES,
    "not_equals": VALUE_TYPES,
    "contains": ("string",),
    "not_contains": ("string",),
    "gt": ("number", "date"),
    "gte": ("number", "date"),
    "lt": ("number", "date"),
    "lte": ("number", "date"),
    "between": ("number", "date"),
    "in": ("string", "number"),
    "not_in": ("string", "number"),
    "is_set": VALUE_TYPES,
    "is_not_set": VALUE_TYPES,
    "more_than_days_ago": ("date",),
    "less_than_days_ago": ("date",),
}
NO_VALUE_OPERATORS = {"is_set", "is_not_set"}
EVENT_OPERATORS = ("at_least", "at_most", "exactly")


# --- Validation ----------------------------------------------------------------------


def validate_definition(definition, *, project_id: int | None, cohort_id: int | None = None) -> None:
    """Raise ValidationError({"definition": ["<path>: <reason>", ...]}) if the definition is bad.

    Cohort references are checked as a graph: no cycles, and neither this cohort nor any cohort
    that refers to it may reach deeper or to more cohorts than the settings allow.
    """
    errors: list[str] = []
    if json_depth_exceeds(definition, MAX_JSON_DEPTH):
        raise ValidationError({"definition": [
            f"definition: nested more than {MAX_JSON_DEPTH} levels deep (groups nest at most {MAX_DEPTH} deep)"
        ]})
    # PostgreSQL refuses NUL in jsonb (and in query parameters), and no database takes a lone
    # surrogate (it is not Unicode text): say where, instead of failing on save.
    nul_path = _text_path(definition, "definition", lambda text: "\x00" in text)
    surrogate_path = _text_path(definition, "definition", LONE_SURROGATE.search)
    if nul_path is not None:
        errors.append(f"{nul_path}: must not contain NUL characters")
    elif surrogate_path is not None:
        errors.append(f"{surrogate_path}: must not contain lone surrogates (not valid Unicode text)")
    else:
        graph = _ReferenceGraph(project_id=project_id, cohort_id=cohort_id)
        _check_group(definition, "definition", errors, depth=0, project_id=project_id, graph=graph)
        if not errors and graph.loaded:
            errors += graph.limit_errors(_cohort_references(definition))
    if errors:
        raise ValidationError({"definition": errors})


def _check_group(group, path, errors, *, depth, project_id, graph) -> None:
    if not isinstance(group, dict):
        errors.append(f"{path}: must be an object with `match` and `conditions`")
        return
    _unknown_keys(group, {"match", "conditions"}, path, errors)
    if group.get("match", "all") not in ("all", "any"):
        errors.append(f"{path}.match: must be \"all\" or \"any\"")
    conditions = group.get("conditions")
    if not isinstance(conditions, list) or not conditions:
        errors.append(f"{path}.conditions: must be a non-empty list")
        return
    if len(conditions) > MAX_CONDITIONS:
        errors.append(f"{path}.conditions: at most {MAX_CONDITIONS} conditions in a group")
    if depth >= MAX_DEPTH:
        errors.append(f"{path}: groups nest at most {MAX_DEPTH} deep")
        return
    for index, condition in enumerate(conditions):
        item_path = f"{path}.conditions[{index}]"
        if isinstance(condition, dict) and "conditions" in condition:
            _check_group(condition, item_path, errors, depth=depth + 1, project_id=project_id, graph=graph)
        else:
            _check_condition(condition, item_path, errors, project_id=project_id, graph=graph)


def _check_condition(condition, path, errors, *, project_id, graph) -> None:
    if not isinstance(condition, dict):
        errors.append(f"{path}: must be an object")
        return
    kind = condition.get("type")
    if kind == "property":
        _check_property(condition, path, errors, allowed_keys={"type"})
    elif kind == "event":
        _check_event(condition, path, errors)
    elif kind == "cohort":
        _check_cohort_reference(condition, path, errors, project_id=project_id, graph=graph)
    else:
        errors.append(f"{path}.type: must be \"property\", \"event\" or \"cohort\"")


def _check_property(condition, path, errors, *, allowed_keys=frozenset()) -> None:
    _unknown_keys(condition, {"property", "operator", "value", "value_type", *allowed_keys}, path, errors)
    name = condition.get("property")
    if not isinstance(name, str) or not name or len(name) > 255:
        errors.append(f"{path}.property: must be a property name")
        return
    if any(ch in name for ch in "\"\\"):
        errors.append(f"{path}.property: may not contain quotes or backslashes")
        return
    operator = condition.get("operator")
    if not isinstance(operator, str) or operator not in OPERATORS:
        errors.append(f"{path}.operator: must be one of {', '.join(OPERATORS)}")
        return
    value_type = _value_type(condition)
    if value_type not in VALUE_TYPES:
        errors.append(f"{path}.value_type: must be one of {', '.join(VALUE_TYPES)} (or give a value to infer it)")
        return
    if value_type not in OPERATORS[operator]:
        errors.append(f"{path}.operator: {operator} does not apply to {value_type} values")
        return
    if name in IDENTITY_COLUMNS and value_type != "string":
        errors.append(f"{path}.value_type: {name} is text")
        return
    if operator in NO_VALUE_OPERATORS:
        return
    value = condition.get("value")
    if operator in ("more_than_days_ago", "less_than_days_ago"):
        if not _is_number(value) or not 0 <= value <= MAX_DAYS_AGO:
            errors.append(f"{path}.value: must be a number of days, 0 to {MAX_DAYS_AGO}")
    elif operator == "between":
        if not (isinstance(value, list) and len(value) == 2 and all(_is_typed(v, value_type) for v in value)):
            errors.append(f"{path}.value: between takes [low, high] of {value_type} values")
    elif operator in ("in", "not_in"):
        if not (isinstance(value, list) and 0 < len(value) <= MAX_IN_VALUES
                and all(_is_typed(v, value_type) for v in value)):
            errors.append(f"{path}.value: {operator} takes a list of 1 to {MAX_IN_VALUES} {value_type} values")
    elif not _is_typed(value, value_type):
        errors.append(f"{path}.value: must be a {value_type}" + (" (ISO 8601)" if value_type == "date" else ""))


def _check_event(condition, path, errors) -> None:
    _unknown_keys(condition, {"type", "event", "performed", "operator", "count", "within_days", "where"}, path, errors)
    if not isinstance(condition.get("event"), str) or not condition.get("event"):
        errors.append(f"{path}.event: must be an event name")
    if not isinstance(condition.get("performed", True), bool):
        errors.append(f"{path}.performed: must be true or false")
    if condition.get("operator", "at_least") not in EVENT_OPERATORS:
        errors.append(f"{path}.operator: must be one of {', '.join(EVENT_OPERATORS)}")
    count = condition.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        errors.append(f"{path}.count: must be a whole number, 0 or more")
    days = condition.get("within_days")
    if not _is_number(days) or not 0 < days <= MAX_WITHIN_DAYS:
        errors.append(f"{path}.within_days: must be a number of days, more than 0 and at most {MAX_WITHIN_DAYS}")
    where = condition.get("where")
    if where is not None:
        if not isinstance(where, dict):
            errors.append(f"{path}.where: must be a property condition")
        elif where.get("type", "property") != "property":
            errors.append(f"{path}.where.type: must be \"property\" (a condition on the event's properties)")
        else:
            _check_property(where, f"{path}.where", errors, allowed_keys={"type"})


def _check_cohort_reference(condition, path, errors, *, project_id, graph: "_ReferenceGraph") -> None:
    _unknown_keys(condition, {"type", "cohort_id", "in"}, path, errors)
    if not isinstance(condition.get("in", True), bool):
        errors.append(f"{path}.in: must be true or false")
    target_id = condition.get("cohort_id")
    if not isinstance(target_id, int) or isinstance(target_id, bool):
        errors.append(f"{path}.cohort_id: must be a cohort id")
        return
    if not graph.has(target_id):
        errors.append(f"{path}.cohort_id: no cohort {target_id} in this project")
        return
    if graph.cohort_id is not None and graph.reaches(target_id, graph.cohort_id):
        errors.append(f"{path}.cohort_id: cohort {target_id} refers back to this cohort (a cycle)")


class _ReferenceGraph:
    """The project's cohorts and the cohorts each rule cohort refers to, read once (when the
    definition has a reference); the cohort being validated takes its new references."""

    def __init__(self, *, project_id: int | None, cohort_id: int | None):
        self.project_id, self.cohort_id = project_id, cohort_id
        self.loaded = False
        self._edges: dict[int, list[int]] = {}

    def _load(self) -> None:
        if self.loaded:
            return
        self.loaded = True
        for pk, kind, definition in Cohort.objects.filter(project_id=self.project_id).values_list(
            "pk", "kind", "definition"
        ):
            refs = _cohort_references(definition) if kind == Cohort.Kind.RULES else []
            self._edges[pk] = [ref for ref in refs if isinstance(ref, int) and not isinstance(ref, bool)]

    def has(self, cohort_id: int) -> bool:
        self._load()
        return cohort_id in self._edges

    def reaches(self, start: int, target: int) -> bool:
        """Whether `start`, directly or through other cohorts, uses cohort `target` (stored references)."""
        self._load()
        seen, stack = set(), [start]
        while stack:
            node = stack.pop()
            if node == target:
                return True
            if node not in seen:
                seen.add(node)
                stack.extend(self._edges.get(node, ()))
        return False

    def limit_errors(self, new_references: list) -> list[str]:
        """Depth and breadth of references, for this cohort and every cohort that refers to it."""
        self._load()
        me = self.cohort_id if self.cohort_id is not None else 0  # 0: an unsaved cohort (ids start at 1)
        edges = {**self._edges, me: [ref for ref in new_references if ref in self._edges]}
        max_depth = settings.COHORTSYNC_RULE_MAX_REFERENCE_DEPTH
        max_cohorts = settings.COHORTSYNC_RULE_MAX_REFERENCED_COHORTS
        errors = []
        for cohort in [me, *sorted(_referrers(edges, me))]:
            depth, reached = _reach(edges, cohort)
            whose = "this cohort" if cohort == me else f"cohort {cohort}, which refers to this one,"
            if depth > max_depth:
                errors.append(f"definition: {whose} would refer through {depth} levels of cohorts; "
                              f"at most {max_depth} (COHORTSYNC_RULE_MAX_REFERENCE_DEPTH)")
            if reached > max_cohorts:
                errors.append(f"definition: {whose} would refer to {reached} cohorts, directly or through "
                              f"others; at most {max_cohorts} (COHORTSYNC_RULE_MAX_REFERENCED_COHORTS)")
        return errors


def _referrers(edges: dict[int, list[int]], target: int) -> set[int]:
    """Every cohort that refers to `target`, directly or through others."""
    referred_by: dict[int, list[int]] = {}
    for pk, refs in edges.items():
        for ref in refs:
            referred_by.setdefault(ref, []).append(pk)
    found, stack = set(), list(referred_by.get(target, ()))
    while stack:
        node = stack.pop()
        if node not in found and node != target:
            found.add(node)
            stack.extend(referred_by.get(node, ()))
    return found


def _reach(edges: dict[int, list[int]], start: int) -> tuple[int, int]:
    """The longest chain of references from `start`, and how many distinct cohorts it reaches."""
    depths: dict[int, int] = {}
    reached: set[int] = set()

    def depth(node: int, path: frozenset) -> int:
        if node in depths:
            return depths[node]
        children = [child for child in edges.get(node, ()) if child not in path]  # a stored cycle: stop there
        reached.update(children)
        depths[node] = 1 + max((depth(child, path | {child}) for child in children), default=-1)
        return depths[node]

    return depth(start, frozenset({start})), len(reached - {start})


def _cohort_references(group) -> list[int]:
    found = []
    for condition in group.get("conditions", []) if isinstance(group, dict) else []:
        if isinstance(condition, dict) and "conditions" in condition:
            found += _cohort_references(condition)
        elif isinstance(condition, dict) and condition.get("type") == "cohort":
            found.append(condition.get("cohort_id"))
    return found


def _text_path(value, path: str, refused: Callable[[str], object]) -> str | None:
    """The path of the first text (key or value) that `refused` holds to be wrong, if any."""
    if isinstance(value, str):
        return path if refused(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            found = f"{path}.{key!r}" if refused(str(key)) else _text_path(item, f"{path}.{key}", refused)
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _text_path(item, f"{path}[{index}]", refused)
            if found is not None:
                return found
    return None


def _unknown_keys(item: dict, allowed: set[str], path: str, errors: list[str]) -> None:
    for key in sorted(set(item) - set(allowed)):
        errors.append(f"{path}.{key}: unknown field")


def _value_type(condition: dict) -> str | None:
    if "value_type" in condition:
        return condition["value_type"]
    if condition.get("operator") in ("more_than_days_ago", "less_than_days_ago"):
        return "date"
    value = condition.get("value")
    sample = value[0] if isinstance(value, list) and value else value
    if isinstance(sample, bool):
        return "boolean"
    if _is_number(sample):
        return "number"
    if isinstance(sample, str):
        # Ordering only makes sense for dates among text values: "after 2024-01-01".
        ordered = condition.get("operator") in ("gt", "gte", "lt", "lte", "between")
        return "date" if ordered and _parse_when(sample) is not None else "string"
    return "string" if condition.get("operator") in NO_VALUE_OPERATORS else None


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_typed(value, value_type: str) -> bool:
    if value_type == "string":
        return isinstance(value, str)
    if value_type == "number":
        return _is_number(value)
    if value_type == "boolean":
        return isinstance(value, bool)
    return isinstance(value, str) and _parse_when(value) is not None


def _parse_when(value: str) -> datetime | None:
    try:
        parsed = parse_datetime(value)
        if parsed is None:
            day = parse_date(value)
            parsed = datetime(day.year, day.month, day.day) if day else None
    except ValueError:  # well formed but no such day: 0000-01-01, 2024-02-30
        return None
    if parsed is not None and timezone.is_naive(parsed):
        parsed = parsed.replace(tzinfo=dt_timezone.utc)  # naive times are UTC
    if parsed is not None:
        try:
            parsed.astimezone(dt_timezone.utc)  # compared in UTC: 0001-01-01T00:00+14:00 has no UTC time
        except OverflowError:
            return None
    return parsed


# --- Compilation ---------------------------------------------------------------------


def rule_membership(*, cohort: Cohort, now: datetime | None = None) -> QuerySet:
    """The members of a rule cohort as a queryset of `profile_id` (cohorts.selectors contract).

    Each referenced rule cohort is compiled once, as a common table expression that every
    reference reads (on SQLite: a temporary table, filled now): the SQL grows with the number
    of distinct cohorts involved, not with the product of their references, and does not nest
    a subquery per level of reference.
    """
    compiler = _RuleCompiler(project_id=cohort.project_id, now=now or timezone.now())
    members = Profile.objects.filter(compiler.group(cohort.definition), project_id=cohort.project_id)
    if compiler.ctes and db.vendor == "sqlite":
        # SQLite copies a CTE's body into every reference while parsing (the product again):
        # compute each referenced cohort once into a temporary table instead, in dependency order.
        with db.cursor() as cursor:
            for name, sql, params in compiler.ctes:
                cursor.execute(f"DROP TABLE IF EXISTS temp.{name}")
                cursor.execute(f"CREATE TEMPORARY TABLE {name} (profile_id INTEGER PRIMARY KEY)")
                cursor.execute(f"INSERT INTO {name} (profile_id) {sql}", params)
    elif compiler.ctes:
        body_sql, body_params = members.values("id").query.sql_with_params()
        # MATERIALIZED: computed once, whatever number of references read it.
        ctes = ", ".join(f"{name} (profile_id) AS MATERIALIZED ({sql})" for name, sql, _ in compiler.ctes)
        params = [param for _, _, cte_params in compiler.ctes for param in cte_params]
        members = Profile.objects.filter(pk__in=RawSQL(f"WITH {ctes} {body_sql}", (*params, *body_params)))
    return members.annotate(profile_id=F("id")).values("profile_id")


class _RuleCompiler:
    """Compiles one definition; referenced rule cohorts become named CTEs, in dependency order."""

    def __init__(self, *, project_id: int, now: datetime):
        self.project_id, self.now = project_id, now
        self.ctes: list[tuple[str, str, tuple]] = []  # (name, SQL, params)
        self._names: dict[int, str] = {}
        self._compiling: set[int] = set()

    def group(self, group: dict) -> Q:
        parts = [self.group(condition) if "conditions" in condition else self.condition(condition)
                 for condition in group["conditions"]]
        combined = parts[0]
        for part in parts[1:]:
            combined = combined | part if group.get("match", "all") == "any" else combined & part
        return combined

    def condition(self, condition: dict) -> Q:
        kind = condition["type"]
        if kind == "property":
            return property_q(condition, source=F("properties"), now=self.now, identity=True)
        if kind == "event":
            return _event_q(condition, project_id=self.project_id, now=self.now)
        inside = self.reference(condition["cohort_id"])
        return inside if condition.get("in", True) else ~inside

    def reference(self, cohort_id: int) -> Q:
        if cohort_id in self._names:
            return Q(pk__in=RawSQL(f"SELECT profile_id FROM {self._names[cohort_id]}", ()))
        target = Cohort.objects.filter(pk=cohort_id, project_id=self.project_id).first()
        if target is None:  # deleted since this definition was saved: it has no members
            return Q(pk__in=[])
        if target.kind != Cohort.Kind.RULES:
            from .selectors import cohort_membership  # selectors dispatch back to rules for rule cohorts

            return Q(pk__in=cohort_membership(cohort=target, now=self.now))
        if cohort_id in self._compiling:  # saving refuses cycles; one stored before that check must not loop
            raise ValidationError(f"Cohort {cohort_id} refers to itself through other cohorts; edit one of them.")
        self._compiling.add(cohort_id)
        body = Profile.objects.filter(self.group(target.definition), project_id=self.project_id).values("id")
        sql, params = body.query.sql_with_params()
        self._names[cohort_id] = f"cohort_{cohort_id}_members"
        self.ctes.append((self._names[cohort_id], sql, tuple(params)))
        return self.reference(cohort_id)


def property_q(condition: dict, *, source, now: datetime, identity: bool) -> Q:
    """One property condition as a Q that is never NULL (so negations include missing values)."""
    name, operator = condition["property"], condition["operator"]
    value_type = _value_type(condition)
    if identity and name in IDENTITY_COLUMNS:
        expression = F(name)
        present = ~Q(**{name: ""})
    else:
        expression = JSONProperty(source, name, value_type)
        present = Q(JSONProperty(source, name, "present"))
        if value_type in ("number", "boolean", "date"):
            present = Q(IsNull(expression, False))  # set *and* of the right type
    if operator == "is_set":
        return present
    if operator == "is_not_set":
        return ~present
    value = condition.get("value")
    if value_type == "date":
        expression, value = _date_operands(expression, operator, value, now)
        if operator == "less_than_days_ago":  # within the last N days, not in the future
            since, until = value
            return Q(GreaterThanOrEqual(expression, since)) & Q(LessThanOrEqual(expression, until))
        operator = {"more_than_days_ago": "lt"}.get(operator, operator)
    if operator == "equals":
        return Q(Exact(expression, value))
    if operator == "not_equals":
        return ~Q(Exact(expression, value)) | Q(IsNull(expression, True))
    if operator == "contains":
        return Q(IContains(expression, value))
    if operator == "not_contains":
        return ~Q(IContains(expression, value)) | Q(IsNull(expression, True))
    if operator == "in":
        return Q(In(expression, value))
    if operator == "not_in":
        return ~Q(In(expression, value)) | Q(IsNull(expression, True))
    if operator == "between":
        low, high = value
        return Q(GreaterThanOrEqual(expression, low)) & Q(LessThanOrEqual(expression, high))
    lookup = {"gt": GreaterThan, "gte": GreaterThanOrEqual, "lt": LessThan, "lte": LessThanOrEqual}[operator]
    return Q(lookup(expression, value))


def _date_operands(expression, operator: str, value, now: datetime):
    """Dates compare as timestamps; relative operators turn "N days ago" into a moment."""
    if operator == "more_than_days_ago":
        return expression, DateParam(Value(_sql_time(now - timedelta(days=value))))
    if operator == "less_than_days_ago":
        return expression, (DateParam(Value(_sql_time(now - timedelta(days=value)))), DateParam(Value(_sql_time(now))))
    if operator == "between":
        return expression, [DateParam(Value(_sql_time(_parse_when(v)))) for v in value]
    return expression, DateParam(Value(_sql_time(_parse_when(value))))


def _sql_time(moment: datetime) -> str:
    # One text format both databases parse the same way (UTC, with fractions of a second).
    return moment.astimezone(dt_timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f+00:00")


def _event_q(condition: dict, *, project_id: int, now: datetime) -> Q:
    """Did (or did not) perform an event at least / at most / exactly N times in the last D days."""
    since = now - timedelta(days=condition["within_days"])
    events = Event.objects.filter(project_id=project_id, name=condition["event"], time__gte=since, time__lte=now)
    if condition.get("where"):
        events = events.filter(property_q(condition["where"], source=F("properties"), now=now, identity=False))
    count = condition.get("count", 1)
    operator = condition.get("operator", "at_least")
    per_person = events.values("distinct_id").annotate(times=Count("id"))
    # Phrase each case so people with no events at all are counted as 0.
    if operator == "at_least":
        if count > 0:
            matched = Q(distinct_id__in=per_person.filter(times__gte=count).values("distinct_id"))
        else:
            matched = Q(pk__isnull=False)  # at least 0 times: everyone
    elif operator == "at_most":
        matched = ~Q(distinct_id__in=per_person.filter(times__gt=count).values("distinct_id"))
    elif count == 0:  # exactly 0
        matched = ~Q(Exists(events.filter(distinct_id=OuterRef("distinct_id"))))
    else:
        matched = Q(distinct_id__in=per_person.filter(times=count).values("distinct_id"))
    return matched if condition.get("performed", True) else ~matched
