import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from cohorts import demo
from cohorts.models import Cohort, CohortMember, Project
from deliveries import services as delivery_services
from deliveries.models import Sync
from integrations import services as integration_services
from integrations.models import Connection

PROJECT_NAME = "Demo project"
COHORT_NAME = "Demo cohort"
CONNECTION_NAME = "Demo receiver"
ADMIN_USERNAME = "admin"


def builtin_receiver_url() -> str:
    return f"{settings.COHORTSYNC_BASE_URL.rstrip('/')}/receiver/demo/"


class Command(BaseCommand):
    help = "Create or update the demo project, cohort, connection and dynamic sync; print their ids."

    def add_arguments(self, parser):
        parser.add_argument("--members", type=int, default=None, help="demo cohort size (default 25 when new)")
        parser.add_argument("--url", default=None, help="webhook URL (default: the built-in test receiver)")
        parser.add_argument(
            "--churn", type=float, default=0.0, metavar="PCT",
            help="swap PCT %% of the cohort's members: that many (rounded to the nearest whole member, "
                 "halves up, at least one) removed at random and as many new ones added",
        )

    @transaction.atomic  # a refused URL must not leave an admin whose password was never shown
    def handle(self, *args, members: int | None, url: str | None, churn: float, **options):
        if members is not None and members < 0:
            raise CommandError("--members must be zero or more.")
        if not 0 <= churn <= 100:
            raise CommandError("--churn is a percentage between 0 and 100.")
        admin, password = self._admin()
        project, _ = Project.objects.get_or_create(name=PROJECT_NAME)
        project.members.add(admin)
        try:
            connection = self._connection(project, url)
        except ValidationError as exc:
            hint = "" if settings.COHORTSYNC_ALLOW_PRIVATE_URLS else (
                " (loopback and private addresses need COHORTSYNC_ALLOW_PRIVATE_URLS=true)"
            )
            raise CommandError(f"Invalid URL {url or builtin_receiver_url()!r}: {'; '.join(exc.messages)}{hint}") from exc
        cohort, created = Cohort.objects.get_or_create(
            project=project, name=COHORT_NAME, defaults={"description": "Generated people for the demo"}
        )
        self._size_cohort(cohort, members if members is not None else (25 if created else None))
        if churn:
            before = CohortMember.objects.filter(cohort=cohort).count()
            removed, added = demo.demo_cohort_churn(cohort=cohort, percent=churn)
            self.stdout.write(f"Churn: swapped {churn:g} % of {before} members ({before * churn / 100:g}, "
                              f"rounded to {removed}): removed {removed}, added {added} new ones.")
        sync = Sync.objects.filter(cohort=cohort, connection=connection).first()
        if sync is None:
            sync = delivery_services.sync_create(cohort=cohort, connection=connection, created_by=admin)

        size = CohortMember.objects.filter(cohort=cohort).count()
        self.stdout.write(self.style.SUCCESS("Demo ready."))
        self.stdout.write(f"project id:    {project.pk}")
        self.stdout.write(f"cohort id:     {cohort.pk} ({size} members)")
        self.stdout.write(f"connection id: {connection.pk} → {connection.url}")
        self.stdout.write(f"sync id:       {sync.pk} ({sync.get_mode_display()}, every {sync.interval_minutes} min, {sync.state})")
        if password:
            self.stdout.write(f"admin login:   {ADMIN_USERNAME} / {password}  ({settings.COHORTSYNC_BASE_URL}/admin/)")
        else:
            self.stdout.write(f"admin login:   {ADMIN_USERNAME} (exists; password unchanged; to reset it: "
                              f".venv/bin/python manage.py changepassword {ADMIN_USERNAME})")

    def _admin(self):
        User = get_user_model()
        admin = User.objects.filter(username=ADMIN_USERNAME).first()
        if admin is not None:
            return admin, None
        password = secrets.token_urlsafe(12)
        admin = User.objects.create_superuser(ADMIN_USERNAME, "admin@example.com", password)
        return admin, password

    def _connection(self, project: Project, url: str | None) -> Connection:
        """Created with URL (default: the built-in receiver); later runs change it only when given."""
        connection = Connection.objects.filter(project=project, name=CONNECTION_NAME).first()
        if connection is None:
            return integration_services.connection_create(
                project=project, name=CONNECTION_NAME, url=url or builtin_receiver_url()
            )
        if url and connection.url != url:
            return integration_services.connection_update(connection=connection, url=url)
        return connection

    def _size_cohort(self, cohort: Cohort, size: int | None) -> None:
        if size is None:
            return
        current = CohortMember.objects.filter(cohort=cohort).count()
        if size > current:
            first, last = demo.demo_profiles_create(project=cohort.project, count=size - current)
            demo.demo_cohort_fill(cohort=cohort, first=first, last=last)
        elif size < current:
            demo.demo_cohort_trim(cohort=cohort, size=size)
