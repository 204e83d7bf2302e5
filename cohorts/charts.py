"""A cohort's size over time, with optional per-run changes, as geometry for an inline SVG.

Server-rendered on purpose: the status pages and the admin draw it with no script and no
network (templates/cohorts/size_chart.html). Only coordinates are computed here.

The x axis is ordinal, one slot per point (a run, or a measurement): runs come in bursts and
lulls, and on a time axis a burst of runs would collapse into one column.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

WIDTH = 960
SIZE_PANEL_HEIGHT = 150
CHANGE_PANEL_HEIGHT = 90
LEFT, RIGHT, TOP, GAP, BOTTOM = 64, 16, 14, 36, 30
MAX_BAR_WIDTH = 18
# Up to this many slots, every dot and bar carries its number and every slot its time, so one
# run (or a handful) reads without hovering; more would crowd the axis.
LABELLED_SLOTS = 8


@dataclass(frozen=True)
class RunChange:
    """What one run sent: a full load (`members`) or a diff (adds and removes)."""

    full: bool = False
    members: int = 0
    adds: int = 0
    removes: int = 0


@dataclass(frozen=True)
class SizePoint:
    """One slot of the chart: when, the cohort's size then (if measured), and what a run sent."""

    at: datetime
    size: int | None = None
    run: RunChange | None = None


@dataclass(frozen=True)
class Bar:
    kind: str  # "members", "adds" or "removes": the colour and legend entry
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
    anchor: str = "middle"  # SVG text-anchor where the label is drawn at (x, y)


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
    value_labels: list[Tick] = field(default_factory=list)  # numbers on dots and bars (few slots only)
    dot_radius: float = 3

    @property
    def has_changes(self) -> bool:
        return bool(self.bars)


def size_chart(*, points: Sequence[SizePoint]) -> SizeChart | None:
    """Geometry for these points (any order; drawn oldest first); None when there is nothing to draw."""
    points = sorted(points, key=lambda p: p.at)
    if not points:
        return None
    right = WIDTH - RIGHT
    slot = (right - LEFT) / len(points)

    def x_of(index: int) -> float:
        return round(LEFT + (index + 0.5) * slot, 1)

    size_top, size_bottom = TOP, TOP + SIZE_PANEL_HEIGHT
    sized = [(i, p) for i, p in enumerate(points) if p.size is not None]
    high = max([p.size for _, p in sized] + [1])

    def y_of_size(size: int) -> float:
        return round(size_bottom - size / high * (size_bottom - size_top), 1)

    size_line = " ".join(f"{x_of(i)},{y_of_size(p.size)}" for i, p in sized)
    size_dots = [Tick(x_of(i), y_of_size(p.size), f"{p.size:,} members, {_when(p.at)}") for i, p in sized]
    size_ticks = [Tick(LEFT, y_of_size(v), f"{v:,}") for v in sorted({0, high // 2, high})]
    labelled = len(points) <= LABELLED_SLOTS
    value_labels = [Tick(x_of(i), _above_or_below(y_of_size(p.size), top=size_top), f"{p.size:,}")
                    for i, p in sized if labelled]
    chart = dict(
        width=WIDTH, left=LEFT, right=right, size_top=size_top, size_bottom=size_bottom, size_line=size_line,
        size_dots=size_dots, size_ticks=size_ticks, dot_radius=5 if labelled else 3,
    )
    height = size_bottom + BOTTOM

    runs = [(i, p) for i, p in enumerate(points) if p.run is not None]
    if runs:
        change_top = size_bottom + GAP
        change_bottom = change_top + CHANGE_PANEL_HEIGHT
        zero = round((change_top + change_bottom) / 2, 1)
        half = (change_bottom - change_top) / 2
        peak = max([max(p.run.members, p.run.adds, p.run.removes) for _, p in runs] + [1])
        width = round(min(MAX_BAR_WIDTH, slot * 0.6), 1)

        def length(value: int) -> float:  # at least 1px, so a run that changed nothing still shows
            return max(round(value / peak * half, 1), 1.0)

        bars = []
        for i, point in runs:
            x, run, when = round(x_of(i) - width / 2, 1), point.run, _when(point.at)
            if run.full:
                h = length(run.members)
                label = f"full load of {run.members:,} members, {when}"
                bars.append(Bar("members", x, round(zero - h, 1), width, h, label))
                if labelled:
                    value_labels.append(Tick(x_of(i), round(zero - h - 4, 1), f"{run.members:,}"))
                continue
            h, down = length(run.adds), length(run.removes)
            bars.append(Bar("adds", x, round(zero - h, 1), width, h, f"{run.adds:,} added, {when}"))
            bars.append(Bar("removes", x, zero, width, down, f"{run.removes:,} removed, {when}"))
            if labelled:
                value_labels.append(Tick(x_of(i), round(zero - h - 4, 1), f"+{run.adds:,}"))
                value_labels.append(Tick(x_of(i), round(zero + down + 13, 1), f"−{run.removes:,}"))
        chart.update(
            change_top=change_top, change_bottom=change_bottom, change_zero=zero, bars=bars,
            change_ticks=[Tick(LEFT, change_top, f"+{peak:,}"), Tick(LEFT, zero, "0"),
                          Tick(LEFT, change_bottom, f"−{peak:,}")],
        )
        height = change_bottom + BOTTOM
    axis_y = height - BOTTOM + 18
    if labelled:  # each slot's time under it
        chart["time_ticks"] = [Tick(x_of(i), axis_y, _when(p.at)) for i, p in enumerate(points)]
    else:  # the first and the last, at the ends of the axis
        chart["time_ticks"] = [Tick(LEFT, axis_y, _when(points[0].at), "start"),
                               Tick(right, axis_y, _when(points[-1].at), "end")]
    chart["value_labels"] = value_labels
    chart["summary"] = _summary(points)
    return SizeChart(height=height, **chart)


def _above_or_below(y: float, *, top: float) -> float:
    """A dot's number above it, or below it when above would leave the panel (the largest size)."""
    return round(y - 10 if y - 10 >= top + 12 else y + 19, 1)


def _when(at: datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M}"


def _summary(points: Sequence[SizePoint]) -> str:
    """The chart in words, for screen readers (the SVG's <desc>)."""
    parts = []
    sizes = [p.size for p in points if p.size is not None]
    if sizes:
        parts.append(
            f"Cohort size went from {sizes[0]:,} to {sizes[-1]:,} over {len(sizes)} measurements"
            f" (lowest {min(sizes):,}, highest {max(sizes):,})."
        )
    runs = [p.run for p in points if p.run is not None]
    if runs:
        parts.append(
            f"{len(runs)} run{'s' if len(runs) != 1 else ''} sent {sum(r.members for r in runs):,} members in full loads, "
            f"added {sum(r.adds for r in runs):,} and removed {sum(r.removes for r in runs):,}."
        )
    return " ".join(parts)
