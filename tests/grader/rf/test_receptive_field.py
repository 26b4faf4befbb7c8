"""Receptive fields on hand-built graphs: course tables worked out by hand, unions, refusals.

The expected rows below were computed with pencil and paper from the Distill recurrences
(``j_out = j_in * s``, ``r_out = r_in + (k_eff - 1) * j_in``, ``start_out = start_in - p * j_in``)
and TensorFlow's ``same`` padding rule, not printed by the code under test.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from grader.errors import ReceptiveFieldError
from grader.graph import Layer, ModelGraph, Node
from grader.graph_builder import build_graph
from grader.loading import load_model_config
from grader.receptive_field import (
    compute_receptive_field,
    default_end_point,
    dilation_target,
    format_table,
    growth,
    rf_if_appended,
)


class GraphSketch:
    """Builds a `ModelGraph` by hand; spatial output sizes left ``None`` unless given."""

    def __init__(self, *input_shapes: tuple[int | None, ...]) -> None:
        self.nodes: list[Node] = []
        self.inputs: list[int] = []
        for index, shape in enumerate(input_shapes):
            name = "image" if index == 0 else f"input_{index}"
            self.inputs.append(self._node(name, "InputLayer", {}, (), shape))

    def _node(self, name: str, cls: str, config: dict[str, Any], inputs: tuple[int, ...],
              out: tuple[int | None, ...]) -> int:  # fmt: skip
        shapes = tuple(self.nodes[i].output_shape for i in inputs)
        node = Node(len(self.nodes), Layer(name, cls, config), inputs, shapes, out)
        self.nodes.append(node)
        return node.id

    def add(self, cls: str, *inputs: int, name: str | None = None,
            out: tuple[int | None, ...] | None = None, **config: Any) -> int:  # fmt: skip
        """Call a layer; the output keeps the first input's rank with unknown spatial sizes."""
        if out is None:
            rank = len(self.nodes[inputs[0]].output_shape)
            out = (None,) * (rank - 1) + (8,)
        return self._node(name or f"{cls.lower()}_{len(self.nodes)}", cls, config, inputs, out)

    def graph(self, *outputs: int) -> ModelGraph:
        return ModelGraph("sketch", "Functional", tuple(self.nodes), tuple(self.inputs),
                          outputs or (len(self.nodes) - 1,))  # fmt: skip


def conv(g: GraphSketch, x: int, k: Any = 3, s: Any = 1, d: Any = 1, padding: str = "same",
         name: str | None = None, cls: str = "Conv2D") -> int:  # fmt: skip
    return g.add(cls, x, name=name, kernel_size=k, strides=s, dilation_rate=d, padding=padding)


def row_tuple(row: dict[str, Any]) -> tuple[Any, ...]:
    """A row's height-axis values in the order of the hand tables."""
    keys = ("layer", "k", "d", "s", "p", "n_in", "n_out", "j_in", "j_out", "r_in", "r_out",
            "start_in", "start_out")  # fmt: skip
    return tuple(row[key] if key == "layer" else row[key][0] for key in keys)


# layer, k, d, s, p, n_in, n_out, j_in, j_out, r_in, r_out, start_in, start_out
PLAIN_3X3 = [
    ("image", 1, 1, 1, 0, 32, 32, 1, 1, 1, 1, 0, 0),
    ("c1", 3, 1, 1, 1, 32, 32, 1, 1, 1, 3, 0, -1),
    ("c2", 3, 1, 1, 1, 32, 32, 1, 1, 3, 5, -1, -2),
    ("c3", 3, 1, 1, 1, 32, 32, 1, 1, 5, 7, -2, -3),
]
# Stride 2 with `same` on 32: pad_total = max((16 - 1) * 2 + 3 - 32, 0) = 1, so pad_left = 0.
STRIDED = [
    ("image", 1, 1, 1, 0, 32, 32, 1, 1, 1, 1, 0, 0),
    ("c1", 3, 1, 1, 1, 32, 32, 1, 1, 1, 3, 0, -1),
    ("c2", 3, 1, 2, 0, 32, 16, 1, 2, 3, 5, -1, -1),
    ("c3", 3, 1, 1, 1, 16, 16, 2, 2, 5, 9, -1, -3),
    ("pool", 2, 1, 2, 0, 16, 8, 2, 4, 9, 11, -3, -3),
    ("c4", 3, 1, 1, 0, 8, 6, 4, 4, 11, 19, -3, -3),
]
# Dilation d widens a 3-tap kernel to k_eff = 2d + 1; `same` pads k_eff // 2 on the left.
DILATED = [
    ("image", 1, 1, 1, 0, 32, 32, 1, 1, 1, 1, 0, 0),
    ("c1", 3, 1, 1, 1, 32, 32, 1, 1, 1, 3, 0, -1),
    ("c2", 3, 2, 1, 2, 32, 32, 1, 1, 3, 7, -1, -3),
    ("c3", 3, 4, 1, 4, 32, 32, 1, 1, 7, 15, -3, -7),
    ("c4", 3, 2, 1, 0, 32, 28, 1, 1, 15, 19, -7, -7),
]


def plain_stack() -> ModelGraph:
    g = GraphSketch((32, 32, 3))
    x = conv(g, 0, name="c1")
    x = conv(g, x, name="c2")
    conv(g, x, name="c3")
    return g.graph()


def strided_stack() -> ModelGraph:
    g = GraphSketch((32, 32, 3))
    x = conv(g, 0, name="c1")
    x = conv(g, x, s=2, name="c2")
    x = conv(g, x, name="c3")
    x = g.add("MaxPooling2D", x, name="pool", pool_size=[2, 2], strides=None, padding="valid")
    conv(g, x, padding="valid", name="c4")
    return g.graph()


def dilated_stack() -> ModelGraph:
    g = GraphSketch((32, 32, 3))
    x = conv(g, 0, name="c1")
    x = conv(g, x, d=2, name="c2")
    x = conv(g, x, d=4, name="c3")
    conv(g, x, d=2, padding="valid", name="c4")
    return g.graph()


@pytest.mark.parametrize(
    ("build", "table"),
    [(plain_stack, PLAIN_3X3), (strided_stack, STRIDED), (dilated_stack, DILATED)],
    ids=["plain-3x3", "stride-2", "dilated"],
)
def test_rows_match_hand_calculation(build, table):
    report = compute_receptive_field(build(), end_point=table[-1][0]).to_dict()
    assert [row_tuple(row) for row in report["layers"]] == table
    last = table[-1]
    assert report["size"] == [last[10], last[10]]
    assert report["jump"] == [last[8], last[8]]
    assert report["start"] == [last[12], last[12]]
    assert report["global"] is False
    assert report["input_size"] == [32, 32]


def test_intermediate_end_point_stops_the_table():
    report = compute_receptive_field(strided_stack(), end_point="c3").to_dict()
    assert [row_tuple(row) for row in report["layers"]] == STRIDED[:4]


def test_axes_are_independent():
    # 1x5 kernel, stride (2, 1), on a 20x9 input: height sees 1 row per unit, width 5 columns.
    g = GraphSketch((20, 9, 1))
    x = g.add("Conv2D", 0, name="c", kernel_size=[1, 5], strides=[2, 1], padding="valid")
    conv(g, x, k=[3, 1], name="c2", padding="valid")
    report = compute_receptive_field(g.graph()).to_dict()
    # height: 1 -> 1 (j 2) -> 1 + 2 * 2 = 5; width: 5 (j 1) -> 5.
    assert report["size"] == [5, 5]
    assert report["jump"] == [2, 1]
    assert report["output_size"] == [8, 5]


def test_merge_takes_union_of_shifted_paths_not_max_of_sizes():
    # Path A: pad two on the left, 3x3 valid: unit u sees [u - 2, u].
    # Path B: pad two on the right, 3x3 valid: unit u sees [u, u + 2].
    # Both have size 3, but Add's unit u sees [u - 2, u + 2]: size 5.
    g = GraphSketch((16, 16, 1))
    a = g.add("ZeroPadding2D", 0, name="pad_a", padding=[[2, 0], [2, 0]])
    a = conv(g, a, padding="valid", name="conv_a")
    b = g.add("ZeroPadding2D", 0, name="pad_b", padding=[[0, 2], [0, 2]])
    b = conv(g, b, padding="valid", name="conv_b")
    g.add("Add", a, b, name="add")
    report = compute_receptive_field(g.graph(), end_point="add")
    sizes = {row.layer: row.r_out[0] for row in report.rows}
    assert sizes["conv_a"] == sizes["conv_b"] == 3
    assert report.size == (5, 5)
    assert report.start == (-2, -2)
    assert report.interval((4, 4)) == ((2, 6), (2, 6))
    add_row = report.rows[-1]
    assert add_row.r_in == (3, 3) and add_row.r_out == (5, 5)
    assert growth(report)[-1]["added"] == [2, 2]


def test_residual_block_union_equals_main_branch():
    g = GraphSketch((32, 32, 3))
    stem = conv(g, 0, name="stem")
    x = conv(g, stem, name="a")
    x = conv(g, x, name="b")
    g.add("Add", stem, x, name="add")
    report = compute_receptive_field(g.graph(), end_point="add")
    assert report.size == (7, 7)
    assert report.start == (-3, -3)
    by_layer = {row.layer: row for row in report.rows}
    assert by_layer["stem"].on_every_path and by_layer["add"].on_every_path
    assert not by_layer["a"].on_every_path


def _footprint_rows(graph: ModelGraph, end_point: str, axis: int = 0) -> list[set[int]]:
    """Per unit along ``axis`` (the other axes at 0), the image positions the grader says it
    sees along ``axis``."""
    from grader.rf.footprint import trace

    node = graph.nodes_of(end_point)[-1]
    union = trace(graph, node.id, graph.inputs[0]).proj[axis].any(axis=-2)
    line = union[(0,) * axis] if axis else union
    line = line.reshape(line.shape[0], -1, line.shape[-1])[:, 0]
    return [set(np.nonzero(row)[0].tolist()) for row in line]


def test_merge_of_different_jumps_has_no_formula_but_an_exact_footprint():
    g = GraphSketch((16, 16, 1))
    a = g.add("MaxPooling2D", 0, name="pool", pool_size=[2, 2], strides=None, padding="valid")
    b = conv(g, 0, k=9, padding="valid", name="wide")
    g.add("Concatenate", a, b, name="cat", axis=-1)
    report = compute_receptive_field(g.graph(), end_point="cat")
    assert report.size == (None, None)
    assert report.formula_note is not None
    assert "merges inputs whose jumps differ along axis 0: 2 from `pool`, 1 from `wide`" in (
        report.formula_note
    )
    # Unit u reads pixels 2u..2u+1 through the pooling and u..u+8 through the 9-wide window.
    expected = [{2 * u, 2 * u + 1} | set(range(u, u + 9)) for u in range(8)]
    assert _footprint_rows(g.graph(), "cat") == expected
    assert report.footprint is not None
    assert report.footprint.min == report.footprint.max == (9, 9)


def test_concatenation_along_a_spatial_axis_puts_fields_side_by_side():
    g = GraphSketch((16, 16, 1))
    a = conv(g, 0, name="a")
    b = conv(g, 0, k=[1, 3], name="b")
    g.add("Concatenate", a, b, name="cat", axis=1)
    report = compute_receptive_field(g.graph(), end_point="cat")
    assert report.size == (None, None) and "concatenates along axis 1" in report.formula_note
    # Rows 0..15 come from `a` (3 rows, 2 at the borders), rows 16..31 from `b` (1 row).
    rows = _footprint_rows(g.graph(), "cat")
    assert rows[:16] == [set(range(max(u - 1, 0), min(u + 2, 16))) for u in range(16)]
    assert rows[16:] == [{u} for u in range(16)]
    assert report.footprint is not None
    assert (report.footprint.min, report.footprint.max) == ((1, 2), (3, 3))


@pytest.mark.parametrize(
    ("cls", "config", "out", "why"),
    [
        ("UpSampling2D", {"size": [2, 3]}, (32, 48, 8), "it repeats positions"),
        ("Conv2DTranspose", {"kernel_size": [3, 3], "strides": [2, 2], "padding": "same"},
         (32, 32, 8), "a transposed convolution spreads each position"),
        ("Reshape", {"target_shape": [16, 8, 16]}, (16, 8, 16), "it rearranges values"),
        ("Permute", {"dims": [2, 1, 3]}, (16, 16, 8), "it permutes axes"),
    ],
)  # fmt: skip
def test_layers_that_remap_positions_have_no_formula_and_say_why(cls, config, out, why):
    g = GraphSketch((16, 16, 1))
    x = g.add("Conv2D", 0, name="c1", out=(16, 16, 8), kernel_size=3, padding="same")
    g.add(cls, x, name="odd", out=out, **config)
    report = compute_receptive_field(g.graph(), end_point="odd")
    assert report.size == (None, None) and report.jump == (None, None)
    assert report.formula_note.startswith(f"Layer `odd` ({cls}) has no sliding window: {why}")
    assert report.footprint is not None  # exact, per position (checked with TensorFlow)


def test_nearest_up_sampling_footprint_by_hand():
    g = GraphSketch((8, 8, 1))
    x = conv(g, 0, name="c1")
    g.add("UpSampling2D", x, name="up", size=[2, 2])
    # Output row u repeats conv row u // 2, which sees rows u // 2 - 1 .. u // 2 + 1.
    expected = [set(range(max(u // 2 - 1, 0), min(u // 2 + 2, 8))) for u in range(16)]
    assert _footprint_rows(g.graph(), "up") == expected
    report = compute_receptive_field(g.graph(), end_point="up")
    assert report.footprint.min == (2, 2) and report.footprint.max == (3, 3)
    assert report.footprint.varies


@pytest.mark.parametrize(
    ("cls", "config", "reason"),
    [
        ("UpSampling2D", {"size": [2, 2], "interpolation": "bicubic"},
         "interpolation='bicubic'. Expected 'nearest' or 'bilinear'"),
        ("Resizing", {"height": 8, "width": 8, "interpolation": "area"}, "interpolation='area'"),
        ("Resizing", {"height": 8, "width": 8, "antialias": True}, "antialias=True"),
        ("Embedding", {"input_dim": 10, "output_dim": 2}, "looks up integer ids"),
        ("LSTM", {"units": 4}, "not supported"),
    ],
)  # fmt: skip
def test_refuses_layers_without_exact_geometry(cls, config, reason):
    g = GraphSketch((16, 16, 1))
    x = conv(g, 0, name="c1")
    g.add(cls, x, name="odd", out=(8, 8, 2), **config)
    graph = g.graph()
    with pytest.raises(ReceptiveFieldError, match=rf"Layer `odd` \({cls}\).*{re.escape(reason)}"):
        compute_receptive_field(graph, end_point="odd")
    # The part before the refused layer is still analysable when asked for by name...
    assert compute_receptive_field(graph, end_point="c1").size == (3, 3)
    # ...but the default end point never moves there: the refusal names the map it was for.
    with pytest.raises(ReceptiveFieldError, match=r"^The receptive field at `odd`"):
        compute_receptive_field(graph)


def test_default_end_point_never_falls_back_before_a_refused_layer():
    # The model: the last map sits behind a layer the analysis refuses. The old code
    # reported the field of `c1` (the last layer it could analyse) as the network's.
    g = GraphSketch((16, 16, 1))
    x = conv(g, 0, name="c1")
    x = g.add("UpSampling2D", x, name="up", size=2, interpolation="bicubic")
    x = conv(g, x, name="c2")
    x = g.add("BatchNormalization", x, name="bn")
    x = g.add("GlobalAveragePooling2D", x, name="gap", out=(8,))
    g.add("Dense", x, name="head", out=(10,))
    graph = g.graph()
    assert default_end_point(graph) == "c2"
    with pytest.raises(
        ReceptiveFieldError,
        match=r"^The receptive field at `c2` \(Conv2D\), which the head reads through `bn`, cannot "
        r"be computed: Layer `up` \(UpSampling2D\) has interpolation='bicubic'",
    ):
        compute_receptive_field(graph)


def test_every_supported_layer_class_has_a_geometry_record():
    from grader.layers import supported_classes
    from grader.rf.geometry import RECORDS

    missing = [name for name in supported_classes() if name not in RECORDS]
    assert missing == []


@pytest.mark.parametrize(
    "cls",
    ["RMSNormalization", "RandomErasing", "AutoContrast", "RandomGaussianBlur", "Solarization",
     "RandAugment", "AugMix", "RandomPerspective"],
)  # fmt: skip
def test_classes_once_unknown_to_the_analysis_no_longer_stop_it(cls):
    # 20 supported classes had no geometry: a model with one before its convolutions reported
    # "the receptive field at `image` is 1x1". They are the identity at inference (or, for
    # AutoContrast, a statistic over the whole image).
    g = GraphSketch((16, 16, 3))
    x = g.add(cls, 0, name="first", out=(16, 16, 3))
    x = conv(g, x, name="c1")
    x = conv(g, x, name="c2")
    x = g.add("GlobalAveragePooling2D", x, name="gap", out=(8,))
    g.add("Dense", x, name="head", out=(10,))
    report = compute_receptive_field(g.graph())
    assert report.end_point == "c2"
    if cls == "AutoContrast":
        assert report.is_global and report.size == (16, 16)
    else:
        assert report.size == (5, 5) and report.footprint.max == (5, 5)


def test_identity_reshape_and_permute_pass_through():
    g = GraphSketch((16, 16, 4))
    x = g.add("Conv2D", 0, name="c1", out=(16, 16, 4), kernel_size=3, padding="same")
    x = g.add("Reshape", x, name="same_shape", out=(16, 16, 4), target_shape=[16, 16, 4])
    g.add("Permute", x, name="keep_axes", dims=[1, 2, 3])
    assert compute_receptive_field(g.graph(), end_point="keep_axes").size == (3, 3)


def test_reshape_adding_channel_axis_to_grayscale_input():
    g = GraphSketch((28, 28))
    x = g.add("Reshape", 0, name="to_image", out=(28, 28, 1), target_shape=[28, 28, 1])
    conv(g, x, name="c1")
    report = compute_receptive_field(g.graph(), end_point="c1")
    assert report.size == (3, 3)
    assert report.input_size == (28, 28)
    assert report.interval((0, 27), clip=True) == ((0, 1), (26, 27))


def test_default_end_point_is_the_last_layer_changing_the_map_before_the_head():
    # Students found "the receptive field at `bn`" cryptic: the report names the convolution and
    # lists the layers after it, which keep its field.
    g = GraphSketch((32, 32, 3))
    x = conv(g, 0, name="c1")
    x = conv(g, x, name="c2")
    x = g.add("BatchNormalization", x, name="bn")
    x = g.add("ReLU", x, name="relu")
    x = g.add("Dropout", x, name="drop", rate=0.1)
    x = g.add("GlobalAveragePooling2D", x, name="gap", out=(8,))
    g.add("Dense", x, name="head", out=(10,))
    graph = g.graph()
    assert default_end_point(graph) == "c2"
    report = compute_receptive_field(graph)
    assert report.end_point == "c2"
    assert report.unchanged_after == ("bn", "relu", "drop")
    assert report.to_dict()["unchanged_after"] == ["bn", "relu", "drop"]
    assert compute_receptive_field(graph, end_point="bn").size == report.size
    assert compute_receptive_field(graph, end_point="c2").unchanged_after == ("bn", "relu", "drop")
    after = compute_receptive_field(graph, end_point="head").to_dict()
    assert after["global"] is True
    assert after["size"] == [32, 32]


def test_any_layer_after_a_global_field_is_global():
    g = GraphSketch((16, 16, 1))
    x = conv(g, 0, name="c1")
    x = g.add("GlobalAveragePooling2D", x, name="gap", out=(1, 1, 8), keepdims=True)
    x = g.add("Reshape", x, name="squeeze", out=(8,), target_shape=[8])
    g.add("UpSampling1D", x, name="odd_but_global", out=(16,), size=2)
    report = compute_receptive_field(g.graph(), end_point="odd_but_global")
    assert report.is_global and report.size == (16, 16)


@pytest.mark.parametrize(
    ("cls", "config", "is_global"),
    [
        ("LayerNormalization", {"axis": -1}, False),
        ("LayerNormalization", {"axis": [1, 2, 3]}, True),
        ("LayerNormalization", {"axis": [-3, -2]}, True),
        ("Softmax", {"axis": 3}, False),
        ("UnitNormalization", {"axis": -1}, False),
        ("GroupNormalization", {"groups": 2}, True),
        ("Normalization", {"axis": [1, 2]}, False),  # constants at inference, per element
        ("Dense", {"units": 4}, False),  # acts on the channel axis only
    ],
)
def test_normalisation_axes_decide_between_pointwise_and_global(cls, config, is_global):
    g = GraphSketch((16, 16, 1))
    x = conv(g, 0, name="c1")
    g.add(cls, x, name="norm", **config)
    report = compute_receptive_field(g.graph(), end_point="norm")
    assert report.is_global is is_global
    assert report.size == ((16, 16) if is_global else (3, 3))


def test_softmax_over_rows_sees_whole_columns_only():
    # Normalising along axis 1 mixes the rows of each column: every unit sees every row, but
    # still only its own three columns. (The old analysis called this global.)
    g = GraphSketch((16, 16, 1))
    x = conv(g, 0, name="c1")
    g.add("Softmax", x, name="norm", axis=1)
    report = compute_receptive_field(g.graph(), end_point="norm")
    assert not report.is_global and report.size == (None, None)
    assert "normalises along some spatial axes only" in report.formula_note
    assert report.footprint.min == (16, 2) and report.footprint.max == (16, 3)


@pytest.mark.parametrize(("padding", "size", "start"), [("same", 16, 0), ("valid", 15, 0)])
def test_global_field_is_what_any_unit_saw(padding, size, start):
    # 3x3 stride 2 on 16 positions: `same` (pad 0 left, 1 right) reaches 0..15, `valid` has 7
    # units at 0, 2, ..., 12 reaching up to 14: position 15 never counts.
    g = GraphSketch((16, 16, 1))
    x = conv(g, 0, s=2, padding=padding, name="c1")
    g.add("GlobalMaxPooling2D", x, name="gap", out=(8,))
    report = compute_receptive_field(g.graph(), end_point="gap")
    assert report.is_global
    assert report.size == report.jump == (size, size)
    assert report.interval((0, 0)) == ((start, start + size - 1),) * 2


def test_default_end_point_with_flatten_head():
    g = GraphSketch((16, 16, 1))
    x = conv(g, 0, name="c1")
    x = g.add("Flatten", x, name="flat", out=(2048,))
    x = g.add("Dropout", x, name="drop", out=(2048,), rate=0.5)
    g.add("Dense", x, name="head", out=(10,))
    graph = g.graph()
    assert default_end_point(graph) == "c1"
    assert compute_receptive_field(graph, end_point="head").is_global
    with pytest.raises(ReceptiveFieldError, match=r"`drop` \(Dropout\) has no spatial layout.*"):
        compute_receptive_field(graph, end_point="drop")


def test_default_end_point_of_two_heads_is_the_last_feeding_one():
    g = GraphSketch((16, 16, 1))
    a = conv(g, 0, name="early")
    b = conv(g, a, name="late")
    ha = g.add("GlobalMaxPooling2D", a, name="gap_a", out=(8,))
    hb = g.add("GlobalAveragePooling2D", b, name="gap_b", out=(8,))
    g.add("Concatenate", ha, hb, name="heads", out=(16,), axis=-1)
    assert default_end_point(g.graph()) == "late"


def test_fully_convolutional_model_ends_at_its_output():
    g = GraphSketch((16, 16, 1))
    x = conv(g, 0, name="c1")
    conv(g, x, k=1, name="logits")
    assert default_end_point(g.graph()) == "logits"


def test_squeeze_excitation_gate_makes_field_global():
    g = GraphSketch((16, 16, 1))
    x = conv(g, 0, name="c1")
    gate = g.add("GlobalAveragePooling2D", x, name="squeeze", out=(1, 1, 8), keepdims=True)
    gate = g.add("Dense", gate, name="excite", out=(1, 1, 8))
    y = g.add("Multiply", x, gate, name="scale")
    conv(g, y, name="c2")
    graph = g.graph()
    assert compute_receptive_field(graph, end_point="c2").is_global
    assert default_end_point(graph) == "c1"


def test_non_image_input_contributes_nothing_spatial():
    g = GraphSketch((16, 16, 1), (4,))
    x = conv(g, 0, name="c1")
    meta = g.add("Dense", 1, name="meta", out=(8,))
    meta = g.add("Embedding", meta, name="unknown_to_rf", out=(8,))  # irrelevant: not spatial
    g.add("Add", x, meta, name="add")
    report = compute_receptive_field(g.graph(), end_point="add")
    assert report.size == (3, 3)
    assert report.input_name == "image"
    with pytest.raises(ReceptiveFieldError, match=r"`meta` \(Dense\) does not depend on an image"):
        compute_receptive_field(g.graph(), end_point="meta")


def test_two_image_inputs_report_the_first_one_the_end_point_depends_on():
    g = GraphSketch((16, 16, 1), (16, 16, 1))
    a = conv(g, 0, k=5, name="left")
    b = conv(g, 1, name="right")
    g.add("Concatenate", a, b, name="both", axis=-1)
    graph = g.graph()
    assert compute_receptive_field(graph, end_point="both").input_name == "image"
    assert compute_receptive_field(graph, end_point="both").size == (5, 5)
    right = compute_receptive_field(graph, end_point="right")
    assert (right.input_name, right.size) == ("input_1", (3, 3))


def test_channels_first_layers_are_refused():
    g = GraphSketch((16, 16, 1))
    g.add("Conv2D", 0, name="cf", kernel_size=3, data_format="channels_first")
    with pytest.raises(
        ReceptiveFieldError, match=r"`cf` \(Conv2D\) has data_format='channels_first'"
    ):
        compute_receptive_field(g.graph(), end_point="cf")


def test_rows_name_their_inputs_and_whether_every_path_crosses_them():
    g = GraphSketch((16, 16, 1))
    stem = conv(g, 0, name="stem")
    branch = conv(g, stem, name="branch")
    g.add("Add", stem, branch, name="add")
    rows = {row["layer"]: row for row in compute_receptive_field(g.graph()).to_dict()["layers"]}
    assert rows["add"]["inputs"] == ["stem", "branch"]
    assert [rows[n]["on_every_path"] for n in ("image", "stem", "branch", "add")] == [
        True, True, False, True,
    ]  # fmt: skip


def test_unknown_end_point_lists_valid_names():
    with pytest.raises(ReceptiveFieldError, match=r"no layer named `nope`.*`c2`, `c3`"):
        compute_receptive_field(plain_stack(), end_point="nope")


@pytest.mark.parametrize(
    ("padding", "n", "pool", "stride", "expected_left"),
    [
        # pad_total = max((ceil(n / s) - 1) * s + k - n, 0), pad_left = pad_total // 2
        ("same", 7, 3, 2, 1),  # (4 - 1) * 2 + 3 - 7 = 2
        ("same", 8, 3, 2, 0),  # (4 - 1) * 2 + 3 - 8 = 1
        ("same", 9, 2, 3, 0),  # (3 - 1) * 3 + 2 - 9 < 0
        ("same", 10, 4, 1, 1),  # stride 1: k - 1 = 3
        ("valid", 10, 4, 1, 0),
        # (2**51 + 1 - 1) * 4 + 3 - n = 2, where the float n / 4 = 2**51 + 1/4 rounds to 2**51
        # (past 2**53, which the graph builder refuses, but a graph can be built by hand).
        ("same", 2**53 + 1, 3, 4, 1),
    ],
)
def test_same_padding_left_offset(padding, n, pool, stride, expected_left):
    g = GraphSketch((n, n, 1))
    g.add("AveragePooling2D", 0, name="pool", pool_size=pool, strides=stride, padding=padding)
    report = compute_receptive_field(g.graph(), end_point="pool")
    assert report.rows[-1].p == (expected_left, expected_left)
    assert report.start == (-expected_left, -expected_left)


def test_center_crop_is_an_asymmetric_crop():
    # Keras crops (n - target) // 2 first: 4 of 9 rows on top, 2 of 5 columns on the left.
    g = GraphSketch((41, 37, 3))
    x = g.add("CenterCrop", 0, name="crop", out=(32, 32, 3), height=32, width=32)
    conv(g, x, name="c1", padding="valid")
    report = compute_receptive_field(g.graph())
    assert report.start == (4, 2)
    assert report.size == (3, 3)
    assert report.output_size == (30, 30)


@pytest.mark.parametrize(
    ("cls", "shape", "match"),
    [
        ("CenterCrop", (20, 40, 3), r"`grow` \(CenterCrop\) resizes its input of size \(20, 40\)"),
        ("RandomCrop", (40, 40, 3), r"`grow` \(RandomCrop\) resizes its input at inference"),
    ],
)
def test_crops_that_resize_are_refused(cls, shape, match):
    g = GraphSketch(shape)
    g.add(cls, 0, name="grow", out=(32, 32, 3), height=32, width=32)
    with pytest.raises(ReceptiveFieldError, match=match):
        compute_receptive_field(g.graph(), end_point="grow")


def test_cropping_and_causal_padding():
    g = GraphSketch((20, 2))
    x = g.add("Conv1D", 0, name="causal", kernel_size=3, dilation_rate=2, padding="causal")
    g.add("Cropping1D", x, name="crop", cropping=[3, 1])
    report = compute_receptive_field(g.graph(), end_point="crop")
    # causal: left pad 4 -> start -4, size 5; cropping 3 on the left -> start -1, n 16.
    assert report.size == (5,)
    assert report.start == (-1,)
    assert report.output_size == (16,)


def test_output_size_disagreement_with_graph_is_an_error():
    g = GraphSketch((16, 16, 1))
    conv(g, 0, name="c1", padding="valid")
    g.nodes[-1] = Node(1, g.nodes[-1].layer, (0,), ((16, 16, 1),), (16, 16, 8))
    with pytest.raises(ReceptiveFieldError, match=r"output shape \(16, 16, 8\).*\(14, 14\)"):
        compute_receptive_field(g.graph(), end_point="c1")


def test_unknown_input_size_keeps_size_and_jump():
    g = GraphSketch((None, None, 3))
    x = conv(g, 0, s=2, name="c1")
    conv(g, x, name="c2")
    report = compute_receptive_field(g.graph(), end_point="c2")
    assert report.size == (7, 7)
    assert report.jump == (2, 2)
    assert report.start == (None, None)


def test_growth_shows_what_each_layer_added():
    rows = growth(compute_receptive_field(strided_stack(), end_point="c4"))
    # From the STRIDED table: (k_eff - 1) * j_in per window layer, nothing for the input.
    assert [(r["layer"], r["added"]) for r in rows] == [
        ("image", [0, 0]), ("c1", [2, 2]), ("c2", [2, 2]), ("c3", [4, 4]), ("pool", [2, 2]),
        ("c4", [8, 8]),
    ]  # fmt: skip
    assert rows[-1]["r_out"] == [19, 19]


def _residual_after_strided_stem(size: int | None) -> ModelGraph:
    g = GraphSketch((size, size, 3))
    stem = conv(g, 0, s=2, name="stem")
    x = conv(g, stem, k=5, name="a")
    x = g.add("ZeroPadding2D", x, name="pad", padding=[[3, 0], [3, 0]])
    x = g.add("Cropping2D", x, name="crop", cropping=[[0, 3], [0, 3]])
    g.add("Add", stem, x, name="add")
    return g.graph()


def test_unknown_input_size_merge_of_paths_sharing_the_unknown_offset_is_exact():
    # Both paths leave `stem` (unit u sees [U + 2u, U + 2u + 2], U unknown) with the same
    # unknown offset. Branch `a` (5x5, pad 2) sees [U - 4, U + 6] + 2u; `pad`/`crop` shift it
    # three units (six pixels) left: [U - 10, U]. The union with stem's field is [U - 10, U + 2]:
    # 13, not max(11, 3).
    unknown = compute_receptive_field(_residual_after_strided_stem(None), end_point="add")
    assert unknown.size == (13, 13)
    assert unknown.start == (None, None)
    for size in (31, 32):  # both parities of the `same` padding
        known = compute_receptive_field(_residual_after_strided_stem(size), end_point="add")
        assert known.size == unknown.size
        assert known.start != (None, None)


def test_unknown_input_size_merge_of_independently_padded_paths_is_refused():
    g = GraphSketch((None, None, 3))
    a = conv(g, 0, s=2, name="a")
    b = conv(g, 0, k=1, s=2, name="b")
    g.add("Add", a, b, name="add")
    with pytest.raises(ReceptiveFieldError, match=r"`add` \(Add\) merges paths whose alignment"):
        compute_receptive_field(g.graph(), end_point="add")
    # With a known size both offsets are exact: a starts at -0 or -1, b at 0.
    g.nodes[0] = Node(0, g.nodes[0].layer, (), (), (32, 32, 3))
    assert compute_receptive_field(g.graph(), end_point="add").size == (3, 3)


def test_format_table_lists_every_row():
    text = format_table(compute_receptive_field(strided_stack(), end_point="c4"))
    lines = text.splitlines()
    assert lines[0].split() == ["layer", "type", "k", "d", "s", "p", "n_in", "->", "n_out",
                                "j_in", "->", "j_out", "r_in", "->", "r_out"]  # fmt: skip
    assert lines[-2] == "Receptive field of `c4`: 19 x 19 (jump 4 x 4)."
    # Unit u sees [-3 + 4u, 15 + 4u] within 0..31: 16 pixels at u = 0, 19 inside, 15 at u = 5.
    assert lines[-1] == (
        "The units of `c4` see between 15x15 and 19x19 pixels of the 32x32 image; the unit at "
        "(5, 5) sees the fewest."
    )
    pool_line = next(line for line in lines if line.startswith("pool"))
    assert pool_line.split() == ["pool", "MaxPooling2D", "2", "1", "2", "0", "16", "->", "8",
                                 "2", "->", "4", "9", "->", "11"]  # fmt: skip


def _extended(build, *extra: tuple[str, dict[str, Any]]) -> ModelGraph:
    """The graph from ``build`` with layers appended after its last node."""
    graph = build()
    g = GraphSketch()
    g.nodes, g.inputs = list(graph.nodes), list(graph.inputs)
    x = graph.nodes[-1].id
    for cls, config in extra:
        x = g.add(cls, x, name=f"extra_{len(g.nodes)}", **config)
    return g.graph()


def _redilated(build, layer: str) -> ModelGraph:
    graph = build()
    nodes = []
    for node in graph.nodes:
        if node.layer.name == layer:
            config = {**node.layer.config, "dilation_rate": 2}
            unknown = (*(None for _ in node.output_shape[:-1]), 8)  # sizes change: leave unknown
            node = Node(node.id, Layer(layer, node.layer.class_name, config), node.inputs,
                        node.input_shapes, unknown)  # fmt: skip
        nodes.append(node)
    return ModelGraph(graph.name, graph.class_name, tuple(nodes), graph.inputs, graph.outputs)


@pytest.mark.parametrize("build", [plain_stack, strided_stack, dilated_stack])
def test_hint_formulas_match_recomputation(build):
    report = compute_receptive_field(build())
    conv3 = ("Conv2D", {"kernel_size": 3, "padding": "same"})
    pool2 = ("MaxPooling2D", {"pool_size": 2, "strides": 2, "padding": "valid"})
    assert rf_if_appended(report, "conv3x3") == list(
        compute_receptive_field(_extended(build, conv3)).size
    )
    assert rf_if_appended(report, "pool2x2") == list(
        compute_receptive_field(_extended(build, pool2, conv3)).size
    )
    target = next(r.layer for r in reversed(report.rows) if r.k == (3, 3) and r.d == (1, 1)
                  and r.s == (1, 1))  # fmt: skip
    assert dilation_target(report).layer == target
    assert rf_if_appended(report, "dilate_last") == list(
        compute_receptive_field(_redilated(build, target), end_point=report.end_point).size
    )


@pytest.mark.parametrize("build", [plain_stack, strided_stack, dilated_stack])
def test_footprint_what_ifs_match_the_rebuilt_graph(build):
    from grader.rf.what_if import extra_convs_to_reach, footprint_if

    report = compute_receptive_field(build())
    conv3 = ("Conv2D", {"kernel_size": 3, "padding": "same"})
    pool2 = ("MaxPooling2D", {"pool_size": 2, "strides": 2, "padding": "same"})
    strided = ("Conv2D", {"kernel_size": 3, "strides": 2, "padding": "same"})
    for change, extra in (("conv3x3", [conv3]), ("pool2x2", [pool2, conv3]),
                        ("strided3x3", [strided, conv3])):  # fmt: skip
        rebuilt = compute_receptive_field(_extended(build, *extra))
        assert footprint_if(report, change) == rebuilt.footprint.min, change
    target = dilation_target(report)
    padding = build().nodes_of(target.layer)[0].layer.config["padding"]
    if padding == "same":
        rebuilt = compute_receptive_field(_redilated(build, target.layer),
                                          end_point=report.end_point)  # fmt: skip
        assert footprint_if(report, "dilate_last") == rebuilt.footprint.min
    else:  # sizes would change after it: no what-if
        with pytest.raises(ReceptiveFieldError, match="Expected one to dilate"):
            footprint_if(report, "dilate_last")
    count = extra_convs_to_reach(report, (32, 32))
    assert count is not None
    more = compute_receptive_field(_extended(build, *[conv3] * count)).footprint.min
    fewer = compute_receptive_field(_extended(build, *[conv3] * (count - 1))).footprint.min
    assert more == (32, 32) and fewer != (32, 32)


def test_hint_rejects_unknown_kind_and_global_end_point():
    report = compute_receptive_field(plain_stack())
    with pytest.raises(ReceptiveFieldError, match=r"Unknown change 'conv5x5'"):
        rf_if_appended(report, "conv5x5")


FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "models"
DESIGNED = {
    name: entry["designed_receptive_field"]
    for name, entry in json.loads((FIXTURES / "expected.json").read_text()).items()
    if not name.startswith("_") and entry.get("designed_receptive_field")
}


@pytest.mark.parametrize("name", sorted(DESIGNED))
def test_course_fixture_models_have_their_designed_receptive_field(name):
    # The fixtures' authors designed each architecture for a receptive field, worked out layer
    # by layer in tests/fixtures/make_models.py; the saved Keras JSON must give that number.
    graph = build_graph(load_model_config(FIXTURES / f"{name}.json"))
    report = compute_receptive_field(graph)
    assert report.size == (DESIGNED[name], DESIGNED[name])


def test_formula_past_the_size_limit_is_withheld_and_the_footprint_reported():
    """Strides multiply the jump: 400 `same` convolutions of stride 2**40 (each a valid Keras
    layer on a 1x1 map) would give a jump of 2**16000, past what Python prints (4,300 digits),
    so the report could not even be written. Past 2**53 - 1 the formula is withheld; which
    pixels each unit sees is still exact: the 3x3 pixels `c0`'s unit sees (every later window
    has only its centre on the 1x1 map)."""
    from grader.report import check_model

    layers = [
        {
            "class_name": "InputLayer",
            "module": "keras.layers",
            "config": {"batch_shape": [None, 16, 16, 1], "name": "x"},
        },
        *(
            {
                "class_name": "Conv2D",
                "module": "keras.layers",
                "config": {"name": f"c{i}", "filters": 1, "kernel_size": 3, "strides": 2**40},
            }
            for i in range(400)
        ),
    ]
    for layer in layers[1:]:
        layer["config"]["padding"] = "same"
    config = {
        "class_name": "Sequential",
        "module": "keras",
        "config": {"name": "strided", "layers": layers},
    }
    report = compute_receptive_field(build_graph(config), end_point="c399")
    assert report.size == (None, None)
    assert re.search(r"Layer `c1` \(Conv2D\).*9,007,199,254,740,991", report.formula_note)
    assert report.footprint.min == report.footprint.max == (3, 3)
    # The default end point is the model's output, `c399`, never `c0` before the overflow.
    checked = check_model(config)
    assert checked["receptive_field"]["end_point"] == "c399"
    assert checked["receptive_field"]["footprint"]["min"] == [3, 3]
    assert [row["rf_jump"] for row in checked["layers"][:3]] == [[1, 1], [2**40, 2**40], None]
    json.dumps(checked)
