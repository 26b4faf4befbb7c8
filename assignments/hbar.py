"""Horizontal bars: one row per category with its whole name at the left (rule names such as
`min_receptive_field` stay readable), the value at the bar's end (same rules as `charts`)."""

from __future__ import annotations

from collections.abc import Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from assignments.charts import PALETTE, empty_chart

ROW, TOP, RIGHT = 26, 30, 70
CHAR_PX = 6.6  # at font-size 11


def hbar_chart(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    title: str,
    x_max: float,
    value_format: str = "{:.1%}",
    width: int = 560,
    css_class: str = "hbar-chart",
) -> SafeString:
    """Bars from a common left edge; each row names its category in full.

    Args:
        labels: category names (drawn whole; the left column is as wide as the longest).
        values: one value per label, from 0 to `x_max`.
        title: the chart's title (also its accessible name).
        x_max: the value of a full-width bar.
        value_format: how each value is written at its bar's end and in its `<title>`.
    """
    if not values:
        return empty_chart(title, "No data yet.", width=width)
    left = min(int(max(len(label) for label in labels) * CHAR_PX) + 16, width // 2)
    span = width - left - RIGHT
    height = TOP + ROW * len(values) + 8
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart {escape(css_class)}" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>',
        f'<text x="4" y="18" font-size="13" font-weight="600">{escape(title)}</text>',
    ]
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = TOP + i * ROW
        length = max(0.0, min(value / x_max, 1.0)) * span if x_max else 0.0
        text = value_format.format(value)
        parts.append(
            f'<text class="bar-label" x="{left - 8}" y="{y + 15}" text-anchor="end" '
            f'font-size="11" fill="#1f2328">{escape(label)}</text>'
            f'<rect x="{left}" y="{y + 3}" width="{span}" height="{ROW - 8}" fill="#eaeef2"/>'
            f'<rect class="bar" x="{left}" y="{y + 3}" width="{length:.1f}" height="{ROW - 8}" '
            f'fill="{PALETTE[0]}" data-value="{value}"><title>{escape(label)}: '
            f"{escape(text)}</title></rect>"
            f'<text x="{left + span + 6}" y="{y + 15}" font-size="11" fill="#57606a">'
            f"{escape(text)}</text>"
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 -- every data text above is escaped
