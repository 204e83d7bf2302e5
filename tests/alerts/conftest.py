"""Alerts' fixtures: tasks run in-process, and a second loopback receiver as the notification webhook."""

import pytest

from config import celery_app
from integrations.models import Connection
from tests.factories import CohortFactory, ConnectionFactory, UserFactory
from tests.support.receiver import LoopbackReceiver


@pytest.fixture
def eager_tasks(monkeypatch):
    """`.delay()` runs the task at once (on-commit callbacks still need capturing in a test)."""
    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)
    monkeypatch.setitem(celery_app.conf, "task_eager_propagates", True)


@pytest.fixture
def notifications():
    """The project's notification webhook: where alert payloads arrive."""
    with LoopbackReceiver() as running:
        yield running


@pytest.fixture
def cohort():
    return CohortFactory(name="Pro users", project__name="Acme")


@pytest.fixture
def creator():
    return UserFactory(username="ada", first_name="Ada", last_name="Lovelace", email="ada@example.com")


@pytest.fixture
def make_webhook(notifications):
    def factory(project, **fields) -> Connection:
        fields.setdefault("name", "Ops alerts")
        fields.setdefault("url", notifications.url("/alerts"))
        return ConnectionFactory(project=project, **fields)

    return factory
