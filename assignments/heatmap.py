"""The confusion matrix as an SVG heat map, class names on both axes (same rules as `charts`:
plain markup, escaped text, presentation attributes only, a `<title>` per cell)."""

from __future__ import annotations

from collections.abc import Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# From white to the site's accent colour: share of the true class predicted as each class.
_LOW = (255, 255, 255)
_HIGH = (31, 111, 235)
LABEL_CHARS = 18


def cell_colour(fraction: float) -> str:
    """The fill of a cell holding `fraction` (0..1) of its row."""
    f = min(max(fraction, 0.0), 1.0)
    r, g, b = (round(lo + (hi - lo) * f) for lo, hi in zip(_LOW, _HIGH, strict=True))
    return f"#{r:02x}{g:02x}{b:02x}"


def _short(name: str) -> str:
    return name if len(name) <= LABEL_CHARS else name[: LABEL_CHARS - 1] + "\u2026"


def class_labels(class_names: Sequence[str] | None, count: int) -> list[str]:
    """The dataset's class names when they match the matrix, else `class 0`, `class 1`, ..."""
    if class_names is not None and len(class_names) == count:
        return [str(name) for name in class_names]
    return [f"class {i}" for i in range(count)]


def confusion_heatmap(matrix: Sequence[Sequence[int]], class_names: Sequence[str]) -> SafeString:
    """Rows: the true class; columns: the predicted class; colour: the row's share.

    Args:
        matrix: counts, ``matrix[true][predicted]`` (the evaluate stage's order).
        class_names: one name per class, in label order.

    Returns:
        The SVG markup; each cell's `<title>` gives both names, the count and the row share.
    """
    n = len(matrix)
    cell = 34 if n <= 12 else max(12, 400 // max(n, 1))
    left, top = 7 * LABEL_CHARS + 14, 5 * LABEL_CHARS + 24
    # Rotated column labels lean right: room for the last one.
    width, height = left + n * cell + 4 * LABEL_CHARS + 8, top + n * cell + 8
    title = "Confusion matrix: true class (rows) against predicted class (columns)"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart confusion-matrix" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>',
        f'<text x="{left + n * cell / 2:.0f}" y="14" text-anchor="middle" font-size="12" '
        'font-weight="600">predicted class</text>',
        f'<text x="12" y="{top + n * cell / 2:.0f}" text-anchor="middle" font-size="12" '
        f'font-weight="600" transform="rotate(-90 12 {top + n * cell / 2:.0f})">true class</text>',
    ]
    for j, name in enumerate(class_names):
        x = left + j * cell + cell / 2
        parts.append(
            f'<text x="{x:.1f}" y="{top - 6}" font-size="11" fill="#1f2328" '
            f'transform="rotate(-55 {x:.1f} {top - 6})" class="predicted-label">'
            f"{escape(_short(name))}</text>"
        )
    for i, row in enumerate(matrix):
        total = sum(row) or 1
        y = top + i * cell
        parts.append(
            f'<text x="{left - 6}" y="{y + cell / 2 + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="#1f2328" class="true-label">{escape(_short(class_names[i]))}</text>'
        )
        for j, count in enumerate(row):
            share = count / total
            x = left + j * cell
            ink = "#ffffff" if share > 0.55 else "#1f2328"
            parts.append(
                f'<g class="cell{" diagonal" if i == j else ""}">'
                f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" '
                f'fill="{cell_colour(share)}" stroke="#d0d7de"/>'
                f"<title>true {escape(class_names[i])}, predicted {escape(class_names[j])}: "
                f"{count:,} ({share:.1%} of {escape(class_names[i])})</title>"
            )
            if n <= 12:
                parts.append(
                    f'<text x="{x + cell / 2:.1f}" y="{y + cell / 2 + 4:.1f}" '
                    f'text-anchor="middle" font-size="10" fill="{ink}">{count:,}</text>'
                )
            parts.append("</g>")
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 -- every data text above is escaped
