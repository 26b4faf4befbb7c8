"""Server-side SVG charts: no JavaScript chart library, nothing loaded from elsewhere.

Every chart is plain SVG markup built from numbers; every text that comes from data is escaped.
Colours are SVG presentation attributes (not `style=`), so the pages' CSP needs no
`'unsafe-inline'`. Each data point carries a `<title>` with its exact value (a hover tooltip,
and what screen readers read).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

PALETTE = ("#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df")
# The top margin holds the title and, under it, the legend: never over the lines.
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 56, 16, 44, 44
LEGEND_Y = 26
# Rotated category labels (layer names) need more room under the axis.
ROTATED_MARGIN_BOTTOM = 96


@dataclass(frozen=True)
class Series:
    """A named line of (x, y) points; None values are gaps."""

    name: str
    points: Sequence[tuple[float, float | None]]


@dataclass(frozen=True)
class Frame:
    """The mapping from data to pixel coordinates of one chart."""

    width: int
    height: int
    x_min: float
    x_max: float
    y_min: float
    y_max: float
    bottom: int = MARGIN_BOTTOM

    @property
    def plot_width(self) -> float:
        return self.width - MARGIN_LEFT - MARGIN_RIGHT

    @property
    def plot_height(self) -> float:
        return self.height - MARGIN_TOP - self.bottom

    def x(self, value: float) -> float:
        span = self.x_max - self.x_min or 1.0
        return MARGIN_LEFT + (value - self.x_min) / span * self.plot_width

    def y(self, value: float) -> float:
        span = self.y_max - self.y_min or 1.0
        return MARGIN_TOP + (self.y_max - value) / span * self.plot_height


def nice_ticks(low: float, high: float, count: int = 5, *, integer: bool = False) -> list[float]:
    """Round tick values covering [low, high] (steps of 1, 2 or 5 times a power of ten).

    With `integer=True` (counts), steps are at least 1: no "0.2 submissions".
    """
    if high <= low:
        high = low + 1.0
    raw = (high - low) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    if integer:
        step = max(step, 1)
    start = math.floor(low / step) * step
    ticks = [round(start, 10)]
    # Keep going until a tick reaches the top, so the axis always covers the data.
    while ticks[-1] < high - step * 1e-9:
        ticks.append(round(start + len(ticks) * step, 10))
    return ticks


def _fit(label: str, pixels: float) -> str:
    """Shorten an axis label to the room it has (about 6 px per character at 10 px)."""
    room = max(int(pixels // 6), 3)
    return label if len(label) <= room else label[: room - 1] + "\u2026"


def _fmt(value: float) -> str:
    if value == int(value) and abs(value) < 1e6:
        return f"{int(value):,}"
    return f"{value:.3g}"


def _svg_open(width: int, height: int, title: str, css_class: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart {escape(css_class)}" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<text x="{MARGIN_LEFT}" y="18" class="chart-title" font-size="13" '
        f'font-weight="600">{escape(title)}</text>',
    ]


def _axes(frame: Frame, x_label: str, y_label: str, y_ticks: list[float]) -> list[str]:
    parts = []
    left, bottom = MARGIN_LEFT, frame.height - frame.bottom
    for tick in y_ticks:
        y = frame.y(tick)
        parts.append(
            f'<line x1="{left}" x2="{frame.width - MARGIN_RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            'stroke="#d0d7de" stroke-width="1"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="#57606a">{escape(_fmt(tick))}</text>'
        )
    parts.append(
        f'<line x1="{left}" x2="{frame.width - MARGIN_RIGHT}" y1="{bottom}" y2="{bottom}" '
        'stroke="#57606a"/>'
        f'<text x="{left + frame.plot_width / 2:.1f}" y="{frame.height - 6}" '
        f'text-anchor="middle" font-size="11" fill="#57606a">{escape(x_label)}</text>'
        f'<text x="12" y="{MARGIN_TOP + frame.plot_height / 2:.1f}" text-anchor="middle" '
        f'font-size="11" fill="#57606a" transform="rotate(-90 12 '
        f'{MARGIN_TOP + frame.plot_height / 2:.1f})">{escape(y_label)}</text>'
    )
    return parts


def empty_chart(title: str, message: str, *, width: int = 560, height: int = 120) -> SafeString:
    """A placeholder chart that says why there is nothing to draw yet."""
    parts = _svg_open(width, height, title, "chart-empty")
    parts.append(
        f'<text x="{width / 2}" y="{height / 2 + 8}" text-anchor="middle" font-size="12" '
        f'fill="#57606a">{escape(message)}</text></svg>'
    )
    return mark_safe("".join(parts))  # noqa: S308 -- every data text above is escaped


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    width: int = 560,
    height: int = 260,
    y_range: tuple[float, float] | None = None,
    reference: tuple[float, str] | None = None,
    x_tick_labels: dict[float, str] | None = None,
    css_class: str = "line-chart",
    references: Sequence[tuple[float, str, str]] = (),
    rotate_labels: bool = False,
) -> SafeString:
    """A line chart with points, horizontal reference lines and a legend above the plot.

    Args:
        reference: one reference line `(value, label)`, drawn red and dashed.
        references: more reference lines `(value, label, colour)`.
        rotate_labels: slant the x tick labels (long category names such as layer names),
            with room for them under the axis; the last label is always drawn.
    """
    xs = [x for s in series for x, y in s.points if y is not None]
    ys = [y for s in series for _, y in s.points if y is not None]
    if not xs:
        return empty_chart(title, "No data yet.", width=width)
    lines = [*references]
    if reference is not None:
        lines.insert(0, (reference[0], reference[1], "#cf222e"))
    ys.extend(value for value, _, _ in lines)
    if y_range is not None:
        y_min, y_max = y_range
    else:
        ticks = nice_ticks(min(0.0, min(ys)), max(ys))
        y_min, y_max = ticks[0], ticks[-1]
    bottom = ROTATED_MARGIN_BOTTOM if rotate_labels else MARGIN_BOTTOM
    if rotate_labels:
        height += ROTATED_MARGIN_BOTTOM - MARGIN_BOTTOM
    frame = Frame(width, height, min(xs), max(xs), y_min, y_max, bottom=bottom)
    parts = _svg_open(width, height, title, css_class)
    parts += _axes(frame, x_label, y_label, nice_ticks(y_min, y_max))
    tick_labels = sorted((x_tick_labels or {x: _fmt(x) for x in sorted(set(xs))}).items())
    for x, label in _thinned(tick_labels, frame.plot_width, rotated=rotate_labels):
        tx, ty = frame.x(x), height - bottom + 14
        if rotate_labels:
            parts.append(
                f'<text class="tick-label" x="{tx:.1f}" y="{ty:.1f}" text-anchor="end" '
                f'font-size="10" fill="#57606a" transform="rotate(-40 {tx:.1f} {ty:.1f})">'
                f"{escape(_fit(label, 120))}</text>"
            )
        else:
            parts.append(
                f'<text class="tick-label" x="{tx:.1f}" y="{ty:.1f}" text-anchor="middle" '
                f'font-size="10" fill="#57606a">{escape(label)}</text>'
            )
    taken: list[float] = []
    for value, label, colour in lines:
        y = frame.y(value)
        # A label close to another one goes under its line instead of over the other label.
        label_y = y - 4 if all(abs(y - 4 - t) > 12 for t in taken) else y + 13
        taken.append(label_y)
        parts.append(
            f'<line class="reference" x1="{MARGIN_LEFT}" x2="{width - MARGIN_RIGHT}" '
            f'y1="{y:.1f}" y2="{y:.1f}" stroke="{colour}" stroke-dasharray="6 4"/>'
            f'<text class="reference-label" x="{width - MARGIN_RIGHT}" y="{label_y:.1f}" '
            f'text-anchor="end" font-size="11" fill="{colour}">{escape(label)}</text>'
        )
    for index, s in enumerate(series):
        colour = PALETTE[index % len(PALETTE)]
        points = [(x, y) for x, y in s.points if y is not None]
        path = " ".join(f"{frame.x(x):.1f},{frame.y(y):.1f}" for x, y in points)
        parts.append(
            f'<polyline class="series" data-series="{escape(s.name)}" fill="none" '
            f'stroke="{colour}" stroke-width="2" points="{path}"/>'
        )
        for x, y in points:
            parts.append(
                f'<circle cx="{frame.x(x):.1f}" cy="{frame.y(y):.1f}" r="3" fill="{colour}">'
                f"<title>{escape(s.name)} at {escape(_fmt(x))}: {y:.4g}</title></circle>"
            )
        legend_x = MARGIN_LEFT + 8 + index * 150
        parts.append(
            f'<g class="legend"><rect x="{legend_x}" y="{LEGEND_Y}" width="10" height="10" '
            f'fill="{colour}"/><text x="{legend_x + 14}" y="{LEGEND_Y + 9}" font-size="11">'
            f"{escape(s.name)}</text></g>"
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 -- every data text above is escaped


def _thinned(
    labels: Sequence[tuple[float, str]], plot_width: float, *, rotated: bool
) -> list[tuple[float, str]]:
    """The tick labels that fit without overlapping, the first and the last always among them.

    Upright labels need their text's width (about 6 px a character at 10 px); slanted ones
    about 14 px of axis each, whatever their length.
    """
    if len(labels) <= 2:
        return list(labels)
    room = 14.0 if rotated else max(len(label) for _, label in labels) * 6.0 + 8.0
    slot = plot_width / max(len(labels) - 1, 1)
    every = max(1, math.ceil(room / slot))
    kept = [item for i, item in enumerate(labels) if i % every == 0]
    last = len(labels) - 1
    if last % every:
        # The last label matters (where the network ends): it replaces its near neighbour.
        if (last - (last // every) * every) < every / 2 and len(kept) > 1:
            kept.pop()
        kept.append(labels[last])
    return kept


def epoch_charts(epochs: Sequence) -> tuple[SafeString, SafeString]:
    """Loss and accuracy per epoch (training and validation), from `EpochMetric` rows."""

    def series(attr: str, name: str) -> Series:
        return Series(name, [(e.epoch, getattr(e, attr)) for e in epochs])

    loss = line_chart(
        [series("loss", "training loss"), series("val_loss", "validation loss")],
        title="Loss per epoch",
        x_label="epoch",
        y_label="loss",
        css_class="epoch-loss",
    )
    accuracy = line_chart(
        [series("accuracy", "training accuracy"), series("val_accuracy", "validation accuracy")],
        title="Accuracy per epoch",
        x_label="epoch",
        y_label="accuracy",
        y_range=(0.0, 1.0),
        css_class="epoch-accuracy",
    )
    return loss, accuracy


def rf_growth_chart(
    rows: Sequence[dict], image_size: int | None, required: float | None = None
) -> SafeString:
    """Receptive field size after each layer against the input image size.

    Args:
        rows: the receptive field report's per-layer rows (`name`, `size` as [h, w] or int).
        image_size: the larger input side in pixels, drawn as a reference line.
        required: the field the assignment requires (`min_receptive_field`), drawn as a line.
    """
    points = []
    labels = {}
    for index, row in enumerate(rows):
        size = row.get("size", row.get("rf"))
        if isinstance(size, list | tuple):
            size = max(size) if size else None
        if size is None:
            continue
        points.append((float(index), float(size)))
        labels[float(index)] = str(row.get("name", index))
    lines = []
    if required and image_size and float(required) == float(image_size):
        lines.append((float(required), f"required {image_size:,} px = the image", "#cf222e"))
    else:
        if image_size:
            lines.append((float(image_size), f"image size {image_size:,} px", "#57606a"))
        if required:
            lines.append((float(required), f"required {_fmt(float(required))} px", "#cf222e"))
    return line_chart(
        [Series("receptive field", points)],
        title="Receptive field growth per layer",
        x_label="layer",
        y_label="receptive field (px)",
        references=lines,
        x_tick_labels=labels,
        css_class="rf-growth",
        width=640,
        rotate_labels=True,
    )


def histogram_counts(values: Sequence[float], bins: int, low: float, high: float) -> list[int]:
    """Counts per equal-width bin over [low, high]; the last bin includes `high` (as numpy)."""
    counts = [0] * bins
    width = (high - low) / bins
    for value in values:
        if value < low or value > high:
            continue
        index = min(int((value - low) / width), bins - 1)
        counts[index] += 1
    return counts


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    title: str,
    x_label: str,
    y_label: str,
    width: int = 560,
    height: int = 240,
    y_max: float | None = None,
    value_format: str = "{:,.0f}",
    css_class: str = "bar-chart",
    counts: bool = True,
    tooltips: Sequence[str] | None = None,
) -> SafeString:
    """Vertical bars with a `<title>` per bar giving its label and exact value.

    `counts=True` keeps the axis ticks on whole numbers; `tooltips` replace the labels in the
    per-bar titles (e.g. a whole interval where the axis shows its lower edge).
    """
    if not values:
        return empty_chart(title, "No data yet.", width=width)
    top = (
        y_max if y_max is not None else nice_ticks(0.0, max(max(values), 1e-9), integer=counts)[-1]
    )
    frame = Frame(width, height, 0.0, float(len(values)), 0.0, top)
    parts = _svg_open(width, height, title, css_class)
    parts += _axes(frame, x_label, y_label, nice_ticks(0.0, top, integer=counts))
    # At most 60 px per bar: a single day must not become a wall of colour.
    slot = min(frame.plot_width / len(values), 60.0)
    every = max(1, math.ceil(len(values) / 12))
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        x = MARGIN_LEFT + i * slot + slot * 0.1
        y = frame.y(value)
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{slot * 0.8:.1f}" '
            f'height="{frame.y(0.0) - y:.1f}" fill="{PALETTE[0]}" data-value="{value}">'
            f"<title>{escape(tooltips[i] if tooltips else label)}: "
            f"{escape(value_format.format(value))}</title></rect>"
        )
        if i % every == 0:
            parts.append(
                f'<text x="{x + slot * 0.4:.1f}" y="{height - MARGIN_BOTTOM + 14}" '
                f'text-anchor="middle" font-size="10" fill="#57606a">'
                f"{escape(_fit(label, slot * every))}</text>"
            )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 -- every data text above is escaped


def accuracy_histogram(accuracies: Sequence[float], bins: int = 10) -> SafeString:
    """Distribution of test accuracies over [0, 1] in `bins` equal bins."""
    counts = histogram_counts(accuracies, bins, 0.0, 1.0)
    # Axis labels name each bin's lower edge; the tooltip gives the whole interval.
    labels = [f"{i / bins:.0%}" for i in range(bins)]
    intervals = [
        f"{i / bins:.0%} to {(i + 1) / bins:.0%}" + (" inclusive" if i == bins - 1 else "")
        for i in range(bins)
    ]
    return bar_chart(
        labels,
        counts,
        tooltips=intervals,
        title="Test accuracy of finished submissions",
        x_label="test accuracy",
        y_label="submissions",
        css_class="accuracy-histogram",
    )
