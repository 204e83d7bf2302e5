"""What apps above the core may follow without the core knowing them (observability's metrics)."""

from django.dispatch import Signal

# Sent after every POST try of any surface (sync page, message batch, alert), from the retry
# loop: kwargs `connection_id` (or None), `attempt` (1-based), `outcome`, `http_status`, `latency_ms`.
page_attempted = Signal()
