"""REST API for exports (syncs): create, list, read, delete, run, pause, resume, refresh; run history."""

from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from access.api import acting_person
from access.schema import BROKER_DOWN, ErrorOutput
from cohorts.api_common import MAX_ID, ChoiceField, ScopedPrimaryKeyRelatedField, ServiceCreate, client_projects
from cohorts.models import Cohort
from integrations.models import Connection
from outbound import policy
from outbound.api import AUTO_PAUSE_OUTPUT_FIELDS, AutoPauseInput, DeliveryAttemptOutput

from .engine.preview import sync_preview
from .models import Sync, SyncRun
from .selectors import sync_list, sync_run_list, sync_run_with_attempts
from .services import (
    sync_create,
    sync_pause,
    sync_request_full_refresh,
    sync_request_run,
    sync_resume,
    sync_set_auto_pause,
)

API_PAUSE_MESSAGE = "paused through the API"
CONFLICT = OpenApiResponse(ErrorOutput, "The sync is not in a state that allows this.")


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
                  "next_run_at", "force_full", "created_at", "updated_at", *AUTO_PAUSE_OUTPUT_FIELDS]
        read_only_fields = fields


class SyncInput(AutoPauseInput):
    cohort = ScopedPrimaryKeyRelatedField(queryset=Cohort.objects.all())
    connection = ScopedPrimaryKeyRelatedField(queryset=Connection.objects.all(),
                                              help_text="A connection of the cohort's project.")
    mode = ChoiceField(choices=Sync.Mode.choices, default=Sync.Mode.DYNAMIC,
                                   help_text="one_time: one full export; dynamic: then the changes, every interval.")
    interval_minutes = serializers.IntegerField(min_value=policy.MIN_INTERVAL_MINUTES,
                                                max_value=policy.MAX_INTERVAL_MINUTES,
                                                default=policy.DEFAULT_INTERVAL_MINUTES)
    properties = serializers.ListField(
        child=serializers.CharField(max_length=255), max_length=policy.MAX_EXPORTED_PROPERTIES, default=list,
        help_text=f"Profile properties sent with each member (at most {policy.MAX_EXPORTED_PROPERTIES}).",
    )


class SyncFilter(serializers.Serializer):
    state = ChoiceField(choices=Sync.State.choices, required=False)
    cohort = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    connection = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)


class SyncRunOutput(serializers.ModelSerializer):
    kind = ChoiceField(choices=SyncRun.Kind.choices, allow_blank=True, read_only=True,
                                   help_text="Empty while the run is queued: decided when it starts.")

    class Meta:
        model = SyncRun
        fields = ["id", "sync", "session_id", "kind", "reason", "trigger", "status", "started_at", "finished_at",
                  "total_pages", "pages_delivered", "members_count", "adds_count", "removes_count",
                  "error_message", "http_status", "resumed_count", "stops"]
        read_only_fields = fields
        extra_kwargs = {
            "resumed_count": {"help_text": "How many times the run was resumed from its first undelivered page."},
            "stops": {"help_text": "Each time the run stopped before it was resumed: when (`at`), its status, "
                                   "its error and the pages delivered by then."},
        }


class SyncRunDetailOutput(SyncRunOutput):
    attempts = DeliveryAttemptOutput(many=True, read_only=True)

    class Meta(SyncRunOutput.Meta):
        fields = [*SyncRunOutput.Meta.fields, "attempts"]
        read_only_fields = fields


class FirstPageOutput(serializers.Serializer):
    action = serializers.CharField()
    url = serializers.CharField()
    headers = serializers.DictField(child=serializers.CharField(),
                                    help_text="As the first try would send them; secret values masked.")
    body = serializers.CharField(help_text="The page's body exactly as it would be sent.")
    members = serializers.IntegerField()


class RunPreviewOutput(serializers.Serializer):
    kind = ChoiceField(choices=SyncRun.Kind.choices)
    reason = serializers.CharField(help_text="Why this kind: first run, full refresh, snapshot expired, diff.")
    members_count = serializers.IntegerField()
    adds_count = serializers.IntegerField()
    removes_count = serializers.IntegerField()
    total_pages = serializers.IntegerField()
    pages = serializers.DictField(child=serializers.IntegerField(), help_text="Pages per action.")
    first_page = FirstPageOutput(allow_null=True)
    error = serializers.CharField(help_text="Set when the payload template cannot render (the run would pause).")


# --- Views ------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="List syncs", parameters=[SyncFilter]),
    retrieve=extend_schema(summary="Read a sync: state, last error, last success, next run"),
    destroy=extend_schema(summary="Delete a sync"),
    create=extend_schema(
        summary="Create a sync (an export)", request=SyncInput, responses={201: SyncOutput},
        description="The first run is due at once and sends the whole cohort as `members`.",
    ),
)
class SyncViewSet(ServiceCreate, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin,
                  viewsets.GenericViewSet):
    """Exports of a cohort to a connection: one-time, or dynamic (the changes, every interval)."""

    queryset = Sync.objects.none()  # for the schema; get_queryset scopes it to the client
    serializer_class = SyncOutput
    create_input, output = SyncInput, SyncOutput

    def get_queryset(self):
        projects = client_projects(self.request)
        if self.action != "list":
            return sync_list(projects=projects)
        query = SyncFilter(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        filters = query.validated_data
        return sync_list(projects=projects, state=filters.get("state"), cohort_id=filters.get("cohort"),
                         connection_id=filters.get("connection"))

    @extend_schema(summary="Change a sync's auto-pause limits", request=AutoPauseInput, responses=SyncOutput)
    def partial_update(self, request, pk=None):
        """Only the auto-pause overrides change; null falls back to the settings' defaults."""
        sync = self.get_object()
        data = AutoPauseInput(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(SyncOutput(sync_set_auto_pause(sync=sync, **data.validated_data)).data)

    @extend_schema(summary="Run now", request=None, responses={202: SyncRunOutput, 409: CONFLICT, 503: BROKER_DOWN})
    @action(detail=True, methods=["post"])
    def run(self, request, pk=None):
        """Queue a run now; answers 202 with the queued run (follow it at `runs/{id}/`). Only an
        active sync runs: a paused or finished one is a 409."""
        run = sync_request_run(sync=self.get_object(), trigger="api")
        location = reverse("api:run-detail", kwargs={"pk": run.pk})
        return Response(SyncRunOutput(run).data, status=status.HTTP_202_ACCEPTED, headers={"Location": location})

    @extend_schema(summary="Preview the next run (dry run)", request=None, responses=RunPreviewOutput)
    @action(detail=True, methods=["post"])
    def preview(self, request, pk=None):
        """What the next run would send: kind, counts, pages and the first page. Sends nothing, changes nothing."""
        return Response(RunPreviewOutput(sync_preview(sync=self.get_object())).data)

    @extend_schema(summary="Pause", request=None, responses={200: SyncOutput, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        """No more runs until resumed. Pausing a paused sync changes nothing; a finished one is a 409."""
        sync = sync_pause(sync=self.get_object(), message=API_PAUSE_MESSAGE, status=None, notify=False)
        return Response(SyncOutput(sync).data)

    @extend_schema(summary="Resume", request=None, responses={200: SyncOutput, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        """Active again and due at once. Resuming an active sync changes nothing; a finished one is a 409."""
        return Response(SyncOutput(sync_resume(sync=self.get_object())).data)

    @extend_schema(summary="Full refresh on the next run", request=None, responses={200: SyncOutput, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def refresh(self, request, pk=None):
        """The next run sends the whole cohort as `members` (the receiver replaces its copy). A
        finished sync is a 409."""
        return Response(SyncOutput(sync_request_full_refresh(sync=self.get_object())).data)

    @extend_schema(summary="Run history", request=None, responses=SyncRunOutput(many=True))
    @action(detail=True, methods=["get"])
    def runs(self, request, pk=None):
        """The sync's runs, newest first (attempts per page: `runs/{id}/`)."""
        runs = sync_run_list(projects=client_projects(request), sync=self.get_object())
        page = self.paginate_queryset(runs)
        return self.get_paginated_response(SyncRunOutput(page, many=True).data)

    def created(self, data: dict) -> Sync:
        return sync_create(**data, created_by=acting_person(self.request))


@extend_schema_view(retrieve=extend_schema(summary="Read a run with its per-page attempts"))
class SyncRunViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Read-only run history."""

    queryset = SyncRun.objects.none()  # for the schema; get_queryset scopes it to the client
    serializer_class = SyncRunDetailOutput

    def get_queryset(self):
        return sync_run_with_attempts(runs=sync_run_list(projects=client_projects(self.request)))
