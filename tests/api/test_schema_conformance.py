"""Schemathesis over the whole generated schema: no 5xx anywhere, every response as documented.

One test per operation, authenticated with an API key of a project that holds a few objects.
"""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings as hypothesis_settings
from schemathesis.checks import negative_data_rejection, positive_data_acceptance

from config.wsgi import application
from tests.api.conftest import key_client
from tests.conftest import set_members
from tests.factories import CohortFactory, ConnectionFactory, SyncFactory, SyncRunFactory

MAX_EXAMPLES = 25  # per operation: the whole run stays well under two minutes on two cores

# Loaded at collection (the schema view touches no database); each call runs inside a test.
schema = schemathesis.openapi.from_wsgi("/api/schema/", application)


@pytest.fixture
def auth_headers(project, receiver, settings):
    settings.COHORTSYNC_API_THROTTLE_RATE = "1000000/min"
    # Some objects for generated ids to find (most ids will be 404s, which the schema documents).
    cohort = CohortFactory(project=project)
    set_members(cohort, ["a", "b", "c"])
    connection = ConnectionFactory(project=project, url=receiver.url())
    SyncRunFactory(sync=SyncFactory(cohort=cohort, connection=connection))
    return {"Authorization": f"Bearer {key_client(project).key}"}


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
    # Not run: whether schema-valid input is always accepted and invalid input always refused.
    # Rules the schema cannot say (ids of this project's objects, URL and header rules, rule
    # definitions) make valid-looking input 400s, and DRF ignores malformed paging parameters.
    case.call_and_validate(headers=auth_headers, excluded_checks=[positive_data_acceptance, negative_data_rejection])
