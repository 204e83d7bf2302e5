import uuid

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from cohorts.models import Cohort, CohortMember, Profile, Project
from deliveries.models import Sync, SyncRun
from integrations.models import Connection
from outbound.models import DeliveryAttempt


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    name = factory.Sequence(lambda n: f"Project {n}")


class ProfileFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Profile

    project = factory.SubFactory(ProjectFactory)
    distinct_id = factory.Sequence(lambda n: f"user-{n:06d}")
    email = factory.LazyAttribute(lambda p: f"{p.distinct_id}@example.com")
    first_name = "Ada"
    last_name = "Lovelace"
    phone_number = ""
    properties = factory.LazyFunction(dict)


class CohortFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Cohort

    project = factory.SubFactory(ProjectFactory)
    name = factory.Sequence(lambda n: f"Cohort {n}")
    description = "people for a test"


class CohortMemberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CohortMember

    cohort = factory.SubFactory(CohortFactory)
    profile = factory.SubFactory(ProfileFactory, project=factory.SelfAttribute("..cohort.project"))


class ConnectionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Connection

    project = factory.SubFactory(ProjectFactory)
    name = factory.Sequence(lambda n: f"Connection {n}")
    url = "http://127.0.0.1:9/hook"
    format = Connection.Format.MIXPANEL


class SyncFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Sync

    cohort = factory.SubFactory(CohortFactory)
    connection = factory.SubFactory(ConnectionFactory, project=factory.SelfAttribute("..cohort.project"))
    mode = Sync.Mode.DYNAMIC
    interval_minutes = 30
    created_by = factory.SubFactory(UserFactory)
    next_run_at = factory.LazyFunction(timezone.now)


class SyncRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SyncRun

    sync = factory.SubFactory(SyncFactory)
    kind = SyncRun.Kind.FULL
    reason = "first run"
    trigger = "schedule"
    status = SyncRun.Status.SUCCEEDED
    finished_at = factory.LazyFunction(timezone.now)
    total_pages = 1
    pages_delivered = 1


class DeliveryAttemptFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DeliveryAttempt

    source = factory.SubFactory(SyncRunFactory)
    page_number = 1
    page_id = factory.LazyFunction(uuid.uuid4)
    action = "members"
    attempt_number = 1
    outcome = "success"
    http_status = 200
    latency_ms = 12
