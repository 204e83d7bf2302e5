"""REST API for exports (syncs): create, list, read, delete, run, pause, resume, refresh; run history."""

from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from access.api import MAX_ID, Conflict, ScopedPrimaryKeyRelatedField, acting_person, client_projects
from access.schema import ErrorOutput
from cohorts.models import Cohort
from integrations.models import Connection

from . import policy
from .models import DeliveryAttempt, Sync, SyncRun
from .selectors import sync_list, sync_run_list, sync_run_with_attempts
from .services import sync_create, sync_pause, sync_request_full_refresh, sync_request_run, sync_resume

API_PAUSE_MESSAGE = "paused through the API"
CONFLICT = OpenApiResponse(ErrorOutput, "The sync is not in a state that allows this.")
BROKER_DOWN = OpenApiResponse(ErrorOutput, "The task queue is unavailable: nothing was queued; try again shortly.")


# --- Serializers ----------------------------------------------------------------------


class SyncOutput(serializers.ModelSerializer):
    properties = serializers.ListField(child=serializers.CharField(), read_only=True)
    last_error_message = serializers.CharField(
        read_only=True, help_text="Why the last run failed or the sync was paused (the receiver's message).")
    snapshot_at = serializers.DateTimeField(read_only=True, allow_null=True,
                                            help_text="The last successful run (what the receiver holds).")
    snapshot_size = serializers.IntegerField(read_only=True, help_text="Members delivered by the last success.")
    force_full = serializers.BooleanField(read_only=True, help_text="The next run is a full `members` load.")

    class Meta:
        model = Sync
        fields = ["id", "cohort", "connection", "mode", "interval_minutes", "properties", "state",
                  "last_error_message", "last_error_status", "paused_at", "snapshot_at", "snapshot_size",
                  "next_run_at", "force_full", "created_at", "updated_at"]
        read_only_fields = fields


class SyncInput(serializers.Serializer):
    cohort = ScopedPrimaryKeyRelatedField(queryset=Cohort.objects.all())
    connection = ScopedPrimaryKeyRelatedField(queryset=Connection.objects.all(),
                                              help_text="A connection of the cohort's project.")
    mode = serializers.ChoiceField(choices=Sync.Mode.choices, default=Sync.Mode.DYNAMIC,
                                   help_text="one_time: one full export; dynamic: then the changes, every interval.")
    interval_minutes = serializers.IntegerField(min_value=policy.MIN_INTERVAL_MINUTES,
                                                max_value=policy.MAX_INTERVAL_MINUTES,
                                                default=policy.DEFAULT_INTERVAL_MINUTES)
    properties = serializers.ListField(
        child=serializers.CharField(max_length=255), max_length=policy.MAX_EXPORTED_PROPERTIES, default=list,
        help_text=f"Profile properties sent with each member (at most {policy.MAX_EXPORTED_PROPERTIES}).",
    )


class SyncFilter(serializers.Serializer):
    state = serializers.ChoiceField(choices=Sync.State.choices, required=False)
    cohort = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    connection = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)


class SyncRunOutput(serializers.ModelSerializer):
    kind = serializers.ChoiceField(choices=SyncRun.Kind.choices, allow_blank=True, read_only=True,
                                   help_text="Empty while the run is queued: decided when it starts.")

    class Meta:
        model = SyncRun
        fields = ["id", "sync", "session_id", "kind", "reason", "trigger", "status", "started_at", "finished_at",
                  "total_pages", "pages_delivered", "members_count", "adds_count", "removes_count",
                  "error_message", "http_status"]
        read_only_fields = fields


class DeliveryAttemptOutput(serializers.ModelSerializer):
    class Meta:
        model = DeliveryAttempt
        fields = ["page_number", "page_id", "action", "attempt_number", "outcome", "http_status", "latency_ms",
                  "error", "response_excerpt", "created_at"]
        read_only_fields = fields


class SyncRunDetailOutput(SyncRunOutput):
    attempts = DeliveryAttemptOutput(many=True, read_only=True)

    class Meta(SyncRunOutput.Meta):
        fields = [*SyncRunOutput.Meta.fields, "attempts"]
        read_only_fields = fields


# --- Views ------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="List syncs", parameters=[SyncFilter]),
    retrieve=extend_schema(summary="Read a sync: state, last error, last success, next run"),
    destroy=extend_schema(summary="Delete a sync"),
)
class SyncViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin,
                  viewsets.GenericViewSet):
    """Exports of a cohort to a connection: one-time, or dynamic (the changes, every interval)."""

    queryset = Sync.objects.none()  # for the schema; get_queryset scopes it to the client
    serializer_class = SyncOutput

    def get_queryset(self):
        projects = client_projects(self.request)
        if self.action != "list":
            return sync_list(projects=projects)
        query = SyncFilter(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        filters = query.validated_data
        return sync_list(projects=projects, state=filters.get("state"), cohort_id=filters.get("cohort"),
                         connection_id=filters.get("connection"))

    @extend_schema(summary="Create a sync (an export)", request=SyncInput, responses={201: SyncOutput})
    def create(self, request):
        """The first run is due at once and sends the whole cohort as `members`."""
        data = SyncInput(data=request.data, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        sync = sync_create(**data.validated_data, created_by=acting_person(request))
        return Response(SyncOutput(sync).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Run now", request=None, responses={202: SyncRunOutput, 409: CONFLICT, 503: BROKER_DOWN})
    @action(detail=True, methods=["post"])
    def run(self, request, pk=None):
        """Queue a run now; answers 202 with the queued run (follow it at `runs/{id}/`)."""
        sync = self.get_object()
        if sync.state != Sync.State.ACTIVE:
            # The engine only runs active syncs: say so now rather than queue a run it would skip.
            raise Conflict(f"The sync is {sync.state}; " + (
                "resume it first." if sync.state == Sync.State.PAUSED else "a one-time export runs once."))
        run = sync_request_run(sync=sync, trigger="api")
        location = reverse("api:run-detail", kwargs={"pk": run.pk})
        return Response(SyncRunOutput(run).data, status=status.HTTP_202_ACCEPTED, headers={"Location": location})

    @extend_schema(summary="Pause", request=None, responses={200: SyncOutput, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        """No more runs until resumed. Pausing a paused sync changes nothing."""
        sync = self.get_object()
        if sync.state == Sync.State.FINISHED:
            raise Conflict("The sync is finished: a one-time export has nothing left to pause.")
        if sync.state == Sync.State.ACTIVE:
            sync_pause(sync=sync, message=API_PAUSE_MESSAGE, status=None, notify=False)
        return Response(SyncOutput(sync).data)

    @extend_schema(summary="Resume", request=None, responses={200: SyncOutput, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        """Active again and due at once. Resuming an active sync changes nothing."""
        sync = self.get_object()
        if sync.state == Sync.State.FINISHED:
            raise Conflict("The sync is finished: a one-time export cannot be resumed.")
        return Response(SyncOutput(sync_resume(sync=sync)).data)

    @extend_schema(summary="Full refresh on the next run", request=None, responses=SyncOutput)
    @action(detail=True, methods=["post"])
    def refresh(self, request, pk=None):
        """The next run sends the whole cohort as `members` (the receiver replaces its copy)."""
        return Response(SyncOutput(sync_request_full_refresh(sync=self.get_object())).data)

    @extend_schema(summary="Run history", request=None, responses=SyncRunOutput(many=True))
    @action(detail=True, methods=["get"])
    def runs(self, request, pk=None):
        """The sync's runs, newest first (attempts per page: `runs/{id}/`)."""
        runs = sync_run_list(projects=client_projects(request), sync=self.get_object())
        page = self.paginate_queryset(runs)
        return self.get_paginated_response(SyncRunOutput(page, many=True).data)


@extend_schema_view(retrieve=extend_schema(summary="Read a run with its per-page attempts"))
class SyncRunViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Read-only run history."""

    queryset = SyncRun.objects.none()  # for the schema; get_queryset scopes it to the client
    serializer_class = SyncRunDetailOutput

    def get_queryset(self):
        return sync_run_with_attempts(runs=sync_run_list(projects=client_projects(self.request)))
