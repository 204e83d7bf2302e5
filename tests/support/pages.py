"""What the status pages' tests share: a member of a project, logged in, and the objects and
URLs of the pages (tests/pages, tests/deliveries, tests/campaigns, tests/cohorts)."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from alerts.models import AlertFiring
from campaigns.models import Message
from campaigns.services import message_create
from deliveries.models import Sync
from tests.factories import CohortFactory, ConnectionFactory, ProjectFactory, SyncFactory, UserFactory


@pytest.fixture
def member():
    return UserFactory(username="ada")


@pytest.fixture
def project(member):
    project = ProjectFactory(name="Growth")
    project.members.add(member)
    return project


@pytest.fixture
def member_client(client, member):
    client.force_login(member)
    return client


def sync_in(project, **fields) -> Sync:
    return SyncFactory(cohort__project=project, **fields)


def sync_url(sync, action: str = "") -> str:
    return reverse(f"deliveries:sync_{action or 'detail'}", kwargs={"sync_id": sync.pk})


def message_in(project, *, url: str = "http://127.0.0.1:9/hook", name: str = "Win back", **fields) -> Message:
    cohort = CohortFactory(project=project, name=fields.pop("cohort_name", "Lapsed buyers"))
    connection = ConnectionFactory(project=project, name="CRM form hook", url=url)
    return message_create(cohort=cohort, connection=connection, name=name, **fields)


def message_url(message, action: str = "") -> str:
    return reverse(f"campaigns:message_{action or 'detail'}", kwargs={"message_id": message.pk})


def cohort_url(cohort) -> str:
    return reverse("cohorts:cohort_detail", kwargs={"cohort_id": cohort.pk})


def fire(alert, sentence: str, minutes_ago: int = 0, **fields) -> AlertFiring:
    return AlertFiring.objects.create(alert=alert, sentence=sentence, current_value=fields.pop("current_value", 1),
                                      fired_at=timezone.now() - timedelta(minutes=minutes_ago), payload={}, **fields)

