"""Server-rendered SVG geometry for the community chart (no JavaScript, nothing inline but numbers).

Usage: `chart = index_chart(report.points, bucket="day")`; the template draws `chart.lines`,
`chart.dots`, `chart.bars`, `chart.y_ticks` and `chart.x_ticks`.

The belonging index lies in [-1, 1]; empty buckets have none, so the line breaks there instead of
pretending the index was 0. Grey bars behind the line show how many comments each bucket had.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from serving.moderation.queries import Point

WIDTH, HEIGHT = 760, 260
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 12, 34


@dataclass(frozen=True)
class Dot:
    x: float
    y: float
    label: str  # the tooltip (<title>), escaped by the template


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Tick:
    pos: float
    label: str


@dataclass
class Chart:
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = WIDTH - RIGHT
    top: int = TOP
    bottom: int = HEIGHT - BOTTOM
    lines: list[str] = field(default_factory=list)  # polyline "points" attributes
    dots: list[Dot] = field(default_factory=list)
    bars: list[Bar] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)
    x_ticks: list[Tick] = field(default_factory=list)
    zero_y: float = 0.0
    empty: bool = True


def _fmt(bucket: str, point: Point) -> str:
    return point.start.strftime("%Y-%m-%d %H:00" if bucket == "hour" else "%Y-%m-%d")


def index_chart(points: Sequence[Point], *, bucket: str) -> Chart:
    chart = Chart()
    n = len(points)
    if n == 0:
        return chart
    plot_w = chart.right - chart.left
    plot_h = chart.bottom - chart.top
    step = plot_w / n

    def x_of(i: int) -> float:
        return round(chart.left + step * (i + 0.5), 1)

    def y_of(value: float) -> float:
        return round(chart.top + (1 - (value + 1) / 2) * plot_h, 1)

    chart.zero_y = y_of(0.0)
    chart.y_ticks = [Tick(y_of(v), f"{v:+.1f}" if v else "0") for v in (1.0, 0.5, 0.0, -0.5, -1.0)]
    most = max((p.counts.count for p in points), default=0)
    run: list[str] = []
    for i, point in enumerate(points):
        if most and point.counts.count:
            h = round(plot_h * 0.35 * point.counts.count / most, 1)
            chart.bars.append(
                Bar(
                    x=round(x_of(i) - step * 0.35, 1),
                    y=round(chart.bottom - h, 1),
                    width=round(step * 0.7, 1),
                    height=h,
                )
            )
        index = point.index
        if index is None:
            if len(run) > 1:
                chart.lines.append(" ".join(run))
            run = []
            continue
        x, y = x_of(i), y_of(index)
        run.append(f"{x},{y}")
        counts = point.counts
        chart.dots.append(
            Dot(
                x,
                y,
                f"{_fmt(bucket, point)}: index {index:+.2f} from {counts.count} comments "
                f"({counts.welcoming_or_curious} welcoming or curious, "
                f"{counts.tags['hostile']} hostile)",
            )
        )
    if len(run) > 1:
        chart.lines.append(" ".join(run))
    chart.empty = not chart.dots
    every = max(1, -(-n // 6))
    chart.x_ticks = [
        Tick(x_of(i), points[i].start.strftime("%m-%d %H:00" if bucket == "hour" else "%Y-%m-%d"))
        for i in range(0, n, every)
    ]
    return chart


def bar_width(share: float | None, full: float = 100.0) -> float:
    """A score or rate as the width of an SVG bar in a 0..full viewBox."""
    if share is None:
        return 0.0
    return round(max(0.0, min(1.0, share)) * full, 1)
