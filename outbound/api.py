"""The API's view of an attempt, shared by sync runs, message runs and alert firings."""

from rest_framework import serializers

from .models import DeliveryAttempt


class DeliveryAttemptOutput(serializers.ModelSerializer):
    class Meta:
        model = DeliveryAttempt
        fields = ["page_number", "page_id", "action", "attempt_number", "outcome", "http_status", "latency_ms",
                  "error", "response_excerpt", "created_at"]
        read_only_fields = fields
