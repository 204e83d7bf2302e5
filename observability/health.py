"""/healthz for load balancers and orchestrators (django-health-check): the database, the
broker, and beat's last dispatch. 200 when all pass, 503 with each check's answer as JSON."""

import dataclasses
from datetime import timedelta

from asgiref.sync import sync_to_async
from django.conf import settings
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from health_check.base import HealthCheck
from health_check.exceptions import ServiceUnavailable
from health_check.views import HealthCheckView

from . import selectors

DISPATCH_TASK = "deliveries.dispatch_due_syncs"


@dataclasses.dataclass
class Broker(HealthCheck):
    """The Celery broker accepts a connection (no URL in the answer: it may hold a password)."""

    def run(self) -> None:
        if selectors.broker_queue_depths() is None:
            raise ServiceUnavailable("the broker does not answer")


@dataclasses.dataclass
class BeatDispatch(HealthCheck):
    """Beat enqueued the due-sync dispatcher recently (its PeriodicTask.last_run_at).

    django-celery-beat writes last_run_at back every few minutes, so the allowed age
    (COHORTSYNC_HEALTH_BEAT_MAX_AGE_SECONDS) must exceed the dispatch interval plus that.
    """

    async def run(self) -> None:
        # In the request's thread: the ORM connection (and, in tests, its transaction) is that one.
        await sync_to_async(self._check)()

    def _check(self) -> None:
        task = (PeriodicTask.objects.filter(task=DISPATCH_TASK, enabled=True)
                .order_by("-last_run_at").values("last_run_at").first())
        if task is None:
            raise ServiceUnavailable("no enabled schedule for the sync dispatcher")
        if task["last_run_at"] is None:
            raise ServiceUnavailable("beat has never dispatched")
        age = timezone.now() - task["last_run_at"]
        if age > timedelta(seconds=settings.COHORTSYNC_HEALTH_BEAT_MAX_AGE_SECONDS):
            raise ServiceUnavailable(f"beat last dispatched {int(age.total_seconds())} s ago")


class HealthzView(HealthCheckView):
    checks = ("health_check.checks.Database", Broker, BeatDispatch)

    def render_to_response(self, context, **response_kwargs):
        # Probes send `Accept: */*`: they get JSON, not the library's HTML page.
        return self.render_to_response_json(response_kwargs.get("status", 200))

    def render_to_response_json(self, status):
        response = super().render_to_response_json(status)
        if response.status_code >= 500:
            response.status_code = 503  # unavailable: take this instance out of rotation
        return response
