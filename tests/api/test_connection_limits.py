"""connections/: the per-receiver limits (outbound.limits) set, changed, cleared and refused with a 400;
and the admin's form shows them."""

import pytest
from django.test import Client
from django.urls import reverse

from integrations.models import Connection
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/connections/"


def test_limits_are_set_changed_and_cleared(api):
    response = api.post(URL, {"name": "CRM", "url": "https://crm.example.com/hook", "max_requests_per_second": 2.5,
                              "max_concurrent_runs": 2}, format="json")
    assert response.status_code == 201, response.json()
    assert (response.json()["max_requests_per_second"], response.json()["max_concurrent_runs"]) == (2.5, 2)
    url = f"{URL}{response.json()['id']}/"
    changed = api.patch(url, {"max_requests_per_second": None, "max_concurrent_runs": 1}, format="json").json()
    assert (changed["max_requests_per_second"], changed["max_concurrent_runs"]) == (None, 1)
    connection = Connection.objects.get(pk=changed["id"])
    assert (connection.max_requests_per_second, connection.max_concurrent_runs) == (None, 1)


@pytest.mark.parametrize("payload, field", [
    ({"max_requests_per_second": 0}, "max_requests_per_second"),
    ({"max_requests_per_second": "fast"}, "max_requests_per_second"),
    ({"max_concurrent_runs": 0}, "max_concurrent_runs"),
    ({"max_concurrent_runs": 100_000}, "max_concurrent_runs"),
])
def test_bad_limits_are_400s_naming_the_field(api, payload, field):
    response = api.post(URL, {"name": "CRM", "url": "https://crm.example.com/hook", **payload}, format="json")
    assert response.status_code == 400 and field in response.content.decode()


def test_the_admin_form_has_the_limits(api):
    connection = Connection.objects.create(project=api.project, name="CRM", url="https://crm.example.com/hook")
    client = Client()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    page = client.get(reverse("admin:integrations_connection_change", args=[connection.pk])).content.decode()
    assert 'name="max_requests_per_second"' in page and 'name="max_concurrent_runs"' in page
