"""What other apps may follow without cohorts knowing them (messages, alerts)."""

from django.dispatch import Signal

# Sent after a cohort's size was recorded (a sync staged it, or it was computed):
# kwargs `cohort_id`, `size`, `cohort_size_id`. Receivers only enqueue work, on commit.
cohort_recomputed = Signal()
