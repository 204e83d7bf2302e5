"""The API's view of an attempt, shared by sync runs, message runs and alert firings."""

from django.db.models import Prefetch, QuerySet
from rest_framework import mixins, serializers, viewsets

from .autopause import MAX_AUTO_PAUSE_FAILED_RUNS, MAX_AUTO_PAUSE_HOURS
from .models import DeliveryAttempt


class DeliveryAttemptOutput(serializers.ModelSerializer):
    class Meta:
        model = DeliveryAttempt
        fields = ["page_number", "page_id", "action", "attempt_number", "outcome", "http_status", "latency_ms",
                  "error", "response_excerpt", "created_at"]
        read_only_fields = fields


class TestSendOutput(serializers.Serializer):
    """One test POST's answer, as the retry policy classifies it (nothing is recorded)."""

    outcome = serializers.CharField(help_text="success, transient, pause or fail (how a run would take it)")
    http_status = serializers.IntegerField(allow_null=True, help_text="The receiver's status; null if none came.")
    latency_ms = serializers.IntegerField()
    response_excerpt = serializers.CharField(allow_blank=True, help_text="The start of the receiver's answer.")
    message = serializers.CharField(allow_blank=True)


class AttemptHistoryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """A read-only history of runs (or firings), newest first: the list narrowed by
    `filter_input` (query parameters), one of them with its attempts in page order.

    The app gives its serializers (`list_serializer_class`, `serializer_class` for one) and
    `history(filters=...)`, already scoped to the projects the client acts for.
    """

    list_serializer_class: type[serializers.Serializer]
    filter_input: type[serializers.Serializer]

    def history(self, *, filters: dict) -> QuerySet:
        raise NotImplementedError

    def get_serializer_class(self):
        return self.list_serializer_class if self.action == "list" else self.serializer_class

    def get_queryset(self):
        if self.action != "list":
            attempts = DeliveryAttempt.objects.order_by("page_number", "attempt_number", "id")
            return self.history(filters={}).prefetch_related(Prefetch("attempts", queryset=attempts))
        query = self.filter_input(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        return self.history(filters=query.validated_data)


class AutoPauseInput(serializers.Serializer):
    """A sync's or a user message's own auto-pause limits (outbound.autopause)."""

    auto_pause_failed_runs = serializers.IntegerField(
        min_value=0, max_value=MAX_AUTO_PAUSE_FAILED_RUNS, allow_null=True, required=False,
        help_text="Pause after this many failed runs in a row; null: COHORTSYNC_AUTO_PAUSE_FAILED_RUNS; 0: never.")
    auto_pause_hours = serializers.IntegerField(
        min_value=0, max_value=MAX_AUTO_PAUSE_HOURS, allow_null=True, required=False,
        help_text="Pause after this many hours of failures without a success; null: COHORTSYNC_AUTO_PAUSE_HOURS; "
                  "0: never.")


AUTO_PAUSE_OUTPUT_FIELDS = ["consecutive_failed_runs", "failing_since", "auto_paused", "auto_pause_failed_runs",
                            "auto_pause_hours"]
