"""A choice the API refuses is answered with the valid choices (cohorts.api_common.ChoiceField), on
every endpoint that takes one."""

import importlib
import inspect

import pytest
from rest_framework import serializers

from cohorts.api_common import ChoiceField
from tests.factories import CohortFactory, ConnectionFactory

pytestmark = pytest.mark.django_db

API_MODULES = ("access.api", "cohorts.api", "integrations.api", "deliveries.api", "campaigns.api", "alerts.api")


@pytest.mark.parametrize("url, fields, field, valid", [
    ("/api/v1/connections/", {"name": "n", "url": "https://example.com/hook"}, "format",
     '"mixpanel", "amplitude", "template"'),
    ("/api/v1/cohorts/", {"name": "n"}, "kind", '"static", "rules"'),
    ("/api/v1/syncs/", {}, "mode", '"one_time", "dynamic"'),
    ("/api/v1/messages/", {"name": "n"}, "schedule", '"asap", "scheduled", "recurring"'),
    ("/api/v1/messages/", {"name": "n"}, "cadence", '"asap", "daily", "weekly", "monthly"'),
    ("/api/v1/alerts/", {"name": "n", "operator": "is"}, "kind", '"cohort_size", '),
    ("/api/v1/alerts/", {"name": "n", "kind": "cohort_size"}, "operator", '"greater_than", '),
])
def test_an_invalid_choice_lists_the_valid_ones(api, url, fields, field, valid):
    cohort = CohortFactory(project=api.project)
    connection = ConnectionFactory(project=api.project)
    body = {"cohort": cohort.pk, "connection": connection.pk, **fields, field: "bogus"}

    response = api.post(url, body, format="json")

    assert response.status_code == 400
    (message,) = response.json()[field]
    assert message.startswith('"bogus" is not a valid choice; valid choices: ')
    assert valid in message


def test_a_filter_with_an_invalid_choice_lists_the_valid_ones(api):
    response = api.get("/api/v1/syncs/?state=gone")

    assert response.status_code == 400
    assert response.json()["state"] == ['"gone" is not a valid choice; valid choices: "active", "paused", "finished".']


def test_every_choice_the_api_accepts_lists_its_choices():
    """A bare DRF ChoiceField would answer only '"x" is not a valid choice.'"""
    bare = [
        f"{module}.{name}.{field_name}"
        for module in API_MODULES
        for name, serializer in inspect.getmembers(importlib.import_module(module), inspect.isclass)
        if issubclass(serializer, serializers.Serializer)
        for field_name, field in getattr(serializer, "_declared_fields", {}).items()
        if isinstance(field, serializers.ChoiceField) and not field.read_only and not isinstance(field, ChoiceField)
    ]
    assert bare == []
