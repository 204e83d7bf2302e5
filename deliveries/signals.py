"""What other apps may follow without deliveries knowing them (alerts)."""

from django.dispatch import Signal

# Sent when a sync run has finished (succeeded, failed or paused the sync):
# kwargs `sync_id`, `run_id`, `status` and `run` (the SyncRun as it finished, so receivers need
# not read it again). Receivers only enqueue work, on commit.
sync_run_finished = Signal()
