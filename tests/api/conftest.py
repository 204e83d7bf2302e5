import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from access.services import api_key_create
from tests.factories import ProjectFactory, UserFactory


@pytest.fixture(autouse=True)
def _fresh_throttle_counts():
    """Throttle counts live in the cache; ids are reused across rolled-back tests."""
    cache.clear()
    yield
    cache.clear()


def key_client(project, **key_fields) -> APIClient:
    """An API client authenticated with a new key of `project` (the key is `client.api_key`)."""
    api_key, key = api_key_create(project=project, name=key_fields.pop("name", "tests"), **key_fields)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    client.api_key, client.key, client.project = api_key, key, project
    return client


@pytest.fixture
def project(db):
    return ProjectFactory(name="Acme")


@pytest.fixture
def other_project(db):
    return ProjectFactory(name="Globex")


@pytest.fixture
def api(project) -> APIClient:
    return key_client(project)


@pytest.fixture
def other_api(other_project) -> APIClient:
    return key_client(other_project)


@pytest.fixture
def session_user(project):
    user = UserFactory(username="ada")
    project.members.add(user)
    return user


@pytest.fixture
def session_api(session_user) -> APIClient:
    client = APIClient()
    client.force_login(session_user)
    return client
