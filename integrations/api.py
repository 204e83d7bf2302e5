"""REST API for connections: CRUD with write-only secrets, and a test send."""

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from access.schema import ErrorOutput
from cohorts.api_common import ChoiceField, ProjectScopedInput, ServiceCreate, ServiceUpdate, client_projects
from outbound.api import TestSendOutput
from outbound.limits import MAX_CONCURRENT_RUNS, MAX_REQUESTS_PER_SECOND, MIN_REQUESTS_PER_SECOND

from .models import MAX_PAGE_SIZE, Connection
from .selectors import connection_list
from .send_test import connection_send_test
from .services import connection_create, connection_disable_signing, connection_rotate_signing_secret, connection_update

MAX_SIGNING_OVERLAP_HOURS = 7 * 24
SECRET_HELP = "Write-only. Omit to keep the stored value, send \"\" to remove it."


def _secret_field(label: str) -> serializers.CharField:
    return serializers.CharField(required=False, allow_blank=True, trim_whitespace=False, max_length=1000,
                                 help_text=f"{label}. {SECRET_HELP}", style={"input_type": "password"})


def _headers_field() -> serializers.DictField:
    return serializers.DictField(
        child=serializers.CharField(allow_blank=True, allow_null=True, trim_whitespace=False), required=False,
        help_text="Up to 5 custom headers, name: value; replaces the stored set. Values are write-only secrets: "
        "null keeps a header's stored value. Content-Type, User-Agent, Authorization and x-api-key (when an API "
        "key is set) are Cohortsync's own and cannot be overridden.",
    )


class HeaderOutput(serializers.Serializer):
    name = serializers.CharField()
    has_value = serializers.BooleanField(help_text="A value is stored (values are write-only).")


class ConnectionOutput(serializers.ModelSerializer):
    has_password = serializers.BooleanField(read_only=True, help_text="A Basic Auth password is stored.")
    has_api_key = serializers.BooleanField(read_only=True, help_text="An API key (sent as x-api-key) is stored.")
    has_signing_secret = serializers.BooleanField(
        read_only=True, help_text="Requests are signed (Standard Webhooks: webhook-signature).")
    headers = serializers.SerializerMethodField()

    class Meta:
        model = Connection
        fields = ["id", "project", "name", "url", "format", "body_template", "content_type", "page_size",
                  "max_requests_per_second", "max_concurrent_runs", "auth_username", "has_password", "has_api_key", "headers", "has_signing_secret",
                  "previous_signing_secret_expires_at", "created_at", "updated_at"]
        read_only_fields = fields

    @extend_schema_field(HeaderOutput(many=True))
    def get_headers(self, connection: Connection) -> list[dict]:
        return [{"name": name, "has_value": has_value} for name, has_value in connection.header_names.items()]


class ConnectionUpdateOutput(ConnectionOutput):
    dropped_secrets = serializers.ListField(
        child=serializers.CharField(), read_only=True,
        help_text="Stored secrets this change dropped because the URL's scheme, host or port changed and the "
        "request did not give them again (auth_password, api_key, signing_secret, headers.<name>). "
        "Give them again for the new destination.")

    class Meta(ConnectionOutput.Meta):
        fields = [*ConnectionOutput.Meta.fields, "dropped_secrets"]
        read_only_fields = fields


class ConnectionUpdateInput(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    url = serializers.CharField(max_length=2000, required=False, help_text="https:// (or http:// where allowed)")
    format = ChoiceField(choices=Connection.Format.choices, required=False)
    body_template = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False,
                                          help_text="For the `template` format: the body, over the `input` object.")
    content_type = serializers.CharField(max_length=100, required=False)
    page_size = serializers.IntegerField(min_value=1, max_value=MAX_PAGE_SIZE, required=False,
                                         help_text=f"Members per request, 1 to {MAX_PAGE_SIZE} (default).")
    max_requests_per_second = serializers.FloatField(
        min_value=MIN_REQUESTS_PER_SECOND, max_value=MAX_REQUESTS_PER_SECOND, allow_null=True, required=False,
        help_text="At most this many requests per second to this receiver, across every worker; null: no limit.")
    max_concurrent_runs = serializers.IntegerField(
        min_value=1, max_value=MAX_CONCURRENT_RUNS, allow_null=True, required=False,
        help_text="At most this many sync or message runs sending to it at once; null: no limit.")
    auth_username = serializers.CharField(max_length=200, required=False, allow_blank=True)
    auth_password = _secret_field("Basic Auth password")
    api_key = _secret_field("API key sent as x-api-key")
    headers = _headers_field()


class ConnectionInput(ProjectScopedInput, ConnectionUpdateInput):
    name = serializers.CharField(max_length=200)
    url = serializers.CharField(max_length=2000, help_text="https:// (or http:// where allowed)")


class SigningSecretInput(serializers.Serializer):
    overlap_hours = serializers.FloatField(
        min_value=0, max_value=MAX_SIGNING_OVERLAP_HOURS, default=24,
        help_text="How long the previous secret keeps signing beside the new one (0: stop at once).")


class SigningSecretOutput(serializers.Serializer):
    signing_secret = serializers.CharField(help_text="Shown only now: give it to the receiver.")
    previous_signing_secret_expires_at = serializers.DateTimeField(allow_null=True)


class ConnectionTestOutput(TestSendOutput):
    """A test page's answer (Send a test page)."""


@extend_schema_view(
    list=extend_schema(summary="List connections"),
    retrieve=extend_schema(summary="Read a connection"),
    destroy=extend_schema(summary="Delete a connection", responses={
        204: None, 409: OpenApiResponse(ErrorOutput, "Syncs still use the connection.")}),
    create=extend_schema(summary="Create a connection", request=ConnectionInput, responses={201: ConnectionOutput}),
    partial_update=extend_schema(summary="Change a connection", request=ConnectionUpdateInput,
                                 responses=ConnectionUpdateOutput),
)
class ConnectionViewSet(ServiceCreate, ServiceUpdate,
                        mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin,
                        viewsets.GenericViewSet):
    """Where exports are delivered. Secrets are write-only: reads say only whether one is set."""

    queryset = Connection.objects.none()  # for the schema; get_queryset scopes it to the client
    serializer_class = ConnectionOutput
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    create_input, update_input, output = ConnectionInput, ConnectionUpdateInput, ConnectionOutput
    update_output = ConnectionUpdateOutput  # also says which stored secrets a move of the URL dropped

    def get_queryset(self):
        return connection_list(projects=client_projects(self.request))

    @extend_schema(methods=["POST"], summary="Turn on or rotate request signing", request=SigningSecretInput,
                   responses=SigningSecretOutput)
    @extend_schema(methods=["DELETE"], summary="Turn off request signing", request=None, responses={204: None})
    @action(detail=True, methods=["post", "delete"], url_path="signing-secret")
    def signing_secret(self, request, pk=None):
        """POST: a new Standard Webhooks signing secret, shown only in this answer; the previous one
        keeps signing beside it for `overlap_hours`. DELETE: requests are no longer signed."""
        connection = self.get_object()
        if request.method == "DELETE":
            connection_disable_signing(connection=connection)
            return Response(status=status.HTTP_204_NO_CONTENT)
        data = SigningSecretInput(data=request.data)
        data.is_valid(raise_exception=True)
        secret = connection_rotate_signing_secret(connection=connection, **data.validated_data)
        return Response(SigningSecretOutput({
            "signing_secret": secret,
            "previous_signing_secret_expires_at": connection.previous_signing_secret_expires_at,
        }).data)

    @extend_schema(summary="Send a test page", request=None, responses=ConnectionTestOutput)
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        """POST one harmless page (an empty `add_members` for a test cohort) to the connection's URL
        and report the receiver's answer: status, latency and the start of its body."""
        result = connection_send_test(connection=self.get_object())
        return Response(ConnectionTestOutput(result).data)

    def created(self, data: dict) -> Connection:
        return connection_create(**data)

    def changed(self, connection: Connection, data: dict) -> Connection:
        return connection_update(connection=connection, **data)
