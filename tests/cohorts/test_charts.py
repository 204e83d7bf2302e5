"""The size chart's geometry (cohorts/charts.py): what the inline SVG is drawn from."""

from datetime import datetime, timedelta, timezone

from cohorts.charts import LEFT, WIDTH, RunChange, size_chart

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)


def test_nothing_to_draw_gives_no_chart():
    assert size_chart(sizes=[]) is None


def test_sizes_span_the_width_and_the_largest_is_at_the_top():
    chart = size_chart(sizes=[(T0 + timedelta(hours=1), 30), (T0, 10)])  # any order

    (first, last) = [tuple(map(float, p.split(","))) for p in chart.size_line.split()]
    assert (first[0], last[0]) == (LEFT, chart.right) and chart.width == WIDTH
    assert last[1] == chart.size_top and first[1] > last[1]  # 30 at the top, 10 below it
    assert [t.label for t in chart.size_ticks] == ["0", "15", "30"]
    assert not chart.has_changes and chart.height < 260
    assert "from 10 to 30" in chart.summary


def test_a_single_point_sits_in_the_middle():
    chart = size_chart(sizes=[(T0, 5)])

    ((x, _),) = [tuple(map(float, p.split(","))) for p in chart.size_line.split()]
    assert x == (LEFT + chart.right) / 2


def test_runs_draw_full_loads_up_adds_up_and_removes_down():
    chart = size_chart(
        sizes=[(T0, 100), (T0 + timedelta(hours=1), 104)],
        changes=[RunChange(at=T0, full=True, members=100),
                 RunChange(at=T0 + timedelta(hours=1), adds=10, removes=6)],
    )

    kinds = {bar.kind: bar for bar in chart.bars}
    assert set(kinds) == {"members", "adds", "removes"}
    assert kinds["members"].y + kinds["members"].height == chart.change_zero  # rises from zero
    assert kinds["adds"].height == 10 / 100 * kinds["members"].height
    assert kinds["removes"].y == chart.change_zero  # hangs below zero
    assert kinds["removes"].height < kinds["adds"].height
    assert "added 10 and removed 6" in chart.summary
    assert "full load of 100 members" in kinds["members"].label


def test_a_run_that_changed_nothing_still_shows_a_mark():
    chart = size_chart(sizes=[], changes=[RunChange(at=T0, adds=0, removes=0)])

    assert [(b.kind, b.height) for b in chart.bars] == [("adds", 1.0), ("removes", 1.0)]
