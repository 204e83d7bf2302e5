"""Auto-pause: a subject (a sync, a user message) whose runs keep failing stops and tells its people.

A 5xx or a timeout never pauses on its own (the next run may succeed); a receiver down for
days would be retried forever and nobody told. So a subject pauses after N failed runs in a
row, or when its failures have lasted H hours with no success between: defaults in settings
(COHORTSYNC_AUTO_PAUSE_FAILED_RUNS, COHORTSYNC_AUTO_PAUSE_HOURS), overridden per subject by
its `auto_pause_failed_runs` / `auto_pause_hours` (0 turns that rule off). The streak is a
counter on the subject (`consecutive_failed_runs`, `failing_since`), reset by a success or a
resume, so no run history is scanned.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import F, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

AUTO_PAUSE_PREFIX = "Paused automatically"
# Upper bounds of the per-subject overrides: a year of runs every minute, ten years of hours.
MAX_AUTO_PAUSE_FAILED_RUNS = 525_600
MAX_AUTO_PAUSE_HOURS = 87_600
STREAK_RESET = {"consecutive_failed_runs": 0, "failing_since": None, "auto_paused": False}


def failure_streak_updates(*, now: datetime) -> dict:
    """The UPDATE that counts one more failed run (atomic: F expressions, no read first)."""
    return {"consecutive_failed_runs": F("consecutive_failed_runs") + 1,
            "failing_since": Coalesce(F("failing_since"), Value(now))}


def auto_pause_reason(*, subject, last_error: str, now: datetime | None = None) -> str:
    """Why `subject` (its streak fields freshly read) must pause now, or "" if it may run on."""
    now = now or timezone.now()
    max_runs = subject.auto_pause_failed_runs
    max_runs = settings.COHORTSYNC_AUTO_PAUSE_FAILED_RUNS if max_runs is None else max_runs
    max_hours = subject.auto_pause_hours
    max_hours = settings.COHORTSYNC_AUTO_PAUSE_HOURS if max_hours is None else max_hours
    failed = subject.consecutive_failed_runs
    last = f" (last error: {last_error})" if last_error else ""
    if max_runs and failed >= max_runs:
        return f"{AUTO_PAUSE_PREFIX}: {failed} run{'s' if failed != 1 else ''} failed in a row{last}"
    since = subject.failing_since
    if max_hours and since is not None and now - since >= timedelta(hours=max_hours):
        return f"{AUTO_PAUSE_PREFIX}: no successful run for {max_hours:g} hours, {failed} failed runs{last}"
    return ""
