"""Chart layout (issue 13, part 3): legends above the plot, the last layer labelled and the
required receptive field drawn, rule names whole on the statistics chart."""

from __future__ import annotations

import itertools
import re

from assignments.charts import MARGIN_TOP, Series, _thinned, line_chart, rf_growth_chart
from assignments.hbar import hbar_chart


def numbers(svg: str, pattern: str) -> list[float]:
    return [float(v) for v in re.findall(pattern, svg)]


def test_the_legend_sits_above_the_plot_area():
    svg = str(
        line_chart(
            [Series("training loss", [(1, 2.0), (2, 1.0)]), Series("validation loss", [(1, 2.5)])],
            title="Loss per epoch",
            x_label="epoch",
            y_label="loss",
        )
    )
    legend = re.findall(
        r'<g class="legend"><rect x="[\d.]+" y="([\d.]+)" width="10" height="10"', svg
    )
    assert len(legend) == 2 and all(float(y) + 10 < MARGIN_TOP for y in legend)
    # Every data point is inside the plot area, under the legend.
    assert min(numbers(svg, r'<circle cx="[\d.]+" cy="([\d.]+)"')) >= MARGIN_TOP


def test_the_last_of_many_layer_labels_is_always_drawn():
    rows = [{"name": f"separable_conv2d_{i}", "size": [3 + 2 * i, 3 + 2 * i]} for i in range(31)]
    svg = str(rf_growth_chart(rows, 32, required=44))
    labels = re.findall(r'<text class="tick-label"[^>]*>([^<]+)</text>', svg)
    assert labels[0] == "separable_conv2d_0" and labels[-1] == "separable_conv2d_30"
    assert 'transform="rotate(-40' in svg  # slanted: long names do not run into each other


def test_the_required_field_is_a_line_at_its_value():
    rows = [{"name": "a", "size": [3, 3]}, {"name": "b", "size": [50, 50]}]
    svg = str(rf_growth_chart(rows, 32, required=44))
    lines = dict(
        (label, float(y))
        for y, label in re.findall(
            r'<line class="reference"[^>]*y1="([\d.]+)"[^>]*/><text class="reference-label"[^>]*>'
            r"([^<]+)</text>",
            svg,
        )
    )
    assert set(lines) == {"image size 32 px", "required 44 px"}
    # y grows downwards: the higher requirement is drawn above the image size, in proportion.
    circles = numbers(svg, r'<circle cx="[\d.]+" cy="([\d.]+)"')  # sizes 3 and 50
    per_px = (circles[0] - circles[1]) / (50 - 3)
    assert abs((lines["image size 32 px"] - lines["required 44 px"]) - 12 * per_px) < 0.2


def test_thinned_labels_keep_both_ends_and_never_crowd():
    labels = [(float(i), f"layer_{i}") for i in range(40)]
    for rotated in (True, False):
        kept = _thinned(labels, 570, rotated=rotated)
        assert kept[0] == labels[0] and kept[-1] == labels[-1]
        gaps = [b[0] - a[0] for a, b in itertools.pairwise(kept)]
        slot = 570 / 39
        room = 14 if rotated else len("layer_39") * 6 + 8
        # Every gap fits a label, the last one too (it may be up to half a step short).
        assert min(gaps) * slot >= room / 2 and all(g * slot >= room for g in gaps[:-1])


def test_rule_names_are_drawn_whole_and_bars_to_scale():
    rules = ["min_receptive_field", "only_separable_convs", "max_params"]
    svg = str(hbar_chart(rules, [0.5, 1.0, 0.25], title="Pass rate per rule", x_max=1.0))
    assert re.findall(r'<text class="bar-label"[^>]*>([^<]+)</text>', svg) == rules
    widths = numbers(svg, r'<rect class="bar" x="[\d.]+" y="[\d.]+" width="([\d.]+)"')
    assert widths[1] == 2 * widths[0] == 4 * widths[2]
    assert "<title>min_receptive_field: 50.0%</title>" in svg


def test_a_requirement_equal_to_the_image_is_one_line_and_close_labels_do_not_collide():
    rows = [{"name": "a", "size": [3, 3]}, {"name": "b", "size": [50, 50]}]
    same = str(rf_growth_chart(rows, 32, required=32))
    assert re.findall(r'class="reference-label"[^>]*>([^<]+)<', same) == [
        "required 32 px = the image"
    ]
    close = str(rf_growth_chart(rows, 32, required=33))
    ys = numbers(close, r'class="reference-label"[^>]*y="([\d.]+)"')
    assert len(ys) == 2 and abs(ys[0] - ys[1]) > 12
