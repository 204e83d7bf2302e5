"""Schemathesis over the whole generated schema, with every check: no 5xx anywhere, every
response as documented, and schema-violating input refused (`negative_data_rejection`).

One test per operation, authenticated with an API key of a project that holds a few objects;
generated path ids are the real ids of those objects about half of the time, so the success
paths are exercised as well as the 404s.

`positive_data_acceptance` (schema-valid input must be accepted) runs too, except for the
operations whose input has rules a JSON schema cannot state; docs/api-conformance.md lists
them and why (SCHEMA_CANNOT_SAY below is that list).
"""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.utils import timezone
from hypothesis import HealthCheck, settings as hypothesis_settings, strategies as st
from schemathesis.checks import negative_data_rejection, positive_data_acceptance
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation import GenerationMode

from alerts.models import Alert, AlertFiring
from campaigns.models import MessageRun
from campaigns.services import message_create
from cohorts.models import Cohort
from config.wsgi import application
from tests.api.conftest import key_client
from tests.conftest import set_members
from tests.factories import CohortFactory, ConnectionFactory, DeliveryAttemptFactory, SyncFactory

MAX_EXAMPLES = 25  # per operation: the whole run stays well under two minutes on two cores
# Schema-valid input these operations refuse with a 400, for rules of the product that a JSON
# schema cannot state (docs/api-conformance.md says which rule, for each).
SCHEMA_CANNOT_SAY = {
    "POST /api/v1/alerts/", "PATCH /api/v1/alerts/{id}/",
    "POST /api/v1/cohorts/", "PATCH /api/v1/cohorts/{id}/", "POST /api/v1/cohorts/preview/",
    "POST /api/v1/cohorts/{id}/members/", "PUT /api/v1/cohorts/{id}/members/",
    "POST /api/v1/cohorts/{id}/members/remove/",
    "POST /api/v1/connections/", "PATCH /api/v1/connections/{id}/",
    "POST /api/v1/messages/", "PATCH /api/v1/messages/{id}/",
    "POST /api/v1/syncs/", "PATCH /api/v1/syncs/{id}/",
    "POST /api/v1/profiles/", "POST /api/v1/events/",
    "GET /api/v1/profiles/{distinct_id}/", "DELETE /api/v1/profiles/{distinct_id}/",
    "POST /api/v1/ingest-keys/",
}
# Segment's and Mixpanel's wire formats (/v1/…, /track, /engage, /groups, /import) answer as those
# vendors do: an item the schema would refuse is refused on its own, inside a 200 that keeps
# the good items, and base64 form bodies are a rule no schema states. Both input checks are
# off there; no server error and documented responses still hold (docs/api-conformance.md).
def _vendor_wire(path: str) -> bool:
    return not path.startswith("/api/")



# Loaded at collection (the schema view touches no database); each call runs inside a test.
schema = schemathesis.openapi.from_wsgi("/api/schema/", application)
# The objects of the running test, by the first word of the path ("cohorts", "syncs", ...).
existing: dict[str, list] = {}


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    resource = context.operation.path.removeprefix("/api/v1/").split("/")[0]
    name = "distinct_id" if resource == "profiles" else "id"
    if not path_parameters or name not in path_parameters or not existing.get(resource):
        return st.just(path_parameters)
    return st.sampled_from([path_parameters[name], *existing[resource]]).map(
        lambda value: {**path_parameters, name: value})


@pytest.fixture
def auth_headers(project, receiver, settings):
    settings.COHORTSYNC_API_THROTTLE_RATE = "1000000/min"
    static = CohortFactory(project=project)
    set_members(static, ["a", "b", "c"])
    rules = CohortFactory(project=project, kind=Cohort.Kind.RULES, definition={"conditions": [
        {"type": "property", "property": "distinct_id", "operator": "in", "value": ["a", "c"]}]})
    connection = ConnectionFactory(project=project, url=receiver.url())
    sync = SyncFactory(cohort=static, connection=connection)
    attempt = DeliveryAttemptFactory(source__sync=sync)
    message = message_create(cohort=static, connection=connection, name="welcome")
    message_run = MessageRun.objects.create(message=message, status=MessageRun.Status.SUCCEEDED)
    alert = Alert.objects.create(project=project, name="big", kind=Alert.Kind.COHORT_SIZE,
                                 operator=Alert.Operator.GREATER_THAN, threshold=2, cohort=static)
    firing = AlertFiring.objects.create(alert=alert, fired_at=timezone.now(), current_value=3, sentence="big",
                                        payload={"event_type": "custom_alert_triggered"})
    existing.update(cohorts=[static.pk, rules.pk], connections=[connection.pk], syncs=[sync.pk],
                    runs=[attempt.source_id], profiles=["a", "b"], messages=[message.pk],
                    **{"message-runs": [message_run.pk], "alerts": [alert.pk], "alert-firings": [firing.pk]})
    yield {"Authorization": f"Bearer {key_client(project).key}"}
    existing.clear()


@pytest.fixture(autouse=True)
def _keep_the_test_transaction():
    """Requests go straight to the WSGI app, inside this test's transaction: keep Django from
    closing "old" connections around each request as it would in a server."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@schema.parametrize()
@hypothesis_settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                            HealthCheck.filter_too_much, HealthCheck.data_too_large])
def test_every_operation_conforms_to_the_schema(case, auth_headers):
    excluded = []
    vendor_wire = _vendor_wire(case.operation.path)
    if vendor_wire or f"{case.operation.method.upper()} {case.operation.path}" in SCHEMA_CANNOT_SAY:
        excluded.append(positive_data_acceptance)
    if vendor_wire or not _still_negative(case):
        excluded.append(negative_data_rejection)
    case.call_and_validate(headers=auth_headers, excluded_checks=excluded)


def _still_negative(case) -> bool:
    """Whether the case is still schema-violating once this test has put its own parts in: the
    API key replaces any generated Authorization header, and the hook above may replace a
    generated path id with a real one. Only the rest can make the API's acceptance wrong."""
    if case.meta is None or case.meta.generation.mode is not GenerationMode.NEGATIVE:
        return False
    negative = {location for location, info in case.meta.components.items()
                if info.mode is GenerationMode.NEGATIVE}
    negative.discard(ParameterLocation.HEADER)  # the only header the API reads is Authorization
    resource = case.operation.path.removeprefix("/api/v1/").split("/")[0]
    if set(map(str, (case.path_parameters or {}).values())) & set(map(str, existing.get(resource, []))):
        negative.discard(ParameterLocation.PATH)
    if ParameterLocation.QUERY in negative and all(value == "" for value in (case.query or {}).values()):
        # `?state=` is "no filter" (DRF reads query parameters as form fields): documented.
        negative.discard(ParameterLocation.QUERY)
    return bool(negative)
