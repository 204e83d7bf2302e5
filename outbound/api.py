"""The API's view of an attempt, shared by sync runs, message runs and alert firings."""

from rest_framework import serializers

from .autopause import MAX_AUTO_PAUSE_FAILED_RUNS, MAX_AUTO_PAUSE_HOURS
from .models import DeliveryAttempt


class DeliveryAttemptOutput(serializers.ModelSerializer):
    class Meta:
        model = DeliveryAttempt
        fields = ["page_number", "page_id", "action", "attempt_number", "outcome", "http_status", "latency_ms",
                  "error", "response_excerpt", "created_at"]
        read_only_fields = fields


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
