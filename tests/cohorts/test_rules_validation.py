"""Validation of rule definitions (cohorts/rules.py validate_definition, Cohort.clean): every
error names the path of the bad part, e.g. `definition.conditions[1].within_days: ...`."""

import pytest
from django.core.exceptions import ValidationError

from cohorts.models import Cohort
from cohorts.rules import MAX_CONDITIONS, MAX_IN_VALUES, validate_definition
from tests.factories import CohortFactory, ProjectFactory

pytestmark = pytest.mark.django_db

PLAN_IS_PRO = {"type": "property", "property": "plan", "operator": "equals", "value": "pro"}
PLAYED = {"type": "event", "event": "Play", "operator": "at_least", "count": 2, "within_days": 7}


def errors(definition, *, project_id: int | None = None, cohort_id: int | None = None) -> list[str]:
    with pytest.raises(ValidationError) as raised:
        validate_definition(definition, project_id=project_id, cohort_id=cohort_id)
    return raised.value.message_dict["definition"]


def paths(messages: list[str]) -> list[str]:
    """The path before ": " of each message (and that every message has one)."""
    assert all(": " in message for message in messages), messages
    return [message.split(": ", 1)[0] for message in messages]


def group(*conditions, **fields) -> dict:
    return {"match": "all", "conditions": list(conditions), **fields}


def second(condition: dict) -> dict:
    """A definition whose bad part sits at conditions[1], after a good one."""
    return group(PLAN_IS_PRO, condition)


def prop(**fields) -> dict:
    return {"type": "property", "property": "score", **fields}


def event(**fields) -> dict:
    return {**PLAYED, **fields}


@pytest.fixture
def project():
    return ProjectFactory()


# --- Valid definitions -------------------------------------------------------------------


@pytest.mark.parametrize("definition", [
    pytest.param(group(PLAN_IS_PRO), id="property"),
    pytest.param({"conditions": [PLAN_IS_PRO]}, id="match-defaults-to-all"),
    pytest.param(group(PLAYED), id="event"),
    pytest.param(group({"type": "event", "event": "Play", "within_days": 90}), id="event-defaults-and-90-days"),
    pytest.param(group(event(within_days=0.5)), id="fractional-days"),
    pytest.param(group(event(count=0, operator="exactly", performed=False)), id="count-0"),
    pytest.param(group(event(where={"property": "level", "operator": "gte", "value": 5})), id="event-where"),
    pytest.param(group(prop(operator="between", value=[1, 2.5])), id="between-numbers"),
    pytest.param(group(prop(operator="between", value=["2026-01-01", "2026-01-31T10:00:00+02:00"])),
                 id="between-dates"),
    pytest.param(group(prop(operator="is_set", value_type="boolean")), id="is_set-typed"),
    pytest.param(group(prop(operator="is_not_set")), id="is_not_set-untyped"),
    pytest.param(group(prop(operator="less_than_days_ago", value=0)), id="relative-0-days"),
    pytest.param(group(prop(operator="in", value=list(range(MAX_IN_VALUES)))), id="in-1000-values"),
    pytest.param(group(*[PLAN_IS_PRO] * MAX_CONDITIONS), id="50-conditions"),
    pytest.param(group({"type": "property", "property": "it's", "operator": "equals", "value": "x"}),
                 id="single-quote-in-name"),
    pytest.param(group({"type": "property", "property": "email", "operator": "contains", "value": "@"}),
                 id="identity-field-as-text"),
    pytest.param(group(group(group(group(group(PLAN_IS_PRO))))), id="five-levels"),
])
def test_valid_definitions_pass(project, definition):
    validate_definition(definition, project_id=project.pk)


# --- Errors, each with its path -------------------------------------------------------------


@pytest.mark.parametrize("definition, path", [
    # Shape
    pytest.param(None, "definition", id="not-an-object"),
    pytest.param([PLAN_IS_PRO], "definition", id="a-list"),
    pytest.param({"match": "all"}, "definition.conditions", id="no-conditions"),
    pytest.param(group(), "definition.conditions", id="empty-conditions"),
    pytest.param(second(group()), "definition.conditions[1].conditions", id="empty-nested-conditions"),
    pytest.param({"match": "all", "conditions": PLAN_IS_PRO}, "definition.conditions", id="conditions-not-a-list"),
    pytest.param(group(*[PLAN_IS_PRO] * (MAX_CONDITIONS + 1)), "definition.conditions", id="51-conditions"),
    pytest.param(group(PLAN_IS_PRO, match="some"), "definition.match", id="bad-match"),
    pytest.param(second("plan = pro"), "definition.conditions[1]", id="condition-not-an-object"),
    pytest.param(second({"property": "plan", "operator": "equals", "value": "pro"}), "definition.conditions[1].type",
                 id="no-type"),
    pytest.param(second({**PLAN_IS_PRO, "type": "trait"}), "definition.conditions[1].type", id="bad-type"),
    # Unknown fields, at every level
    pytest.param(group(PLAN_IS_PRO, name="x"), "definition.name", id="unknown-field-in-group"),
    pytest.param(second({**PLAN_IS_PRO, "negate": True}), "definition.conditions[1].negate",
                 id="unknown-field-in-property"),
    pytest.param(second(event(times=3)), "definition.conditions[1].times", id="unknown-field-in-event"),
    pytest.param(second(event(where={"property": "level", "operator": "is_set", "op": "x"})),
                 "definition.conditions[1].where.op", id="unknown-field-in-where"),
    pytest.param(second({"type": "cohort", "cohort_id": 1, "not": True}), "definition.conditions[1].not",
                 id="unknown-field-in-cohort"),
    pytest.param(second(group(PLAN_IS_PRO, kind="x")), "definition.conditions[1].kind",
                 id="unknown-field-in-nested-group"),
    # Property names
    pytest.param(second(prop(property='say "hi"', operator="is_set")), "definition.conditions[1].property",
                 id="double-quote-in-name"),
    pytest.param(second(prop(property="a\\b", operator="is_set")), "definition.conditions[1].property",
                 id="backslash-in-name"),
    pytest.param(second(prop(property='x") OR 1=1 --', operator="is_set")), "definition.conditions[1].property",
                 id="injection-attempt-in-name"),
    pytest.param(second(prop(property="", operator="is_set")), "definition.conditions[1].property", id="empty-name"),
    pytest.param(second(prop(property=5, operator="is_set")), "definition.conditions[1].property",
                 id="name-not-text"),
    pytest.param(second(prop(property="x" * 256, operator="is_set")), "definition.conditions[1].property",
                 id="name-too-long"),
    # Operators and types
    pytest.param(second(prop(operator="like", value="x")), "definition.conditions[1].operator", id="bad-operator"),
    pytest.param(second(prop(operator="contains", value=5)), "definition.conditions[1].operator",
                 id="contains-number"),
    pytest.param(second(prop(operator="gt", value="abc")), "definition.conditions[1].operator", id="gt-text"),
    pytest.param(second(prop(operator="gt", value=True)), "definition.conditions[1].operator", id="gt-boolean"),
    pytest.param(second(prop(operator="between", value=[True, False])), "definition.conditions[1].operator",
                 id="between-booleans"),
    pytest.param(second(prop(operator="in", value=[True])), "definition.conditions[1].operator", id="in-booleans"),
    pytest.param(second(prop(operator="in", value=["2026-01-01"], value_type="date")),
                 "definition.conditions[1].operator", id="in-dates"),
    pytest.param(second(prop(operator="more_than_days_ago", value=3, value_type="number")),
                 "definition.conditions[1].operator", id="relative-on-number"),
    pytest.param(second(prop(operator="equals", value=[1, 2])), "definition.conditions[1].value",
                 id="equals-a-list"),
    pytest.param(second(prop(operator="equals", value=None)), "definition.conditions[1].value_type",
                 id="equals-null"),
    pytest.param(second(prop(operator="equals", value="x", value_type="datetime")),
                 "definition.conditions[1].value_type", id="unknown-value-type"),
    pytest.param(second({"type": "property", "property": "email", "operator": "equals", "value": 5}),
                 "definition.conditions[1].value_type", id="identity-field-as-number"),
    pytest.param(second({"type": "property", "property": "distinct_id", "operator": "is_set", "value_type": "date"}),
                 "definition.conditions[1].value_type", id="identity-field-as-date"),
    # Values
    pytest.param(second(prop(operator="equals", value="10", value_type="number")), "definition.conditions[1].value",
                 id="text-for-number"),
    pytest.param(second(prop(operator="equals", value="true", value_type="boolean")),
                 "definition.conditions[1].value", id="text-for-boolean"),
    pytest.param(second(prop(operator="gt", value="yesterday", value_type="date")), "definition.conditions[1].value",
                 id="text-that-is-no-date"),
    pytest.param(second(prop(operator="between", value=[1])), "definition.conditions[1].value", id="between-one"),
    pytest.param(second(prop(operator="between", value=[1, 2, 3])), "definition.conditions[1].value",
                 id="between-three"),
    pytest.param(second(prop(operator="between", value=[1, "2"])), "definition.conditions[1].value",
                 id="between-mixed-types"),
    pytest.param(second(prop(operator="in", value=[], value_type="string")), "definition.conditions[1].value",
                 id="in-empty"),
    pytest.param(second(prop(operator="in", value=list(range(MAX_IN_VALUES + 1)))), "definition.conditions[1].value",
                 id="in-1001-values"),
    pytest.param(second(prop(operator="not_in", value=[1, "2"])), "definition.conditions[1].value",
                 id="not_in-mixed-types"),
    pytest.param(second(prop(operator="more_than_days_ago", value=-1)), "definition.conditions[1].value",
                 id="negative-days"),
    pytest.param(second(prop(operator="less_than_days_ago", value="7")), "definition.conditions[1].value",
                 id="days-as-text"),
    # Behaviour conditions
    pytest.param(second(event(within_days=0)), "definition.conditions[1].within_days", id="within-0-days"),
    pytest.param(second(event(within_days=91)), "definition.conditions[1].within_days", id="within-91-days"),
    pytest.param(second(event(within_days=-7)), "definition.conditions[1].within_days", id="within-negative-days"),
    pytest.param(second(event(within_days="7")), "definition.conditions[1].within_days", id="within-text"),
    pytest.param(second(event(within_days=True)), "definition.conditions[1].within_days", id="within-true"),
    pytest.param(second({"type": "event", "event": "Play"}), "definition.conditions[1].within_days",
                 id="within-missing"),
    pytest.param(second(event(count=-1)), "definition.conditions[1].count", id="negative-count"),
    pytest.param(second(event(count=1.5)), "definition.conditions[1].count", id="fractional-count"),
    pytest.param(second(event(count=True)), "definition.conditions[1].count", id="count-true"),
    pytest.param(second(event(operator="more_than")), "definition.conditions[1].operator", id="bad-event-operator"),
    pytest.param(second(event(performed="yes")), "definition.conditions[1].performed", id="performed-text"),
    pytest.param(second(event(event="")), "definition.conditions[1].event", id="empty-event-name"),
    pytest.param(second({"type": "event", "within_days": 7}), "definition.conditions[1].event", id="no-event-name"),
    pytest.param(second(event(where="level > 5")), "definition.conditions[1].where", id="where-not-an-object"),
    pytest.param(second(event(where={"property": "level", "operator": "contains", "value": 5})),
                 "definition.conditions[1].where.operator", id="where-bad-operator-for-type"),
    pytest.param(second(event(where={"property": 'le"vel', "operator": "is_set"})),
                 "definition.conditions[1].where.property", id="where-quote-in-name"),
    # Cohort references (ids that exist are in the tests below)
    pytest.param(second({"type": "cohort", "cohort_id": "12"}), "definition.conditions[1].cohort_id",
                 id="cohort-id-text"),
    pytest.param(second({"type": "cohort", "cohort_id": True}), "definition.conditions[1].cohort_id",
                 id="cohort-id-true"),
    pytest.param(second({"type": "cohort"}), "definition.conditions[1].cohort_id", id="cohort-id-missing"),
    pytest.param(second({"type": "cohort", "cohort_id": 999_999}), "definition.conditions[1].cohort_id",
                 id="no-such-cohort"),
    pytest.param(second({"type": "cohort", "cohort_id": 2**70}), "definition.conditions[1].cohort_id",
                 id="cohort-id-beyond-bigint"),
    pytest.param(second({"type": "cohort", "cohort_id": 999_999, "in": "no"}), "definition.conditions[1].in",
                 id="in-not-a-boolean"),
])
def test_each_error_starts_with_its_path(project, definition, path):
    messages = errors(definition, project_id=project.pk)

    assert path in paths(messages)
    assert all(message.startswith("definition") for message in messages)


@pytest.mark.parametrize("definition, expected", [
    pytest.param(second(event(within_days=0)),
                 "definition.conditions[1].within_days: must be a number of days, more than 0 and at most 90",
                 id="within_days"),
    pytest.param(second(prop(operator="contains", value=5)),
                 "definition.conditions[1].operator: contains does not apply to number values", id="operator"),
    pytest.param(second({**PLAN_IS_PRO, "negate": True}), "definition.conditions[1].negate: unknown field",
                 id="unknown-field"),
    pytest.param(second(event(count=-1)), "definition.conditions[1].count: must be a whole number, 0 or more",
                 id="count"),
])
def test_messages_read_as_path_and_reason(project, definition, expected):
    assert errors(definition, project_id=project.pk) == [expected]


def test_all_errors_are_reported_in_order(project):
    definition = group(
        PLAN_IS_PRO,
        event(within_days=91, count=-1),
        {"match": "any", "conditions": [prop(operator="contains", value=5), {**PLAN_IS_PRO, "x": 1}]},
        match="either",
    )

    assert paths(errors(definition, project_id=project.pk)) == [
        "definition.match",
        "definition.conditions[1].count",
        "definition.conditions[1].within_days",
        "definition.conditions[2].conditions[0].operator",
        "definition.conditions[2].conditions[1].x",
    ]


@pytest.mark.parametrize("operator", [["equals"], {"equals": True}])
def test_an_operator_that_is_no_text_is_an_error_not_a_crash(project, operator):
    messages = errors(second(prop(operator=operator, value=1)), project_id=project.pk)

    assert paths(messages) == ["definition.conditions[1].operator"]


def test_nesting_deeper_than_five_levels_is_refused(project):
    too_deep = group(group(group(group(group(group(PLAN_IS_PRO))))))

    assert errors(too_deep, project_id=project.pk) == [
        "definition.conditions[0].conditions[0].conditions[0].conditions[0].conditions[0]: "
        "groups nest at most 5 deep"
    ]


# --- Cohort references: project and cycles ----------------------------------------------


def rules_cohort(project, *conditions) -> Cohort:
    return CohortFactory(project=project, kind=Cohort.Kind.RULES, definition=group(*(conditions or [PLAN_IS_PRO])))


def refers_to(cohort: Cohort, *, member: bool = True) -> dict:
    return {"type": "cohort", "cohort_id": cohort.pk, "in": member}


def test_references_within_the_project_are_valid(project):
    static = CohortFactory(project=project)
    rules = rules_cohort(project)

    validate_definition(group(refers_to(static), refers_to(rules, member=False)), project_id=project.pk)


def test_a_cohort_of_another_project_is_refused(project):
    foreign = CohortFactory(project=ProjectFactory())

    assert errors(second(refers_to(foreign)), project_id=project.pk) == [
        f"definition.conditions[1].cohort_id: no cohort {foreign.pk} in this project"
    ]


def test_a_cohort_referring_to_itself_is_refused(project):
    cohort = rules_cohort(project)

    messages = errors(second(refers_to(cohort)), project_id=project.pk, cohort_id=cohort.pk)
    assert paths(messages) == ["definition.conditions[1].cohort_id"]
    assert "cycle" in messages[0]


def test_a_two_cohort_cycle_is_refused(project):
    b = rules_cohort(project)
    a = rules_cohort(project, refers_to(b))

    messages = errors(group(group(PLAN_IS_PRO, refers_to(a, member=False), match="any")),
                      project_id=project.pk, cohort_id=b.pk)
    assert messages == [
        f"definition.conditions[0].conditions[1].cohort_id: cohort {a.pk} refers back to this cohort (a cycle)"
    ]


def test_a_three_cohort_cycle_is_refused(project):
    c = rules_cohort(project)
    b = rules_cohort(project, refers_to(c))
    a = rules_cohort(project, PLAN_IS_PRO, group(refers_to(b), match="any"))

    assert paths(errors(second(refers_to(a)), project_id=project.pk, cohort_id=c.pk)) == [
        "definition.conditions[1].cohort_id"
    ]


def test_shared_references_are_no_cycle(project):
    # A diamond: d refers to b and c, which both refer to a.
    a = rules_cohort(project)
    b = rules_cohort(project, refers_to(a))
    c = rules_cohort(project, refers_to(a, member=False))
    d = rules_cohort(project, refers_to(b), refers_to(c))

    validate_definition(group(refers_to(b), refers_to(c)), project_id=project.pk, cohort_id=d.pk)


def test_full_clean_refuses_a_cycle_on_save(project):
    b = rules_cohort(project)
    a = rules_cohort(project, refers_to(b))
    a.full_clean()  # a -> b is fine

    b.definition = second(refers_to(a))
    with pytest.raises(ValidationError) as raised:
        b.full_clean()
    assert paths(raised.value.message_dict["definition"]) == ["definition.conditions[1].cohort_id"]


def test_full_clean_refuses_a_self_reference(project):
    cohort = rules_cohort(project)
    cohort.definition = group(refers_to(cohort))

    with pytest.raises(ValidationError) as raised:
        cohort.full_clean()
    assert paths(raised.value.message_dict["definition"]) == ["definition.conditions[0].cohort_id"]


def test_full_clean_checks_a_new_rule_cohort(project):
    cohort = Cohort(project=project, name="Players", kind=Cohort.Kind.RULES,
                    definition=group(event(within_days=91)))

    with pytest.raises(ValidationError) as raised:
        cohort.full_clean()
    assert paths(raised.value.message_dict["definition"]) == ["definition.conditions[0].within_days"]


def test_full_clean_refuses_a_definition_on_a_static_cohort(project):
    cohort = Cohort(project=project, name="List", kind=Cohort.Kind.STATIC, definition=group(PLAN_IS_PRO))

    with pytest.raises(ValidationError) as raised:
        cohort.full_clean()
    assert "definition" in raised.value.message_dict
