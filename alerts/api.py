"""REST API for alerts: create, list, read, change, delete; their firings (read-only)."""

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, viewsets

from access.api import acting_person
from cohorts.api_common import (
    MAX_ID,
    ChoiceField,
    ProjectScopedInput,
    ScopedPrimaryKeyRelatedField,
    ServiceCreate,
    ServiceUpdate,
    client_projects,
)
from cohorts.models import Cohort
from deliveries.models import Sync
from integrations.models import Connection
from outbound.api import AttemptHistoryViewSet, DeliveryAttemptOutput

from .models import Alert, AlertFiring
from .selectors import alert_firing_list, alert_list
from .services import alert_create, alert_update

KIND_HELP = "cohort_size and cohort_size_change watch `cohort`; sync_paused and sync_failing watch `sync`."
OPERATOR_HELP = "By kind: " + "; ".join(
    f"{kind}: " + " or ".join(operator.value for operator in operators)
    for kind, operators in Alert.OPERATORS_BY_KIND.items()
) + "."
THRESHOLD_HELP = ("Members (cohort_size), percent (cohort_size_change), failed runs in a row (sync_failing, a whole "
                  "number ≥ 1); 0 for sync_paused.")


# --- Serializers ----------------------------------------------------------------------


class AlertOutput(serializers.ModelSerializer):
    webhooks = serializers.PrimaryKeyRelatedField(many=True, read_only=True,
                                                  help_text="Connections that get the alert payload.")
    is_triggered = serializers.BooleanField(
        read_only=True, help_text="The condition held at the last evaluation (the alert fires again only after it "
                                  "stops holding).")
    last_value = serializers.FloatField(read_only=True, allow_null=True,
                                        help_text="The value seen at the last evaluation (size, % change, runs).")

    class Meta:
        model = Alert
        fields = ["id", "project", "name", "kind", "operator", "threshold", "cohort", "sync", "webhooks", "email",
                  "is_active", "is_triggered", "last_evaluated_at", "last_value", "created_at", "updated_at"]
        read_only_fields = fields


class AlertUpdateInput(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    kind = ChoiceField(choices=Alert.Kind.choices, required=False, help_text=KIND_HELP)
    operator = ChoiceField(choices=Alert.Operator.choices, required=False, help_text=OPERATOR_HELP)
    threshold = serializers.FloatField(min_value=0, required=False, help_text=THRESHOLD_HELP)
    cohort = ScopedPrimaryKeyRelatedField(queryset=Cohort.objects.all(), allow_null=True, required=False,
                                          help_text="The cohort a cohort alert watches (null for sync alerts).")
    sync = ScopedPrimaryKeyRelatedField(queryset=Sync.objects.all(), project_path="cohort__project",
                                        allow_null=True, required=False,
                                        help_text="The sync a sync alert watches (null for cohort alerts).")
    webhooks = ScopedPrimaryKeyRelatedField(
        queryset=Connection.objects.all(), many=True, required=False,
        help_text="Connections of the alert's project that get the custom_alert_triggered payload (replaces the "
                  "list).")
    email = serializers.BooleanField(required=False, help_text="Also email the alert's creator.")
    is_active = serializers.BooleanField(required=False, help_text="Off: never evaluated, never fires.")


class AlertInput(ProjectScopedInput, AlertUpdateInput):
    name = serializers.CharField(max_length=200)
    kind = ChoiceField(choices=Alert.Kind.choices, help_text=KIND_HELP)
    operator = ChoiceField(choices=Alert.Operator.choices, help_text=OPERATOR_HELP)
    threshold = serializers.FloatField(min_value=0, default=0, help_text=THRESHOLD_HELP)
    is_active = None  # a new alert is active


class AlertFiringOutput(serializers.ModelSerializer):
    sentence = serializers.CharField(read_only=True, help_text="What happened, in words.")
    payload = serializers.DictField(read_only=True,
                                    help_text="The custom_alert_triggered body POSTed to the webhooks.")
    sync_run = serializers.PrimaryKeyRelatedField(
        read_only=True, allow_null=True, help_text="The sync run that caused it (read it at `runs/{id}/`).")

    class Meta:
        model = AlertFiring
        fields = ["id", "alert", "fired_at", "current_value", "sentence", "status", "error_message", "sync_run",
                  "payload"]
        read_only_fields = fields


class AlertFiringDetailOutput(AlertFiringOutput):
    attempts = DeliveryAttemptOutput(many=True, read_only=True,
                                     help_text="Each POST try; page_number numbers the webhooks.")

    class Meta(AlertFiringOutput.Meta):
        fields = [*AlertFiringOutput.Meta.fields, "attempts"]
        read_only_fields = fields


class AlertFiringFilter(serializers.Serializer):
    alert = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID,
                                     help_text="Only this alert's firings.")


# --- Views ------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="List alerts"),
    retrieve=extend_schema(summary="Read an alert: its condition, webhooks and last evaluation"),
    destroy=extend_schema(summary="Delete an alert (its firings with it)"),
    create=extend_schema(
        summary="Create an alert", request=AlertInput, responses={201: AlertOutput},
        description="Evaluated at once: a condition that already holds fires without waiting.",
    ),
    partial_update=extend_schema(
        summary="Change an alert", request=AlertUpdateInput, responses=AlertOutput,
        description="Changing the condition (kind, operator, threshold, cohort, sync, is_active) re-arms it.",
    ),
)
class AlertViewSet(ServiceCreate, ServiceUpdate,
                   mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin,
                   viewsets.GenericViewSet):
    """Alerts on cohort sizes and sync health: each fires once per crossing and POSTs the
    custom_alert_triggered payload to its webhooks."""

    queryset = Alert.objects.none()  # for the schema; get_queryset scopes it to the client
    serializer_class = AlertOutput
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    create_input, update_input, output = AlertInput, AlertUpdateInput, AlertOutput

    def get_queryset(self):
        return alert_list(projects=client_projects(self.request)).prefetch_related("webhooks").order_by("id")

    def created(self, data: dict) -> Alert:
        return alert_create(**data, created_by=acting_person(self.request))

    def changed(self, alert: Alert, data: dict) -> Alert:
        return alert_update(alert=alert, **data)


@extend_schema_view(
    list=extend_schema(summary="List alert firings, newest first", parameters=[AlertFiringFilter]),
    retrieve=extend_schema(summary="Read a firing with its payload and delivery attempts"),
)
class AlertFiringViewSet(AttemptHistoryViewSet):
    """Each time an alert fired: the value, the sentence, the payload sent and whether it arrived."""

    queryset = AlertFiring.objects.none()  # for the schema; get_queryset scopes it to the client
    serializer_class = AlertFiringDetailOutput
    list_serializer_class = AlertFiringOutput
    filter_input = AlertFiringFilter

    def history(self, *, filters: dict) -> QuerySet:
        return alert_firing_list(projects=client_projects(self.request), alert_id=filters.get("alert"))
