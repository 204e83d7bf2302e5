"""What other apps may follow without deliveries knowing them (alerts)."""

from django.dispatch import Signal

# Sent when a sync run has finished (succeeded, failed or paused the sync):
# kwargs `sync_id`, `run_id`, `status`. Receivers only enqueue work, on commit.
sync_run_finished = Signal()

# Sent after every POST try of any surface (sync page, message batch, alert), from the retry
# loop: kwargs `connection_id` (or None), `attempt` (1-based), `outcome`, `http_status`, `latency_ms`.
page_attempted = Signal()
