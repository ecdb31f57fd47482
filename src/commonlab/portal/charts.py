"""Small bar charts drawn on the server: pure geometry that the templates turn into inline SVG,
so the pages need no JavaScript and every chart carries its numbers as text too."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Bar", "BarChart", "column_chart", "row_chart"]


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    x: float
    y: float
    width: float
    height: float
    # Where the label and value text go (SVG user units).
    label_x: float
    label_y: float
    value_x: float
    value_y: float


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    bars: tuple[Bar, ...]
    maximum: int
    # Axis line (x1, y1, x2, y2) under columns or beside rows.
    axis: tuple[float, float, float, float]

    @property
    def total(self) -> int:
        return sum(bar.value for bar in self.bars)


def row_chart(
    data: Sequence[tuple[str, int]], *, width: int = 480, row: int = 28, label_width: int = 150
) -> BarChart:
    """Horizontal bars, one row per item: for a few named categories (institutions by kind)."""
    maximum = max((value for _, value in data), default=0)
    plot = width - label_width - 48  # room on the right for the value text
    bars = []
    for i, (label, value) in enumerate(data):
        y = i * row + 4
        length = plot * value / maximum if maximum else 0.0
        bars.append(
            Bar(
                label=label,
                value=value,
                x=label_width,
                y=y,
                width=round(max(length, 1.0 if value else 0.0), 2),
                height=row - 8,
                label_x=label_width - 8,
                label_y=y + (row - 8) / 2 + 5,
                value_x=round(label_width + length + 6, 2),
                value_y=y + (row - 8) / 2 + 5,
            )
        )
    height = max(len(data), 1) * row + 4
    return BarChart(width, height, tuple(bars), maximum, (label_width, 0, label_width, height))


def column_chart(
    data: Sequence[tuple[str, int]], *, width: int = 640, height: int = 160, label_every: int = 7
) -> BarChart:
    """Vertical columns in order: for a series over time (entries per day)."""
    maximum = max((value for _, value in data), default=0)
    top, bottom = 18, 22  # room for the peak's value above, dates below
    plot_height = height - top - bottom
    slot = width / max(len(data), 1)
    bars = []
    for i, (label, value) in enumerate(data):
        length = plot_height * value / maximum if maximum else 0.0
        length = max(length, 1.5 if value else 0.0)  # a day with one entry stays visible
        x = i * slot + slot * 0.15
        y = top + plot_height - length
        # Count from the newest, so the last column is always labelled and none collide.
        show_label = (len(data) - 1 - i) % label_every == 0
        bars.append(
            Bar(
                label=label if show_label else "",
                value=value,
                x=round(x, 2),
                y=round(y, 2),
                width=round(slot * 0.7, 2),
                height=round(length, 2),
                label_x=round(x + slot * 0.35, 2),
                label_y=height - 6,
                value_x=round(x + slot * 0.35, 2),
                value_y=round(y - 4, 2),
            )
        )
    baseline = top + plot_height
    return BarChart(width, height, tuple(bars), maximum, (0, baseline, width, baseline))
