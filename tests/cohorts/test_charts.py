"""The size chart's geometry (cohorts/charts.py): what the inline SVG is drawn from."""

from datetime import datetime, timedelta, timezone

from cohorts.charts import LABELLED_SLOTS, LEFT, WIDTH, RunChange, SizePoint, size_chart

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)


def coordinates(chart) -> list[tuple[float, float]]:
    return [tuple(map(float, p.split(","))) for p in chart.size_line.split()]


def test_nothing_to_draw_gives_no_chart():
    assert size_chart(points=[]) is None


def test_points_are_drawn_oldest_first_in_equal_slots_largest_at_the_top():
    chart = size_chart(points=[SizePoint(at=T0 + timedelta(hours=1), size=30), SizePoint(at=T0, size=10)])

    (first, last) = coordinates(chart)
    slot = (chart.right - LEFT) / 2
    assert (first[0], last[0]) == (LEFT + slot / 2, chart.right - slot / 2) and chart.width == WIDTH
    assert last[1] == chart.size_top and first[1] > last[1]  # 30 at the top, 10 below it
    assert [t.label for t in chart.size_ticks] == ["0", "15", "30"]
    assert [t.label for t in chart.time_ticks] == ["2026-01-01 12:00", "2026-01-01 13:00"]
    assert not chart.has_changes
    assert "from 10 to 30" in chart.summary


def test_a_burst_of_runs_still_gets_one_column_each():
    points = [SizePoint(at=T0 + timedelta(milliseconds=n), size=n, run=RunChange(adds=1)) for n in range(3)]

    xs = [x for x, _ in coordinates(size_chart(points=points))]

    assert len(set(xs)) == 3 and xs == sorted(xs)


def test_runs_draw_full_loads_up_adds_up_and_removes_down():
    chart = size_chart(points=[
        SizePoint(at=T0, size=100, run=RunChange(full=True, members=100)),
        SizePoint(at=T0 + timedelta(hours=1), size=104, run=RunChange(adds=10, removes=6)),
    ])

    kinds = {bar.kind: bar for bar in chart.bars}
    assert set(kinds) == {"members", "adds", "removes"}
    assert kinds["members"].y + kinds["members"].height == chart.change_zero  # rises from zero
    assert kinds["adds"].height == 10 / 100 * kinds["members"].height
    assert kinds["removes"].y == chart.change_zero  # hangs below zero
    assert kinds["removes"].height < kinds["adds"].height
    assert "added 10 and removed 6" in chart.summary
    assert "full load of 100 members" in kinds["members"].label


def test_a_run_that_changed_nothing_still_shows_a_mark_and_an_unmeasured_one_no_dot():
    chart = size_chart(points=[SizePoint(at=T0, run=RunChange())])

    assert [(b.kind, b.height) for b in chart.bars] == [("adds", 1.0), ("removes", 1.0)]
    assert chart.size_dots == [] and chart.size_line == ""


def test_one_run_is_labelled_in_the_middle_with_its_numbers_and_time():
    chart = size_chart(points=[SizePoint(at=T0, size=25, run=RunChange(full=True, members=25))])

    middle = LEFT + (chart.right - LEFT) / 2
    (tick,) = chart.time_ticks
    assert (tick.x, tick.label, tick.anchor) == (middle, "2026-01-01 12:00", "middle")  # under the point
    (bar,) = chart.bars
    assert bar.x + bar.width / 2 == middle and bar.height == chart.change_zero - chart.change_top
    assert [(label.label, label.x) for label in chart.value_labels] == [("25", middle), ("25", middle)]
    size_label, bar_label = chart.value_labels
    assert chart.size_top < size_label.y < chart.size_bottom  # the top dot's number below it, inside
    assert bar_label.y < bar.y  # the full load's number above its bar
    assert chart.dot_radius > 3


def test_a_diff_run_labels_its_adds_above_and_its_removes_below():
    chart = size_chart(points=[SizePoint(at=T0, size=104, run=RunChange(adds=10, removes=6))])

    adds, removes = (next(label for label in chart.value_labels if label.label == text) for text in ("+10", "−6"))
    assert adds.y < chart.change_zero < removes.y


def test_many_points_keep_only_the_first_and_last_time_and_no_numbers():
    points = [SizePoint(at=T0 + timedelta(hours=n), size=n, run=RunChange(adds=n)) for n in range(LABELLED_SLOTS + 1)]

    chart = size_chart(points=points)

    assert [(t.x, t.anchor) for t in chart.time_ticks] == [(LEFT, "start"), (chart.right, "end")]
    assert chart.value_labels == [] and chart.dot_radius == 3
