"""A cohort's size over time, with optional per-run changes, as geometry for an inline SVG.

Server-rendered on purpose: the status pages and the admin draw it with no script and no
network (templates/cohorts/size_chart.html). Only coordinates are computed here.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

WIDTH = 960
SIZE_PANEL_HEIGHT = 150
CHANGE_PANEL_HEIGHT = 90
LEFT, RIGHT, TOP, GAP, BOTTOM = 64, 16, 14, 36, 30


@dataclass(frozen=True)
class RunChange:
    """What one run sent: a full load (`members`) or a diff (adds and removes)."""

    at: datetime
    full: bool = False
    members: int = 0
    adds: int = 0
    removes: int = 0


@dataclass(frozen=True)
class Bar:
    kind: str  # "members", "adds" or "removes": the CSS class and legend entry
    x: float
    y: float
    width: float
    height: float
    label: str


@dataclass(frozen=True)
class Tick:
    x: float
    y: float
    label: str


@dataclass(frozen=True)
class SizeChart:
    width: int
    height: int
    left: int
    right: float
    size_top: float
    size_bottom: float
    size_line: str  # SVG polyline points
    size_dots: list[Tick]
    size_ticks: list[Tick]
    time_ticks: list[Tick]
    summary: str
    change_top: float = 0
    change_bottom: float = 0
    change_zero: float = 0
    bars: list[Bar] = field(default_factory=list)
    change_ticks: list[Tick] = field(default_factory=list)

    @property
    def has_changes(self) -> bool:
        return bool(self.bars)


def size_chart(*, sizes: Sequence[tuple[datetime, int]], changes: Sequence[RunChange] = ()) -> SizeChart | None:
    """Geometry for sizes (oldest first or not) and per-run changes on one time axis; None when empty."""
    sizes = sorted(sizes)
    changes = sorted(changes, key=lambda c: c.at)
    times = [at for at, _ in sizes] + [c.at for c in changes]
    if not times:
        return None
    start, end = min(times), max(times)
    if end - start < timedelta(minutes=2):  # one point, or a burst: give it room in the middle
        start, end = start - timedelta(minutes=1), end + timedelta(minutes=1)
    span = (end - start).total_seconds()
    right = WIDTH - RIGHT

    def x_of(at: datetime) -> float:
        return round(LEFT + (at - start).total_seconds() / span * (right - LEFT), 1)

    size_top, size_bottom = TOP, TOP + SIZE_PANEL_HEIGHT
    high = max([size for _, size in sizes] + [1])
    low = 0

    def y_of_size(size: int) -> float:
        return round(size_bottom - (size - low) / (high - low) * (size_bottom - size_top), 1)

    points = [(x_of(at), y_of_size(size), size, at) for at, size in sizes]
    size_line = " ".join(f"{x},{y}" for x, y, _, _ in points)
    size_dots = [Tick(x, y, f"{size} members at {at:%Y-%m-%d %H:%M} UTC") for x, y, size, at in points]
    size_ticks = [Tick(LEFT, y_of_size(v), f"{v:,}") for v in sorted({low, high // 2, high})]

    height = size_bottom + BOTTOM
    chart = dict(
        width=WIDTH, left=LEFT, right=right, size_top=size_top, size_bottom=size_bottom, size_line=size_line,
        size_dots=size_dots, size_ticks=size_ticks,
    )
    if changes:
        change_top = size_bottom + GAP
        change_bottom = change_top + CHANGE_PANEL_HEIGHT
        zero = (change_top + change_bottom) / 2
        peak = max([max(c.members, c.adds, c.removes) for c in changes] + [1])
        half = (change_bottom - change_top) / 2
        width = max(3.0, min(14.0, (right - LEFT) / (len(changes) * 2.5)))
        bars = []
        for change in changes:
            x = x_of(change.at) - width / 2
            when = f"{change.at:%Y-%m-%d %H:%M} UTC"
            if change.full:
                kind, value, label = "members", change.members, f"full load of {change.members} members, {when}"
            else:
                kind, value, label = "adds", change.adds, f"{change.adds} added, {when}"
            h = round(value / peak * half, 1)  # at least a 1px mark, so a run with no change still shows
            bars.append(Bar(kind, round(x, 1), round(zero - max(h, 1.0), 1), round(width, 1), max(h, 1.0), label))
            if not change.full:
                h = round(change.removes / peak * half, 1)
                bars.append(Bar("removes", round(x, 1), round(zero, 1), round(width, 1), max(h, 1.0),
                                f"{change.removes} removed, {when}"))
        chart.update(
            change_top=change_top, change_bottom=change_bottom, change_zero=round(zero, 1), bars=bars,
            change_ticks=[Tick(LEFT, change_top, f"+{peak:,}"), Tick(LEFT, zero, "0"),
                          Tick(LEFT, change_bottom, f"−{peak:,}")],
        )
        height = change_bottom + BOTTOM
    axis_y = height - BOTTOM + 18
    chart["time_ticks"] = [Tick(LEFT, axis_y, f"{start:%Y-%m-%d %H:%M}"), Tick(right, axis_y, f"{end:%Y-%m-%d %H:%M}")]
    chart["summary"] = _summary(sizes, changes)
    return SizeChart(height=height, **chart)


def _summary(sizes: Sequence[tuple[datetime, int]], changes: Sequence[RunChange]) -> str:
    """The chart in one sentence, for screen readers (the SVG's <desc>)."""
    parts = []
    if sizes:
        parts.append(
            f"Cohort size went from {sizes[0][1]:,} to {sizes[-1][1]:,} over {len(sizes)} measurements"
            f" (lowest {min(s for _, s in sizes):,}, highest {max(s for _, s in sizes):,})."
        )
    if changes:
        parts.append(
            f"{len(changes)} runs sent {sum(c.members for c in changes):,} members in full loads, "
            f"added {sum(c.adds for c in changes):,} and removed {sum(c.removes for c in changes):,}."
        )
    return " ".join(parts)
