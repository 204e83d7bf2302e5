"""The SDK endpoints (Segment's and Mixpanel's wire formats, answered as theirs are) and the
REST API for ingestion keys."""

import orjson
from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from access.api import acting_person
from access.authentication import ApiKeyAuthentication
from access.services import hashed_key_mark_used, hashed_key_revoke
from cohorts.api import ItemErrorOutput
from cohorts.api_common import ProjectScopedInput, client_projects, read_only_meta
from cohorts.ingestion import BatchResult

from . import mixpanel, segment
from .authentication import MixpanelSecretAuthentication, SegmentWriteKeyAuthentication, segment_body_write_key
from .models import IngestKey
from .payloads import PayloadInvalid, form_fields, json_value, mixpanel_data_field, ndjson_values, request_body
from .selectors import ingest_key_for_secret, ingest_key_list
from .services import ingest_key_create, records_budget_wait


def _json(body: dict, status: int = 200) -> HttpResponse:
    return HttpResponse(orjson.dumps(body), status=status, content_type="application/json")


def _item_errors(result: BatchResult) -> list[dict]:
    return [{"index": e.index, "field": e.field, "message": e.message} for e in result.errors]


class _SdkView(APIView):
    # SDKs batch and retry on their own; neither vendor sets a request budget on ingestion.
    throttle_classes = []


# --- Segment ----------------------------------------------------------------------------------


class SegmentMessageInput(serializers.Serializer):
    type = serializers.ChoiceField(choices=segment.MESSAGE_TYPES, required=False,
                                   help_text="In a batch; implied by the path of a single call.")
    userId = serializers.CharField(required=False, help_text="The distinct id (else `anonymousId`).")
    anonymousId = serializers.CharField(required=False)
    messageId = serializers.CharField(required=False, help_text="De-duplicates resent track/page/screen calls.")
    event = serializers.CharField(required=False, help_text="track: the event name.")
    name = serializers.CharField(required=False, help_text="page/screen: added to the properties.")
    properties = serializers.DictField(required=False)
    traits = serializers.DictField(required=False, help_text="identify: `email`, `firstName`, `lastName`, "
                                   "`phone` are identity fields; the others profile properties.")
    timestamp = serializers.DateTimeField(required=False)
    context = serializers.DictField(required=False, help_text="Kept on events as the `$context` property.")
    sentAt = serializers.DateTimeField(required=False, help_text="When the device sent it: `timestamp` is "
                                       "corrected by the device's clock skew (receivedAt − (sentAt − timestamp)).")
    writeKey = serializers.CharField(required=False, help_text="The write key, when no Authorization header "
                                     "is sent (analytics.js).")


class SegmentBatchInput(serializers.Serializer):
    batch = SegmentMessageInput(many=True)
    sentAt = serializers.DateTimeField(required=False, help_text="As a message's, for those without one.")
    writeKey = serializers.CharField(required=False, help_text="The write key, when no Authorization header "
                                     "is sent (analytics.js).")


class SegmentOutput(serializers.Serializer):
    success = serializers.BooleanField()
    accepted = serializers.IntegerField(help_text="Messages stored or acknowledged.")
    rejected = serializers.IntegerField()
    errors = ItemErrorOutput(many=True)


class SegmentErrorOutput(serializers.Serializer):
    success = serializers.BooleanField()
    code = serializers.CharField()
    message = serializers.CharField()


class SegmentView(_SdkView):
    """Segment's HTTP Tracking API. Answers 200 `{"success": true}` with per-message errors, or
    400 for a body Segment refuses too (larger than its limits, not JSON)."""

    authentication_classes = [SegmentWriteKeyAuthentication, ApiKeyAuthentication]
    # Without an Authorization header the write key is the body's `writeKey` (analytics.js):
    # checked in post(), once the body is read.
    permission_classes = [AllowAny]
    message_type: str | None = None  # None: /v1/batch

    def post(self, request):
        batch = self.message_type is None
        try:
            body = request_body(request, limit=segment.BATCH_MAX_BYTES if batch else segment.MESSAGE_MAX_BYTES)
            payload = json_value(body)
            messages = segment.segment_payload_messages(payload, batch=batch, body_size=len(body))
        except PayloadInvalid as invalid:
            # Segment answers 400 for every body it cannot take, too large included.
            return _json({"success": False, "code": invalid.code, "message": invalid.message}, status=400)
        key = request.auth if request.auth is not None else segment_body_write_key(payload)
        if wait := records_budget_wait(key=key, records=len(messages)):
            return _too_many(_json({"success": False, "code": "rate_limited", "message": _budget_message(wait)},
                                   status=429), wait)
        # At most 2,500 messages (segment.BATCH_MAX_MESSAGES): under the batch services' limit.
        result = segment.segment_messages_ingest(project=key.project, messages=messages,
                                                 message_type=self.message_type,
                                                 sent_at=payload.get("sentAt") if batch else None)
        return _json({"success": True, "accepted": result.accepted, "rejected": result.rejected,
                      "errors": _item_errors(result)})

    def handle_exception(self, exc):
        # Segment's shape, so its clients log why ("[Segment] unauthorized: …").
        if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
            response = _json({"success": False, "code": "unauthorized", "message": str(exc.detail)}, status=401)
            response["WWW-Authenticate"] = self.get_authenticate_header(self.request)
            return response
        return super().handle_exception(exc)


_SEGMENT_RESPONSES = {200: SegmentOutput, 400: SegmentErrorOutput, 401: SegmentErrorOutput,
                      429: SegmentErrorOutput}


class SegmentCallView(SegmentView):
    @extend_schema(summary="Segment: one call (identify, track, page, screen, alias, group)",
                   request=SegmentMessageInput, responses=_SEGMENT_RESPONSES, tags=["segment"])
    def post(self, request):
        return super().post(request)


class SegmentBatchView(SegmentView):
    @extend_schema(summary="Segment: a batch of calls", request=SegmentBatchInput, responses=_SEGMENT_RESPONSES,
                   tags=["segment"])
    def post(self, request):
        return super().post(request)


class SegmentSettingsView(_SdkView):
    """analytics.js's settings, which it loads from its `cdnURL` before sending anything."""

    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(summary="Segment: analytics.js's settings (its `cdnURL` set to Cohortsync)", tags=["segment"],
                   auth=[], responses={200: OpenApiTypes.OBJECT},
                   description="The same document for any write key (it names this host as analytics.js's "
                               "`apiHost`); the key is checked when events arrive.")
    def get(self, request, write_key: str):
        return _json(segment.analytics_js_settings(write_key=write_key, api_host=f"{request.get_host()}/v1",
                                                   protocol=request.scheme))


# --- Mixpanel ---------------------------------------------------------------------------------


class MixpanelFormInput(serializers.Serializer):
    data = serializers.CharField(help_text="JSON (or base64 of JSON): one record or an array of them.")
    verbose = serializers.ChoiceField(choices=["0", "1"], required=False,
                                      help_text="1: answer JSON `{\"status\": 1, \"error\": null}`, else `1`/`0`.")


class FailedRecordOutput(ItemErrorOutput):
    insert_id = serializers.CharField(required=False, allow_null=True)


class MixpanelStatusOutput(serializers.Serializer):
    status = serializers.IntegerField(help_text="1: every record stored; 0: see `error`.")
    error = serializers.CharField(allow_null=True)
    failed_records = FailedRecordOutput(many=True, required=False)


class MixpanelImportOutput(serializers.Serializer):
    code = serializers.IntegerField()
    status = serializers.JSONField(help_text="1 on success (what Mixpanel's libraries check), else the HTTP reason.")
    num_records_imported = serializers.IntegerField(required=False)
    error = serializers.CharField(required=False)
    failed_records = FailedRecordOutput(many=True, required=False)


VERBOSE = OpenApiParameter("verbose", str, enum=["0", "1"], required=False,
                           description="1: answer JSON `{\"status\": 1, \"error\": null}`, else `1` or `0`.")
_STATUS_RESPONSES = {
    (code, media): (MixpanelStatusOutput if media == "application/json" else OpenApiTypes.STR)
    for code in (200, 400, 401, 413, 429) for media in ("application/json", "text/plain")
}
_RECORDS_REQUEST = {"application/x-www-form-urlencoded": MixpanelFormInput, "application/json": OpenApiTypes.ANY}


class _MixpanelView(_SdkView):
    parser_classes = [FormParser, JSONParser]  # what the schema offers; the body is read by .payloads

    def records(self, request) -> list:
        """The request's records; `self.params` holds its parameters (query string, and the form
        fields but `data`) even when the records cannot be read."""
        self.params = {name: value for name, value in request.query_params.items()}
        body = request_body(request, limit=mixpanel.MAX_BODY_BYTES)
        self.body_size = len(body)
        media = (request.content_type or "").split(";")[0].strip().lower()
        if media == "application/x-www-form-urlencoded":
            fields = form_fields(body)
            data = fields.pop("data", None)
            self.params.update(fields)
            if data is None:
                raise PayloadInvalid("The form field `data` is required.")
            value = mixpanel_data_field(data)
        elif media == "application/x-ndjson":
            value = ndjson_values(body)
        else:
            value = json_value(body)
        records = value if isinstance(value, list) else [value]
        if len(records) > mixpanel.MAX_BATCH:
            raise PayloadInvalid(f"Too many records: at most {mixpanel.MAX_BATCH:,} a request, "
                                 f"this one has {len(records):,}.")
        return records


class _MixpanelTokenView(_MixpanelView):
    """/track and /engage: the project token travels in each record (untrusted clients)."""

    authentication_classes = []
    permission_classes = [AllowAny]

    def post(self, request):
        try:
            records = self.records(request)
        except PayloadInvalid as invalid:
            return _status_answer(self.params.get("verbose") == "1", invalid.message, status=invalid.status)
        verbose = self.params.get("verbose") == "1"
        if not records:
            return _status_answer(verbose, None)
        token = self.token(records[0])
        ingest_key = ingest_key_for_secret(key=token, kinds=(IngestKey.Kind.MIXPANEL_TOKEN,)) \
            if isinstance(token, str) else None
        if ingest_key is None:
            return _status_answer(verbose, "Invalid or revoked project token.", status=401)
        hashed_key_mark_used(hashed_key=ingest_key)
        if wait := records_budget_wait(key=ingest_key, records=len(records)):
            return _too_many(_status_answer(verbose, _budget_message(wait), status=429), wait)
        result = self.ingest(project=ingest_key.project, records=records, token=token)
        if not result.errors:
            return _status_answer(verbose, None)
        first = result.errors[0]
        error = (f"{result.rejected} of {len(records)} records failed validation ({result.accepted} stored); "
                 f"record {first.index}: {first.field or 'record'} {first.message}")
        return _status_answer(verbose, error, failed=_item_errors(result))


def _budget_message(wait: int) -> str:
    return (f"This key sent its {settings.COHORTSYNC_SDK_RECORDS_PER_MINUTE:,} records of this minute "
            f"(COHORTSYNC_SDK_RECORDS_PER_MINUTE): retry in {wait} s.")


def _too_many(response: HttpResponse, wait: int) -> HttpResponse:
    response["Retry-After"] = str(wait)
    return response


def _status_answer(verbose: bool, error: str | None, *, status: int = 200, failed: list | None = None):
    if not verbose:
        return HttpResponse(b"0" if error else b"1", status=status, content_type="text/plain")
    body = {"status": 0 if error else 1, "error": error}
    if failed:
        body["failed_records"] = failed
    return _json(body, status=status)


def _records_schema(summary: str):
    """The OpenAPI description of a token endpoint's POST (the base view serves them all)."""
    return extend_schema_view(post=extend_schema(summary=summary, request=_RECORDS_REQUEST, parameters=[VERBOSE],
                                                 responses=_STATUS_RESPONSES, tags=["mixpanel"], auth=[]))


@_records_schema("Mixpanel: track events (at most 5 days old)")
class MixpanelTrackView(_MixpanelTokenView):
    token = staticmethod(mixpanel.event_token)

    def ingest(self, *, project, records, token):
        return mixpanel.mixpanel_events_ingest(project=project, events=records, token=token,
                                               max_age=mixpanel.TRACK_MAX_AGE, body_size=self.body_size)


@_records_schema("Mixpanel: profile updates ($set, $set_once, $add, $append, $union, $remove, $unset, $delete)")
class MixpanelEngageView(_MixpanelTokenView):
    token = staticmethod(mixpanel.update_token)

    def ingest(self, *, project, records, token):
        return mixpanel.mixpanel_engage_ingest(project=project, updates=records, token=token)


@_records_schema("Mixpanel: group profile updates (checked and acknowledged, not stored)")
class MixpanelGroupsView(_MixpanelTokenView):
    """/groups: group profile updates, `$token` in each; Cohortsync keeps no group profiles."""

    token = staticmethod(mixpanel.update_token)

    def ingest(self, *, project, records, token):
        return mixpanel.mixpanel_groups_ingest(updates=records, token=token)


class MixpanelImportView(_MixpanelView):
    """/import: events of any age within the retention window, for server-side senders."""

    authentication_classes = [MixpanelSecretAuthentication]
    permission_classes = [IsAuthenticated]

    @extend_schema(
        summary="Mixpanel: import events", tags=["mixpanel"], request=_RECORDS_REQUEST,
        description="A JSON array of events, newline-delimited JSON (`Content-Type: application/x-ndjson`), or "
                    "the `data=` form field; gzip allowed.",
        parameters=[OpenApiParameter("project_id", str, required=False,
                                     description="Service accounts: the key's project id.")],
        responses={code: MixpanelImportOutput for code in (200, 400, 401, 413, 429)},
    )
    def post(self, request):
        try:
            records = self.records(request)
        except PayloadInvalid as invalid:
            return _import_error(invalid.status, invalid.message)
        if wait := records_budget_wait(key=request.auth, records=len(records)):
            # Mixpanel's own words for it, which its libraries and docs know.
            return _too_many(_import_error(429, "Project exceeded rate limits. Please retry the request with "
                                                f"exponential backoff. ({_budget_message(wait)})"), wait)
        result = mixpanel.mixpanel_events_ingest(project=request.auth.project, events=records,
                                                 body_size=self.body_size)
        if not result.errors:
            return _json({"code": 200, "num_records_imported": result.accepted, "status": 1})
        return _json({"code": 400, "error": "some data points in the request failed validation",
                      "failed_records": [{**error, "insert_id": _insert_id(records[error["index"]])}
                                         for error in _item_errors(result)],
                      "num_records_imported": result.accepted, "status": "Bad Request"}, status=400)

    def handle_exception(self, exc):
        if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
            response = _import_error(401, str(exc.detail))
            response["WWW-Authenticate"] = self.get_authenticate_header(self.request)
            return response
        return super().handle_exception(exc)


_REASONS = {400: "Bad Request", 401: "Unauthorized", 413: "Request Entity Too Large", 429: "Too Many Requests"}


def _import_error(code: int, message: str) -> HttpResponse:
    return _json({"code": code, "error": message, "status": _REASONS[code]}, status=code)


def _insert_id(record) -> str | None:
    insert_id = mixpanel.event_properties(record).get("$insert_id")
    return insert_id if isinstance(insert_id, str) else None


# --- Ingestion keys (REST API) ----------------------------------------------------------------


class IngestKeyOutput(serializers.ModelSerializer):
    Meta = read_only_meta(IngestKey, ["id", "project", "kind", "name", "prefix", "created_at", "last_used_at",
                                      "revoked_at"])


class IngestKeyCreatedOutput(IngestKeyOutput):
    key = serializers.CharField(help_text="The key itself: shown only in this answer (only its hash is kept).")

    Meta = read_only_meta(IngestKey, [*IngestKeyOutput.Meta.fields, "key"])


class IngestKeyInput(ProjectScopedInput):
    kind = serializers.ChoiceField(choices=IngestKey.Kind.choices)
    name = serializers.CharField(max_length=200)


@extend_schema_view(
    list=extend_schema(summary="List SDK ingestion keys (write keys, project tokens and secrets)"),
    retrieve=extend_schema(summary="Read an SDK ingestion key"),
)
class IngestKeyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Segment write keys and Mixpanel project tokens and secrets, for the SDK endpoints."""

    queryset = IngestKey.objects.none()  # for the schema; get_queryset scopes it to the client
    serializer_class = IngestKeyOutput

    def get_queryset(self):
        return ingest_key_list(projects=client_projects(self.request))

    @extend_schema(summary="Create an SDK ingestion key (the key is in this answer only)", request=IngestKeyInput,
                   responses={201: IngestKeyCreatedOutput})
    def create(self, request):
        data = IngestKeyInput(data=request.data, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        ingest_key, key = ingest_key_create(project=data.validated_data["project"], kind=data.validated_data["kind"],
                                            name=data.validated_data["name"], created_by=acting_person(request))
        return Response({**IngestKeyOutput(ingest_key).data, "key": key}, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Revoke an SDK ingestion key (requests with it are refused at once)", request=None,
                   responses=IngestKeyOutput)
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        return Response(IngestKeyOutput(hashed_key_revoke(hashed_key=self.get_object())).data)
