"""A connection's payload format, template, content type and page size, as Connection.clean()
enforces them for every interface (integrations/models.py, integrations/templating.py)."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from integrations.models import Connection
from integrations.templating import PRESETS
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db


def connection(**fields) -> Connection:
    values = {"project": ProjectFactory(), "name": "Receiver", "url": "https://hooks.example.com/cohorts",
              **fields}
    return Connection(**values)


def errors(**fields) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as caught:
        connection(**fields).full_clean()
    return caught.value.message_dict


@pytest.mark.parametrize("format", ["mixpanel", "amplitude"])
def test_builtin_formats_need_no_template(format):
    connection(format=format).full_clean()


def test_unknown_format_is_refused():
    assert "format" in errors(format="xml")


@pytest.mark.parametrize("template", ["", "   \n\t "])
def test_template_format_without_a_template_is_refused(template):
    assert errors(format="template", body_template=template) == {
        "body_template": ["The custom template format needs a template."]
    }


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_is_a_valid_template(name):
    connection(format="template", body_template=PRESETS[name]).full_clean()


@pytest.mark.parametrize(("template", "message"), [
    ('{\n  "name": {{ input.cohort_name | json }},\n  "id": {{ input.cohort_id | nosuch }}\n}',
     "line 3: unknown or disallowed filter 'nosuch'"),
    ('{\n  "a": 1,\n\n  "b": {{ input.nope | json }}\n}', "line 4: 'dict object' has no attribute 'nope'"),
    ('{\n  "a": {{ input.cohort_name | json }\n}', "line 2: unexpected '}'"),
    ("{\n{% set x = 1 %}\n}", "line 2: {% set %} is not allowed in payload templates"),
    ('{"a": {{ input.__class__ }}}', "line 1: access to attribute '__class__' of 'dict' object is unsafe."),
    ('{"a": {{ input.users | dictsort }}}', "line 1: dictsort sorts an object's items, not list values"),
    ('{"a": {{ input.users[0].user_id | json }}}', "on an empty page: line 1: list object has no element 0"),
])
def test_an_invalid_template_is_refused_with_its_line(template, message):
    assert errors(format="template", body_template=template) == {"body_template": [message]}


def test_output_that_is_not_json_is_refused_for_a_json_content_type():
    (message,) = errors(format="template", body_template='{"name": {{ input.cohort_name }}}')["body_template"]
    assert message.startswith("the rendered sample is not valid JSON (output line 1: ")


@pytest.mark.parametrize(("content_type", "template"), [
    ("text/plain", "cohort {{ input.cohort_name }}: {{ input.users | length }} users"),
    ("text/csv", "user_id\n{% for user in input.users %}{{ user.user_id }}\n{% endfor %}"),
    ("application/x-ndjson", "{% for user in input.users %}{{ {'id': user.user_id} | json }}\n{% endfor %}"),
])
def test_output_that_is_not_json_is_allowed_for_other_content_types(content_type, template):
    connection(format="template", body_template=template, content_type=content_type).full_clean()


def test_a_template_is_checked_against_the_content_type_it_is_saved_with():
    saved = connection(format="template", body_template="plain {{ input.cohort_id }}", content_type="text/plain")
    saved.full_clean()
    saved.content_type = "application/json"
    with pytest.raises(ValidationError) as caught:
        saved.full_clean()
    assert "not valid JSON" in caught.value.message_dict["body_template"][0]


@pytest.mark.parametrize("content_type", ["", "json", "application/", "application json", "text/plain\r\nX-Evil: 1",
                                          "application/json; charset"])
def test_a_bad_content_type_is_refused(content_type):
    assert "content_type" in errors(content_type=content_type)


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8",
                                          "application/vnd.receiver+json", "text/plain"])
def test_good_content_types_are_accepted(content_type):
    connection(content_type=content_type).full_clean()


@pytest.mark.parametrize("page_size", [0, 1001, 5000])
def test_page_size_outside_1_to_1000_is_refused(page_size):
    assert "page_size" in errors(page_size=page_size)


@pytest.mark.parametrize("page_size", [1, 2, 1000])
def test_page_size_within_1_to_1000_is_accepted(page_size):
    connection(page_size=page_size).full_clean()


def test_page_size_defaults_to_1000():
    assert Connection().page_size == 1000


def test_the_database_refuses_a_page_size_outside_the_bounds_too():
    saved = connection()
    saved.save()
    for page_size in (0, 1001):
        with pytest.raises(IntegrityError), transaction.atomic():
            Connection.objects.filter(pk=saved.pk).update(page_size=page_size)
