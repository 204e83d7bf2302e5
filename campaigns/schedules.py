"""When a message runs next: its cadence read in its own time zone (pure functions)."""

import calendar
import zoneinfo
from datetime import date, datetime, time, timedelta

from django.conf import settings

SEARCH_DAYS = 366 * 3  # the longest gap between two occurrences (monthly, every 12 months, on the 31st) fits


def next_occurrence(
    *, cadence: str, interval: int, time_of_day: time, tz_name: str, days_of_week: list[int], day_of_month: int,
    anchor: date, after: datetime,
) -> datetime | None:
    """The first occurrence strictly after `after` (an aware datetime), or None for `asap`.

    Occurrences fall at `time_of_day` in `tz_name` on matching local dates: every
    `interval` days (daily), on `days_of_week` every `interval` weeks (weekly), or on
    `day_of_month` (its last day in shorter months) every `interval` months (monthly),
    counted from the `anchor` date (the message's creation). A time skipped by a DST
    change resolves as zoneinfo does (the wall-clock time read with the earlier offset).
    """
    if cadence == "asap":
        return None
    tz = zoneinfo.ZoneInfo(tz_name)
    local_after = after.astimezone(tz)
    day = local_after.date()
    for _ in range(SEARCH_DAYS):
        if _matches(cadence, interval, days_of_week, day_of_month, anchor, day):
            candidate = datetime.combine(day, time_of_day, tzinfo=tz)
            if candidate > local_after:
                return candidate.astimezone(zoneinfo.ZoneInfo("UTC"))
        day += timedelta(days=1)
    return None


def _matches(cadence: str, interval: int, days_of_week: list[int], day_of_month: int, anchor: date, day: date) -> bool:
    interval = max(1, interval)
    if cadence == "daily":
        return (day - anchor).days % interval == 0
    if cadence == "weekly":
        weeks = (day - timedelta(days=day.weekday()) - (anchor - timedelta(days=anchor.weekday()))).days // 7
        return day.weekday() in days_of_week and weeks % interval == 0
    if cadence == "monthly":
        months = (day.year - anchor.year) * 12 + day.month - anchor.month
        last_day = calendar.monthrange(day.year, day.month)[1]
        return day.day == min(day_of_month, last_day) and months % interval == 0
    raise ValueError(f"unknown cadence {cadence!r}")


def message_next_run_at(message, *, after: datetime) -> datetime:
    """When the dispatcher should start this message again.

    Timed cadences: their next occurrence. `asap` messages run each time their cohort is
    recomputed; this is the fallback check for cohorts nothing else recomputes.
    """
    occurrence = next_occurrence(
        cadence=message.cadence, interval=message.interval, time_of_day=message.time_of_day,
        tz_name=message.timezone, days_of_week=list(message.days_of_week or []), day_of_month=message.day_of_month,
        anchor=(message.created_at or after).astimezone(zoneinfo.ZoneInfo(message.timezone)).date(), after=after,
    )
    if occurrence is None:
        return after + timedelta(minutes=settings.COHORTSYNC_MESSAGE_ASAP_CHECK_MINUTES)
    return occurrence

