"""The `template` payload format's sandbox (integrations/templating.py): escapes refused,
runaway templates stopped, errors with their line, and the Amplitude presets rendering
valid JSON for every kind of page."""

import json
import time

import pytest
from django.core.exceptions import ValidationError

from integrations import templating
from integrations.payloads import (
    SAMPLE_ROWS,
    MemberRow,
    PageContext,
    amplitude_input,
    amplitude_page,
    sample_context,
    template_input,
    template_samples,
)
from integrations.templating import PRESETS, PayloadTemplateError, compile_template, render_template, validate_template

SAMPLE_INPUT = template_input(sample_context(), SAMPLE_ROWS, ("plan", "score", "email"))


def render(source: str, payload_input: dict = SAMPLE_INPUT) -> str:
    return render_template(compile_template(source), payload_input)


def refusal(source: str, payload_input: dict = SAMPLE_INPUT) -> PayloadTemplateError:
    """The error that compiling or rendering this template raises (it must raise one)."""
    with pytest.raises(PayloadTemplateError) as caught:
        render(source, payload_input)
    return caught.value


# --- Attribute escapes ----------------------------------------------------------------


@pytest.mark.parametrize("source", [
    "{{ input.__class__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ().__class__.__base__.__subclasses__() }}",
    "{{ input.users.__class__.__subclasses__() }}",
    "{{ ''.__class__.mro()[1].__subclasses__() }}",
    "{{ input.mro() }}",
    "{{ range.__globals__ }}",
    "{{ input.get.__globals__ }}",
    "{{ input.items.__self__.__init__.__globals__ }}",
    "{{ self.__init__.__globals__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ self._TemplateReference__context.cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ config }}",
    "{{ config.__class__.__init__.__globals__['os'] }}",
    "{{ lipsum.__globals__ }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ namespace }}",
    "{{ input['__class__'] }}",
    "{{ input|attr('__class__') }}",
    "{% for u in input.users %}{{ loop.cycle.__globals__ }}{% endfor %}",
    "{{ '{0.__class__}'.format(input) }}",
    "{{ input.update({'cohort_name': 'x'}) }}",
    "{{ input.users.append(1) }}",
])
def test_attribute_escapes_are_refused(source):
    error = refusal(source)
    assert error.line == 1
    assert "Lovelace" not in str(error) and "<module" not in str(error)


def test_self_gives_nothing_away():
    # `self` is Jinja's reference to the template's blocks; blocks are refused, so it is empty.
    assert render("{{ self }}") == "<TemplateReference None>"


# --- Things a payload template may not do -----------------------------------------------


@pytest.mark.parametrize(("source", "reason"), [
    ("{% macro m() %}x{% endmacro %}{{ m() }}", "{% macro %} is not allowed"),
    ("{% call foo() %}x{% endcall %}", "{% call %} is not allowed"),
    ("{% set x = 1 %}{{ x }}", "{% set %} is not allowed"),
    ("{% set x %}block{% endset %}{{ x }}", "{% set %} is not allowed"),
    ("{% with x = 1 %}{{ x }}{% endwith %}", "{% with %} is not allowed"),
    ("{% include 'other.json' %}", "{% include %} is not allowed"),
    ("{% import 'macros' as m %}", "{% import %} is not allowed"),
    ("{% from 'macros' import m %}", "{% from %} is not allowed"),
    ("{% extends 'base' %}", "{% extends %} is not allowed"),
    ("{% block body %}{% endblock %}", "{% block %} is not allowed"),
    ("{% filter upper %}x{% endfilter %}", "{% filter %} is not allowed"),
    ("{% for u in input.users recursive %}{{ loop(u) }}{% endfor %}", "recursive loops are not allowed"),
])
def test_statements_that_could_reach_out_or_run_away_are_refused(source, reason):
    error = refusal(source)
    assert reason in error.message
    assert error.line == 1


@pytest.mark.parametrize("name", ["attr", "map", "select", "format", "xmlattr", "indent", "center", "wordwrap",
                                  "urlize", "pprint", "random", "nosuch"])
def test_unknown_and_unlisted_filters_are_refused_with_their_line(name):
    error = refusal('{\n\n  "a": {{ input.cohort_name | ' + name + " }}\n}")
    assert error.message == f"unknown or disallowed filter {name!r}"
    assert error.line == 3


def test_loops_nest_at_most_two_deep():
    two = "{% for a in input.users %}{% for b in input.users %}.{% endfor %}{% endfor %}"
    assert render(two) == "...."
    three = ("{% for a in input.users %}\n{% for b in input.users %}\n"
             "{% for c in input.users %}.{% endfor %}{% endfor %}{% endfor %}")
    error = refusal(three)
    assert error.message == "loops may nest at most 2 deep"
    assert error.line == 3


@pytest.mark.parametrize(("source", "reason"), [
    ("{% for i in range(10**9) %}x{% endfor %}", "the ** operator is not allowed"),
    ("{% for i in range(1000000000) %}x{% endfor %}", "range() is limited to 1000 items"),
    ("{% for i in range(0, 1000000000, 2) %}x{% endfor %}", "range() is limited to 1000 items"),
    ("{{ 'x' * 10**9 }}", "the ** operator is not allowed"),
    ("{{ 'x' * 1000000000 }}", "repetition is limited to 10000 characters or items"),
    ("{{ 1000000000 * 'x' }}", "repetition is limited to 10000 characters or items"),
    ("{{ input.users * 100000 }}", "repetition is limited to 10000 characters or items"),
    ("{{ 2 ** 100000 }}", "the ** operator is not allowed"),
    ("{{ ('x' * 10000) | replace('x', 'x' * 10000) }}", "replace() may not grow a value past 10000 characters"),
    ("{{ 'xxxxxxxxxx' " + "| replace('x', 'xxxxxxxxxx') " * 4 + "}}",
     "replace() may not grow a value past 10000 characters"),
    ("{{ 'ab' | replace('', 'x' * 9999) }}", "replace() may not grow a value past 10000 characters"),
])
def test_huge_loops_and_growth_are_refused(source, reason):
    assert reason in refusal(source).message


@pytest.mark.parametrize("source", [
    # Methods that pad or rebuild text are not callable at all.
    "{{ 'x'.ljust(100000000) }}",
    "{{ 'x'.rjust(100000000) }}",
    "{{ 'x'.center(100000000) }}",
    "{{ '1'.zfill(100000000) }}",
    "{{ '\t'.expandtabs(100000000) }}",
    "{{ ('x' * 10000).replace('x', 'x' * 10000) }}",
    "{{ ('x' * 10000).join('y' * 10000) }}",
    "{{ '{:>100000000}'.format('x') }}",
    "{{ '{a:>100000000}'.format_map({'a': 'x'}) }}",
    "{{ (1).to_bytes(100000000, 'big') }}",
    "{{ '%100000000s' % 'x' }}",
    "{{ '%0100000000d' % 1 }}",
    # Repetition, joins and serialisation are charged to the render's budget before they build.
    "{{ (['x' * 10000] * 10000) | join }}",
    "{{ ('x' * 10000) | list | join('y' * 10000) }}",
    "{{ ([[1] * 10000] * 10000) | json }}",
    "{{ ([[1] * 10000] * 10000) | tojson }}",
    "{{ [[1] * 1000] | tojson(indent=100000) }}",
    "{{ ([[1] * 10000] * 10000) | sum(start=[]) }}",
    "{{ (['x' * 10000] * 10000) | string }}",
    "{{ ['x' * 10000] * 10000 }}",
    "{{ (['x' * 10000] * 10000) ~ '' }}",
    "{{ ['x' * 10000] * 5000 + ['x' * 10000] * 5000 }}",
])
def test_ways_to_build_enormous_values_are_refused_before_they_build(source):
    started = time.monotonic()
    refusal(source)
    assert time.monotonic() - started < 10  # building any of them takes minutes and gigabytes


def test_a_template_may_build_at_most_the_budget_of_text(monkeypatch):
    monkeypatch.setattr(templating, "MAX_BUILT_CHARS", 100_000)
    # Each line builds 40,000 characters: two repetitions, then the `~` of both. Two lines fit.
    lines = ["{{ (('x' * 10000) ~ ('y' * 10000)) | length }}"] * 3
    error = refusal("\n".join(lines))
    assert error.message == "the template builds more than 100000 characters of text"
    assert error.line == 3
    assert render("\n".join(lines[:2])) == "20000\n20000"


def test_the_output_is_capped(monkeypatch):
    monkeypatch.setattr(templating, "MAX_OUTPUT_CHARS", 1000)
    assert len(render("{% for i in range(100) %}0123456789{% endfor %}")) == 1000
    error = refusal("{% for i in range(101) %}0123456789{% endfor %}")
    assert error.message == "the output is larger than 1000 characters"


def test_enormous_output_is_stopped_at_the_real_cap():
    started = time.monotonic()
    error = refusal("{% for a in range(1000) %}{% for b in range(1000) %}{{ 'x' * 9000 }}{% endfor %}{% endfor %}")
    assert error.message == f"the output is larger than {templating.MAX_OUTPUT_CHARS} characters"
    assert time.monotonic() - started < 10  # the whole output would take minutes


@pytest.mark.parametrize("source", [
    "{% for a in range(1000) %}{% for b in range(1000) %}{{ a }}{% endfor %}{% endfor %}",
    # Nothing is output, so only the check on each iteration can stop these.
    "{% for a in range(1000) %}\n{% for b in range(1000) %}{% endfor %}{% endfor %}",
    "{% for a in range(1000) %}\n{% for b in range(1000) if a < 0 %}x{% endfor %}{% endfor %}",
])
def test_render_time_is_capped(monkeypatch, source):
    monkeypatch.setattr(templating, "MAX_RENDER_SECONDS", 0.05)
    started = time.monotonic()
    error = refusal(source)
    assert time.monotonic() - started < 5  # a million iterations take far longer
    assert error.message == "rendering took longer than 0.05 s"


def test_a_loop_filter_keeps_its_meaning():
    assert render("{% for u in input.users if u.user_id == 'user-2' %}{{ u.user_id }}{% endfor %}") == "user-2"


def test_harmless_methods_and_filters_still_work():
    source = (
        "{{ input.cohort_name.upper() }}|{{ input.cohort_name | lower }}|{{ input.users | join(',', attribute='user_id') }}"
        "|{% for key, value in input.users[0].user_properties | dictsort %}{{ key }}={{ value }};{% endfor %}"
        "|{{ input.users | length }}|{{ range(5) | sum }}|{{ input.cohort_name.split(' ') | first }}"
        "|{{ input.missing | default('none') }}|{{ 'ab' ~ 1 ~ none }}|{{ [1, 2] + [3] }}|{{ 7 % 3 }}"
    )
    assert render(source) == (
        "PRO USERS|pro users|user-1,user-2|email=ada@example.com;plan=pro;score=42;|2|10|Pro"
        "|none|ab1None|[1, 2, 3]|1"
    )


def test_sum_adds_numbers_only():
    assert "sum() adds numbers only" in refusal("{{ [[1], [2]] | sum(start=[]) }}").message


def test_text_that_is_not_valid_utf8_is_refused():
    error = refusal('{"a": "{{ "\\ud800" }}"}')
    assert error.message.startswith("the output is not valid text")


# --- Errors name their line -------------------------------------------------------------


def test_undefined_values_are_errors_with_the_line():
    error = refusal('{\n  "name": {{ input.cohort_name | json }},\n  "x": {{ input.nope | json }}\n}')
    assert error.line == 3
    assert "has no attribute 'nope'" in error.message
    assert str(error).startswith("line 3: ")

    error = refusal("{% for user in input.users %}\n\n\n\n{{ user.user_properties.country }}{% endfor %}")
    assert error.line == 5
    assert "has no attribute 'country'" in error.message

    error = refusal('[\n{{ [input.cohort_id, input.nope] | json }}]')
    assert error.line == 2
    assert "has no attribute 'nope'" in error.message


def test_syntax_errors_name_their_line():
    error = refusal('{\n  "a": {{ input.cohort_name \n}')
    assert error.line == 3
    error = refusal("[\n{% for user in input.users %}\n{{ user.user_id }}\n]")
    assert error.line is not None and "endfor" in error.message


def test_an_overlong_template_is_refused():
    assert "longer than 20000 characters" in refusal(" " * 20_001).message


def test_validate_template_reports_the_line_of_a_failure():
    with pytest.raises(ValidationError) as caught:
        validate_template('{\n  "a": 1,\n  "b": {{ input.nope }}\n}', content_type="application/json",
                          sample_inputs=[("the sample page", SAMPLE_INPUT)])
    (message,) = caught.value.message_dict["body_template"]
    assert message.startswith("line 3: ")


@pytest.mark.parametrize(("source", "line"), [
    ('{"name": {{ input.cohort_name }}}', 1),  # unquoted text
    ('{\n  "a": 1,\n  "b": [{% for u in input.users %}{{ u.user_id | json }},{% endfor %}]\n}', 3),  # trailing comma
    ('{"a": 1}\n{"b": 2}', 2),
])
def test_validate_template_refuses_output_that_is_not_json(source, line):
    with pytest.raises(ValidationError) as caught:
        validate_template(source, content_type="application/json; charset=utf-8", sample_inputs=[("the sample page", SAMPLE_INPUT)])
    (message,) = caught.value.message_dict["body_template"]
    assert message.startswith(f"the rendered sample is not valid JSON (output line {line}: ")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-ndjson", "application/x-www-form-urlencoded"])
def test_validate_template_accepts_other_text_for_other_content_types(content_type):
    validate_template("{% for u in input.users %}{{ u.user_id | json }}\n{% endfor %}", content_type=content_type,
                      sample_inputs=[("the sample page", SAMPLE_INPUT)])


@pytest.mark.parametrize("content_type", ["application/json", "application/vnd.receiver+json", "Application/JSON"])
def test_validate_template_checks_every_json_content_type(content_type):
    with pytest.raises(ValidationError):
        validate_template("not json", content_type=content_type, sample_inputs=[("the sample page", SAMPLE_INPUT)])


# --- What saves does not raise at send ---------------------------------------------------

EDGE_SAMPLES = template_samples(page_size=1000)


@pytest.mark.parametrize(("source", "message"), [
    pytest.param("{{ " + "[" * 300 + "1" + "]" * 300 + " }}", "the template nests more than 40 levels deep",
                 id="deep-lists"),
    pytest.param("{% if 1 %}" * 300 + "x" + "{% endif %}" * 300, "the template nests more than 40 levels deep",
                 id="deep-ifs"),
    pytest.param("{{ " + "9" * 5000 + " }}", "a number in the template is too large", id="5000-digit-literal"),
    pytest.param("{{ " + "9" * 100 + " }}", "line 1: a number in the template is larger than 256 bits",
                 id="100-digit-literal"),
    pytest.param("{{ input.cohort_name | truncate(3, end='.....') }}",
                 "line 1: truncate(): the end text (5 characters) is longer than the length (3)", id="truncate-const"),
    pytest.param("{{ input.cohort_name | truncate(2) }}",
                 "line 1: truncate(): the end text (3 characters) is longer than the length (2)",
                 id="truncate-default-end"),
])
def test_templates_that_would_raise_at_send_are_refused_at_compile(source, message):
    with pytest.raises(PayloadTemplateError) as caught:
        compile_template(source)
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(("source", "message"), [
    pytest.param("{{ input.cohort_name | truncate(input.page_count, end='.....') }}",
                 "line 1: truncate(): the end text (5 characters) is longer than the length (1)", id="truncate-runtime"),
    pytest.param("{{ input.users | dictsort }}", "line 1: dictsort sorts an object's items, not list values",
                 id="dictsort-list"),
    pytest.param("{{ input.total_pages * 99999999999999999999 * 99999999999999999999 * 99999999999999999999 * "
                 "99999999999999999999 * 99999999999999999999 * 99999999999999999999 * 99999999999999999999 * "
                 "99999999999999999999 * 99999999999999999999 * 99999999999999999999 }}",
                 "line 1: the product is too large (numbers are limited to 256 bits)", id="huge-product"),
    pytest.param("{{ input.users | sum }}", "line 1: sum() adds numbers only", id="sum-of-objects"),
])
def test_whatever_a_template_raises_while_rendering_is_a_template_error(source, message):
    assert str(refusal(source)) == message


@pytest.mark.parametrize(("source", "message"), [
    pytest.param('{"first": {{ input.users[0].user_id | json }}}', "on an empty page: line 1: ", id="users[0]"),
    pytest.param('{"ids": {{ input.users | map(attribute="user_id") | list | json }}}', "line 1: ", id="map"),
    pytest.param("{% for u in input.users[:1] %}{{ u.user_id | json }}{% endfor %}",
                 "the rendered sample of an empty page is not valid JSON", id="empty-output"),
    pytest.param('{"x": {{ input.users[1].user_id | json }}}', "on an empty page: ", id="users[1]"),
])
def test_validation_renders_the_edge_pages_too(source, message):
    with pytest.raises(ValidationError) as caught:
        validate_template(source, content_type="application/json", sample_inputs=EDGE_SAMPLES)
    (found,) = caught.value.message_dict["body_template"]
    assert found.startswith(message)


def test_the_edge_samples_are_an_empty_page_one_member_and_a_full_page():
    assert [(name, len(sample["users"])) for name, sample in EDGE_SAMPLES] == [
        ("the sample page", 2), ("an empty page", 0), ("a page of one member", 1),
        ("a full page (1000 members)", 1000)]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_the_presets_pass_every_edge_sample(name):
    validate_template(PRESETS[name], content_type="application/json", sample_inputs=EDGE_SAMPLES)


# --- The presets ----------------------------------------------------------------------

TRICKY = 'quote " backslash \\ newline \n tab \t nul \x00 unicode é 漢字 😀 \u2028 </script> {{ x }} ${x}'


def tricky_rows(count: int) -> list[MemberRow]:
    properties = {"plan": "pro", "note": TRICKY, "score": 4.5, "vip": True, "tags": ["a", TRICKY], "none": None,
                  "nested": {"k": TRICKY}}
    return [
        MemberRow(f'user-{n} "{TRICKY}"', f"u{n}@example.com", "Ada", "Lovelace", "", json.dumps(properties))
        for n in range(count)
    ]


def tricky_context(action: str) -> PageContext:
    return PageContext(
        action=action, project_id="7", cohort_id="42", cohort_name=f"VIPs {TRICKY}", cohort_description=TRICKY,
        session_id="6f1c1f0e-7d4f-4e59-9a55-3d6c0b0c2d8e", page_id="1b4e28ba-2fa1-5d2e-883f-0016d3cca427",
        page_count=1, total_pages=1, computed_time=1767225600,
    )


PROPERTIES = ("plan", "note", "score", "vip", "tags", "none", "nested", "email", "absent")
PAGES = [(action, users) for action in ("members", "add_members", "remove_members") for users in (0, 1, 25)]


@pytest.mark.parametrize(("action", "users"), PAGES)
def test_user_ids_preset_renders_the_amplitude_body_without_properties(action, users):
    context, rows = tricky_context(action), tricky_rows(users)
    body = json.loads(render(PRESETS["amplitude_user_ids"], template_input(context, rows, PROPERTIES)))
    expected = amplitude_input(context, rows, PROPERTIES)
    expected["users"] = [{"user_id": user["user_id"]} for user in expected["users"]]
    assert body == expected
    assert body["in_cohort"] is (action != "remove_members")
    assert body["computed_time"] == "1767225600"


@pytest.mark.parametrize(("action", "users"), PAGES)
def test_user_properties_preset_renders_exactly_the_amplitude_format(action, users):
    context, rows = tricky_context(action), tricky_rows(users)
    body = json.loads(render(PRESETS["amplitude_user_properties"], template_input(context, rows, PROPERTIES)))
    assert body == json.loads(amplitude_page(context, rows, PROPERTIES))
    if users:
        assert body["users"][0]["user_properties"]["note"] == TRICKY
        assert set(body["users"][0]["user_properties"]) == {"plan", "note", "score", "vip", "tags", "none", "nested",
                                                             "email"}


@pytest.mark.parametrize(("action", "users"), PAGES)
def test_per_user_preset_renders_one_object_a_user(action, users):
    context, rows = tricky_context(action), tricky_rows(users)
    body = json.loads(render(PRESETS["amplitude_per_user"], template_input(context, rows, PROPERTIES)))
    key = f"amplitude_{context.cohort_name}_{context.cohort_id}"
    assert body == [{"user_id": row.distinct_id, key: action != "remove_members"} for row in rows]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_pass_validation_with_a_json_content_type(name):
    validate_template(PRESETS[name], content_type="application/json", sample_inputs=[("the sample page", SAMPLE_INPUT)])


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_render_a_full_page_of_1000_users_with_50_properties_quickly(name):
    properties = {f"p{i}": f'value {i} "é" \\ {i * 1000}' for i in range(50)}
    rows = [MemberRow(f"user-{n}", f"u{n}@example.com", "", "", "", json.dumps(properties)) for n in range(1000)]
    context = tricky_context("members")
    # Rendering past MAX_RENDER_SECONDS would raise: a full page must render within it.
    body = json.loads(render(PRESETS[name], template_input(context, rows, tuple(properties))))
    assert len(body if isinstance(body, list) else body["users"]) == 1000
