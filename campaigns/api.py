"""REST API for user messages: create, list, read, change, delete, run, pause, resume, test send;
their run history."""

import zoneinfo

from django.db.models import QuerySet
from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from access.api import acting_person
from access.schema import BROKER_DOWN, ErrorOutput
from cohorts.api_common import (
    MAX_ID,
    ChoiceField,
    ScopedPrimaryKeyRelatedField,
    ServiceCreate,
    ServiceUpdate,
    client_projects,
)
from cohorts.models import Cohort
from integrations.models import Connection
from outbound.api import (
    AUTO_PAUSE_OUTPUT_FIELDS,
    AttemptHistoryViewSet,
    AutoPauseInput,
    DeliveryAttemptOutput,
    TestSendOutput,
)

from . import policy
from .models import Message, MessageRun
from .selectors import message_list, message_run_list
from .services import (
    message_create,
    message_pause,
    message_request_run,
    message_resume,
    message_send_test,
    message_update,
)

CONFLICT = OpenApiResponse(ErrorOutput, "The message is paused: resume it first.")


# --- Serializers ----------------------------------------------------------------------


# A wall-clock time without an offset (the zone is a field of its own), so not OpenAPI's
# `format: time`, which is RFC 3339's full-time and requires one.
@extend_schema_field({"type": "string", "pattern": r"^\d{2}:\d{2}(:\d{2}(\.\d+)?)?$", "example": "09:00:00"})
class TimeOfDayField(serializers.TimeField):
    pass


class MessageOutput(serializers.ModelSerializer):
    time_of_day = TimeOfDayField(read_only=True)
    days_of_week = serializers.ListField(child=serializers.IntegerField(), read_only=True,
                                         help_text="Weekly cadence: 0 = Monday … 6 = Sunday.")
    properties = serializers.ListField(child=serializers.CharField(), read_only=True,
                                       help_text="Profile properties sent with each user; empty: all of them.")
    last_error_message = serializers.CharField(
        read_only=True, help_text="Why the last run left users unsent or paused the message (the receiver's answer).")
    next_run_at = serializers.DateTimeField(
        read_only=True, allow_null=True,
        help_text="When the message checks its audience next; null while paused.")

    class Meta:
        model = Message
        fields = ["id", "name", "cohort", "connection", "schedule", "cadence", "interval", "time_of_day", "timezone",
                  "days_of_week", "day_of_month", "limit_count", "limit_days", "properties", "state",
                  "last_error_message", "last_error_status", "paused_at", "next_run_at", "created_at", "updated_at",
                  *AUTO_PAUSE_OUTPUT_FIELDS]
        read_only_fields = fields


class MessageUpdateInput(AutoPauseInput):
    name = serializers.CharField(max_length=200, required=False)
    connection = ScopedPrimaryKeyRelatedField(
        queryset=Connection.objects.all(), required=False,
        help_text="Where the users are POSTed (form-encoded `users`): a connection of the cohort's project.")
    schedule = ChoiceField(
        choices=Message.Schedule.choices, required=False,
        help_text="asap: as users start matching, once per user; scheduled: at the cadence's times, once per user "
                  "ever; recurring: at the cadence, at most `limit_count` per user in `limit_days` days.")
    cadence = ChoiceField(
        choices=Message.Cadence.choices, required=False,
        help_text="asap (each time the cohort is recomputed), daily, weekly or monthly. Default: asap, or daily "
                  "for a scheduled message.")
    interval = serializers.IntegerField(min_value=1, max_value=policy.MAX_INTERVAL, required=False,
                                        help_text="Every N days, weeks or months (timed cadences).")
    time_of_day = TimeOfDayField(required=False, help_text="Local time in `timezone`, e.g. 09:00.")
    timezone = serializers.CharField(max_length=64, required=False,
                                     help_text="An IANA time zone name such as Europe/Paris.")
    days_of_week = serializers.ListField(
        child=serializers.IntegerField(min_value=0, max_value=6), max_length=7, required=False,
        help_text="Weekly cadence: the days it goes out, 0 = Monday … 6 = Sunday.")
    day_of_month = serializers.IntegerField(min_value=1, max_value=31, required=False,
                                            help_text="Monthly cadence (past a month's end: its last day).")
    limit_count = serializers.IntegerField(min_value=1, max_value=policy.MAX_LIMIT_COUNT, required=False,
                                           help_text="Recurring: at most this many messages per user …")
    limit_days = serializers.IntegerField(min_value=1, max_value=policy.MAX_LIMIT_DAYS, required=False,
                                          help_text="… in any window of this many days.")
    properties = serializers.ListField(
        child=serializers.CharField(max_length=255), max_length=policy.MAX_PROPERTIES, required=False,
        help_text=f"Profile properties sent with each user (at most {policy.MAX_PROPERTIES}); empty: all of them.")

    def validate_timezone(self, value: str) -> str:
        # Checked against the list first: some names (a directory such as "America") make zoneinfo raise oddly.
        if value not in zoneinfo.available_timezones():
            raise serializers.ValidationError(f"Unknown time zone {value!r} (use an IANA name such as Europe/Paris).")
        return value


class MessageInput(MessageUpdateInput):
    cohort = ScopedPrimaryKeyRelatedField(queryset=Cohort.objects.all(), help_text="The users it targets.")
    name = serializers.CharField(max_length=200)
    connection = ScopedPrimaryKeyRelatedField(
        queryset=Connection.objects.all(),
        help_text="Where the users are POSTed (form-encoded `users`): a connection of the cohort's project.")


class MessageFilter(serializers.Serializer):
    state = ChoiceField(choices=Message.State.choices, required=False)
    cohort = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    connection = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)


class MessageRunOutput(serializers.ModelSerializer):
    users_count = serializers.IntegerField(read_only=True, help_text="Users the run reserved to send.")
    sent_count = serializers.IntegerField(read_only=True, help_text="Users whose batch the receiver accepted.")

    class Meta:
        model = MessageRun
        fields = ["id", "message", "session_id", "trigger", "status", "started_at", "finished_at", "users_count",
                  "sent_count", "total_batches", "batches_delivered", "batches_failed", "error_message",
                  "http_status"]
        read_only_fields = fields


class MessageRunDetailOutput(MessageRunOutput):
    attempts = DeliveryAttemptOutput(many=True, read_only=True, help_text="Each POST try, by batch (page_number).")

    class Meta(MessageRunOutput.Meta):
        fields = [*MessageRunOutput.Meta.fields, "attempts"]
        read_only_fields = fields


class MessageRunFilter(serializers.Serializer):
    message = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID,
                                       help_text="Only this message's runs.")


class MessageTestOutput(TestSendOutput):
    distinct_ids = serializers.ListField(child=serializers.CharField(),
                                         help_text="The (up to 5) random profiles sent; none is marked sent.")


# --- Views ------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="List user messages", parameters=[MessageFilter]),
    retrieve=extend_schema(summary="Read a user message: schedule, state, last error, next run"),
    destroy=extend_schema(summary="Delete a user message (its runs and send records with it)"),
    create=extend_schema(
        summary="Create a user message", request=MessageInput, responses={201: MessageOutput},
        description="ASAP messages are due at once; timed ones at their first occurrence.",
    ),
    partial_update=extend_schema(
        summary="Change a user message", request=MessageUpdateInput, responses=MessageOutput,
        description="The message is rescheduled from now; who was already sent stays sent.",
    ),
)
class MessageViewSet(ServiceCreate, ServiceUpdate,
                     mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin,
                     viewsets.GenericViewSet):
    """User messages (legacy webhook campaigns): a cohort's users POSTed to a connection as
    form-encoded `users` batches of 50, ASAP, scheduled or recurring."""

    queryset = Message.objects.none()  # for the schema; get_queryset scopes it to the client
    serializer_class = MessageOutput
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    create_input, update_input, output = MessageInput, MessageUpdateInput, MessageOutput

    def get_queryset(self):
        projects = client_projects(self.request)
        if self.action != "list":
            return message_list(projects=projects).select_related("cohort", "connection")
        query = MessageFilter(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        filters = query.validated_data
        return message_list(projects=projects, state=filters.get("state"), cohort_id=filters.get("cohort"),
                            connection_id=filters.get("connection"))

    @extend_schema(summary="Run now", request=None, responses={202: MessageRunOutput, 409: CONFLICT, 503: BROKER_DOWN})
    @action(detail=True, methods=["post"])
    def run(self, request, pk=None):
        """Queue a run now; answers 202 with the queued run (follow it at `message-runs/{id}/`). A
        paused message is a 409."""
        run = message_request_run(message=self.get_object(), trigger="api")
        location = reverse("api:message-run-detail", kwargs={"pk": run.pk})
        return Response(MessageRunOutput(run).data, status=status.HTTP_202_ACCEPTED, headers={"Location": location})

    @extend_schema(summary="Pause", request=None, responses=MessageOutput)
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        """No more runs until resumed. Pausing a paused message changes nothing."""
        return Response(MessageOutput(message_pause(message=self.get_object())).data)

    @extend_schema(summary="Resume", request=None, responses=MessageOutput)
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        """Active again and rescheduled from now. Resuming an active message changes nothing."""
        return Response(MessageOutput(message_resume(message=self.get_object())).data)

    @extend_schema(summary="Test send", request=None, responses=MessageTestOutput)
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        """POST 5 random profiles of the project to the connection, as a run would, and answer
        with the receiver's reply. Nobody is marked sent: the real run still reaches them."""
        return Response(MessageTestOutput(message_send_test(message=self.get_object())).data)

    def created(self, data: dict) -> Message:
        return message_create(**data, created_by=acting_person(self.request))

    def changed(self, message: Message, data: dict) -> Message:
        return message_update(message=message, **data)


@extend_schema_view(
    list=extend_schema(summary="List message runs, newest first", parameters=[MessageRunFilter]),
    retrieve=extend_schema(summary="Read a message run with its per-batch attempts"),
)
class MessageRunViewSet(AttemptHistoryViewSet):
    """Read-only run history of user messages."""

    queryset = MessageRun.objects.none()  # for the schema; get_queryset scopes it to the client
    serializer_class = MessageRunDetailOutput
    list_serializer_class = MessageRunOutput
    filter_input = MessageRunFilter

    def history(self, *, filters: dict) -> QuerySet:
        return message_run_list(projects=client_projects(self.request), message_id=filters.get("message"))
