"""Celery options shared by every task of a run or a dispatch (one definition)."""

# A run's task is acknowledged only when it ends, and given back if its worker dies: the
# run's claim or reservations make a second delivery of the task harmless.
TASK_OPTIONS = dict(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
# The per-minute dispatchers enqueue runs; they must end well before the next minute's.
DISPATCH_TASK_OPTIONS = dict(**TASK_OPTIONS, time_limit=120, soft_time_limit=110)
