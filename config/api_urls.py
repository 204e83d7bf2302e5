"""The REST API, version 1 (included under /api/v1/)."""

from rest_framework.routers import DefaultRouter

from alerts.api import AlertFiringViewSet, AlertViewSet
from campaigns.api import MessageRunViewSet, MessageViewSet
from cohorts.api import CohortViewSet, EventViewSet, ProfileViewSet
from deliveries.api import SyncRunViewSet, SyncViewSet
from integrations.api import ConnectionViewSet
from sdk_ingest.api import IngestKeyViewSet

app_name = "api"

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("connections", ConnectionViewSet, basename="connection")
router.register("cohorts", CohortViewSet, basename="cohort")
router.register("syncs", SyncViewSet, basename="sync")
router.register("runs", SyncRunViewSet, basename="run")
router.register("messages", MessageViewSet, basename="message")
router.register("message-runs", MessageRunViewSet, basename="message-run")
router.register("alerts", AlertViewSet, basename="alert")
router.register("alert-firings", AlertFiringViewSet, basename="alert-firing")
router.register("profiles", ProfileViewSet, basename="profile")
router.register("events", EventViewSet, basename="event")
router.register("ingest-keys", IngestKeyViewSet, basename="ingest-key")

urlpatterns = router.urls
