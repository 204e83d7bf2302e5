"""Cadences read in the message's own time zone (pure functions: no database)."""

import zoneinfo
from datetime import date, datetime, time

import pytest

from campaigns.schedules import next_occurrence

UTC = zoneinfo.ZoneInfo("UTC")
LA = zoneinfo.ZoneInfo("America/Los_Angeles")


def occurrence(after, *, cadence="weekly", interval=1, at=time(9, 0), tz="America/Los_Angeles", days=(2,),
               day_of_month=1, anchor=date(2026, 11, 2)):
    return next_occurrence(cadence=cadence, interval=interval, time_of_day=at, tz_name=tz, days_of_week=list(days),
                           day_of_month=day_of_month, anchor=anchor, after=after)


def test_9am_pacific_every_wednesday():
    # Seed 003's example. Wednesday 25 Nov 2026, 09:00 PST is 17:00 UTC.
    assert occurrence(datetime(2026, 11, 23, 12, 0, tzinfo=UTC)) == datetime(2026, 11, 25, 17, 0, tzinfo=UTC)
    # Strictly after: at the very occurrence, the next one is a week later.
    assert occurrence(datetime(2026, 11, 25, 17, 0, tzinfo=UTC)) == datetime(2026, 12, 2, 17, 0, tzinfo=UTC)


def test_the_wall_clock_time_holds_across_a_dst_change():
    # 1 Nov 2026: LA leaves daylight time; 09:00 is 16:00 UTC before and 17:00 UTC after.
    assert occurrence(datetime(2026, 10, 27, 0, 0, tzinfo=UTC)) == datetime(2026, 10, 28, 16, 0, tzinfo=UTC)
    assert occurrence(datetime(2026, 10, 29, 0, 0, tzinfo=UTC)) == datetime(2026, 11, 4, 17, 0, tzinfo=UTC)


def test_every_other_week_counts_from_the_anchor_week():
    after = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)  # the anchor's week (Mon 2 Nov)
    first = occurrence(after, interval=2, days=(0, 3), tz="UTC")
    second = occurrence(first, interval=2, days=(0, 3), tz="UTC")
    third = occurrence(second, interval=2, days=(0, 3), tz="UTC")
    assert [first.date(), second.date(), third.date()] == [date(2026, 11, 2), date(2026, 11, 5), date(2026, 11, 16)]


def test_daily_every_three_days():
    after = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
    assert occurrence(after, cadence="daily", interval=3, tz="UTC") == datetime(2026, 11, 5, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(("after", "expected"), [
    (datetime(2026, 1, 31, 10, 0, tzinfo=UTC), datetime(2026, 2, 28, 9, 0, tzinfo=UTC)),  # the month's last day
    (datetime(2026, 2, 28, 10, 0, tzinfo=UTC), datetime(2026, 3, 31, 9, 0, tzinfo=UTC)),
])
def test_monthly_on_the_31st_falls_on_shorter_months_last_day(after, expected):
    assert occurrence(after, cadence="monthly", day_of_month=31, tz="UTC", anchor=date(2026, 1, 1)) == expected


def test_asap_has_no_occurrences():
    assert occurrence(datetime(2026, 11, 2, tzinfo=UTC), cadence="asap") is None
