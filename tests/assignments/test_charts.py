"""SVG charts: bins agree with numpy, points sit where the scale puts them, text is escaped."""

from __future__ import annotations

import itertools
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from assignments import charts

SVG = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("bins", [1, 7, 10])
def test_histogram_counts_agree_with_numpy(seed, bins):
    values = [*np.random.default_rng(seed).random(500).tolist(), 0.0, 1.0, 0.5]
    expected, _ = np.histogram(values, bins=bins, range=(0.0, 1.0))
    assert charts.histogram_counts(values, bins, 0.0, 1.0) == expected.tolist()


def test_histogram_bars_carry_their_counts():
    svg = charts.accuracy_histogram([0.05, 0.15, 0.15, 0.95], bins=10)
    root = ET.fromstring(svg)  # well-formed XML
    values = [
        float(r.get("data-value")) for r in root.iter(f"{SVG}rect") if r.get("class") == "bar"
    ]
    assert values == [1, 2, 0, 0, 0, 0, 0, 0, 0, 1]


def test_line_chart_places_points_on_a_linear_scale():
    series = charts.Series("loss", [(1, 2.0), (2, 1.0), (3, 0.5)])
    svg = charts.line_chart([series], title="t", x_label="x", y_label="y", y_range=(0.0, 2.0))
    root = ET.fromstring(svg)
    points = [(float(c.get("cx")), float(c.get("cy"))) for c in root.iter(f"{SVG}circle")]
    frame = charts.Frame(560, 260, 1, 3, 0.0, 2.0)
    # Independent of the drawing code: y pixel = top + (max - v) / (max - min) * plot height.
    top, height = charts.MARGIN_TOP, 260 - charts.MARGIN_TOP - charts.MARGIN_BOTTOM
    for (cx, cy), (x, y) in zip(points, series.points, strict=True):
        assert cy == pytest.approx(top + (2.0 - y) / 2.0 * height, abs=0.06)
        assert cx == pytest.approx(frame.x(x), abs=0.06)
    xs = [p[0] for p in points]
    assert xs[1] - xs[0] == pytest.approx(xs[2] - xs[1], abs=0.1)


def test_rf_chart_draws_the_image_size_line():
    rows = [
        {"name": "input", "size": [1, 1]},
        {"name": "c1", "size": [3, 3]},
        {"name": "c2", "size": [5, 5]},
    ]
    svg = charts.rf_growth_chart(rows, image_size=32)
    root = ET.fromstring(svg)
    [reference] = [line for line in root.iter(f"{SVG}line") if line.get("class") == "reference"]
    assert "image size 32 px" in svg
    circles = [float(c.get("cy")) for c in root.iter(f"{SVG}circle")]
    assert circles == sorted(circles, reverse=True)  # growing fields sit ever higher
    assert float(reference.get("y1")) < min(circles)  # 32 px is above a 5 px field


def test_chart_text_is_escaped():
    svg = charts.line_chart(
        [charts.Series("<script>alert(1)</script>", [(0, 1.0)])],
        title="<b>t</b>", x_label="x", y_label="y",
    )  # fmt: skip
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    ET.fromstring(svg)


def test_no_data_gives_a_placeholder():
    svg = charts.line_chart([charts.Series("a", [])], title="Loss", x_label="x", y_label="y")
    assert "No data yet." in svg


@pytest.mark.parametrize(("low", "high"), [(0, 1), (0, 0.37), (3, 870), (0, 123456)])
def test_nice_ticks_cover_the_range_in_round_steps(low, high):
    ticks = charts.nice_ticks(low, high)
    assert ticks[0] <= low and ticks[-1] >= high
    steps = {round(b - a, 9) for a, b in itertools.pairwise(ticks)}
    assert len(steps) == 1
    mantissa = re.sub(r"0|\.", "", f"{steps.pop():.9g}").lstrip("0")
    assert mantissa in {"1", "2", "5"}


def test_count_axes_use_whole_numbers():
    svg = charts.bar_chart(["a"], [1], title="t", x_label="x", y_label="n")
    ticks = [t.text for t in ET.fromstring(svg).iter(f"{SVG}text") if t.get("text-anchor") == "end"]
    assert ticks and all(t.replace(",", "").isdigit() for t in ticks)


def test_histogram_tooltips_give_the_interval():
    svg = charts.accuracy_histogram([0.95], bins=10)
    assert "90% to 100% inclusive: 1" in svg
