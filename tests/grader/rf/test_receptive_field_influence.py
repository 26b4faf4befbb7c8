"""Receptive fields count only the calls that can change the end point (`grader.graph_effect`).

A branch multiplied by a constant zero cannot change anything after it (``Effect.NO``): it must
neither widen a field nor be the end point. A branch that carries the image only if a weight the
architecture does not fix is non-zero (``Effect.MAYBE``: a kernel constrained to norm 0, which
training sets to zero) is shown in the report's field, but never helps satisfy
`min_receptive_field`: a minimum is judged on the paths certain to carry the image.

Independent truth: Keras' input gradients (the support of d(unit)/d(image) in a twin with
positive weights, `tests.grader.rf.test_receptive_field_footprint`); for the constrained kernel,
the twin after Keras applies the constraint, as every training step does.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.tf

keras = pytest.importorskip("keras")

from grader.analysis import analyze  # noqa: E402
from grader.graph_builder import build_graph  # noqa: E402
from grader.receptive_field import (  # noqa: E402
    compute_receptive_field,
    default_end_point,
    undecided_calls,
)
from grader.report import check_model  # noqa: E402
from grader.rules import evaluate_rules, load_ruleset  # noqa: E402
from tests.grader.rf.test_receptive_field_empirical import measurement_weights  # noqa: E402
from tests.grader.rf.test_receptive_field_footprint import (  # noqa: E402
    extents,
    measured_projections,
)

layers = keras.layers
SIZE = 16


def _model(branch: str) -> Any:
    """A 3x3 main path, and a wide branch (3x3, dilation 6) merged into it before `end`.

    ``branch``: ``"zero"`` multiplies the wide branch by a constant zero, ``"constrained"``
    constrains its kernel to norm 0 (training zeroes it), ``"plain"`` leaves it alone.
    """
    inputs = keras.Input((SIZE, SIZE, 1), name="image")
    main = layers.Conv2D(2, 3, padding="same", name="main")(inputs)
    constraint = keras.constraints.MaxNorm(0.0) if branch == "constrained" else None
    wide = layers.Conv2D(
        2, 3, padding="same", dilation_rate=6, kernel_constraint=constraint, name="wide"
    )(inputs)
    if branch == "zero":
        wide = layers.Multiply(name="mul")([wide, layers.Rescaling(0.0, name="zero")(main)])
    merged = layers.Add(name="merge")([main, wide])
    end = layers.Conv2D(2, 3, padding="same", name="end")(merged)
    x = layers.GlobalAveragePooling2D(name="gap")(end)
    return keras.Model(inputs, layers.Dense(3, name="head")(x))


def _keras_extents(model: Any, end_point: str, *, trained: bool = False) -> tuple[Any, Any]:
    """Smallest and largest extent (per axis) of the units of `end_point`, by gradient support.

    With `trained`, every kernel constraint is applied first, as Keras does after each step.
    """
    sub = keras.Model(model.inputs, model.get_layer(end_point).output)
    measurement_weights(sub)
    if trained:
        for layer in sub.layers:
            constraint = getattr(layer, "kernel_constraint", None)
            if constraint is not None:
                layer.kernel.assign(constraint(layer.kernel))
    x = np.random.default_rng(0).uniform(0.5, 1.0, (1, SIZE, SIZE, 1)).astype("float32")
    spans = [extents(p) for p in measured_projections(sub, x)]
    return [int(e.min()) for e in spans], [int(e.max()) for e in spans]


def _config(model: Any) -> dict[str, Any]:
    return json.loads(model.to_json())


def _footprint(report: Any) -> tuple[list[int], list[int]]:
    return list(report.footprint.min), list(report.footprint.max)


def _rule(config: dict[str, Any], limit: int) -> Any:
    ruleset = load_ruleset({"rules": [{"id": "min_receptive_field", "limit": limit}]})
    [result] = evaluate_rules(ruleset, analyze(config))
    return result


def test_a_branch_multiplied_by_zero_does_not_widen_the_field():
    model = _model("zero")
    graph = build_graph(_config(model))

    report = compute_receptive_field(graph)
    every_call = compute_receptive_field(graph, paths="all")

    assert report.end_point == "end"
    assert _footprint(report) == _keras_extents(model, "end")
    assert _footprint(every_call) != _footprint(report)  # the branch would widen it
    assert report.footprint.max < every_call.footprint.max
    assert "wide" not in [row.layer for row in report.rows]
    # The check stage's report and the rule say the same.
    assert check_model(_config(model))["receptive_field"]["footprint"]["max"] == [5, 5]
    result = _rule(_config(model), 7)
    assert result.passed is False and result.measured == report.footprint.min[0]


def test_a_branch_multiplied_by_zero_is_never_the_end_point():
    inputs = keras.Input((SIZE, SIZE, 1), name="image")
    main = layers.Conv2D(2, 3, padding="same", name="main")(inputs)
    dead = layers.Conv2D(2, 5, padding="same", name="dead")(main)  # a later map
    pooled = layers.GlobalAveragePooling2D(name="gap_main")(main)
    zeroed = layers.Rescaling(0.0, name="zero")(layers.GlobalAveragePooling2D(name="gap")(dead))
    model = keras.Model(inputs, layers.Dense(3)(layers.Add()([pooled, zeroed])))
    graph = build_graph(_config(model))

    assert default_end_point(graph, paths="all") == "dead"  # the last map feeding a pooling
    assert default_end_point(graph) == "main"
    assert compute_receptive_field(graph).end_point == "main"


def test_a_path_that_may_carry_nothing_is_shown_but_does_not_help_a_minimum():
    model = _model("constrained")
    config = _config(model)
    graph = build_graph(config)

    shown = compute_receptive_field(graph)
    certain = compute_receptive_field(graph, paths="certain")

    # The report shows what the architecture lets through (the kernel may end up non-zero,
    # e.g. in a stored archive), the minimum what it is certain to let through.
    assert _footprint(shown) == _keras_extents(model, "end")
    assert _footprint(certain) == _keras_extents(model, "end", trained=True)
    assert _footprint(certain) != _footprint(shown)
    [(node, why)] = undecided_calls(graph, "end")
    assert node.layer.name == "wide" and "kernel_constraint" in why

    limit = shown.footprint.min[0]  # met by the shown field, not by the certain one
    assert certain.footprint.min[0] < limit
    result = _rule(config, limit)
    assert result.passed is False
    assert result.measured == certain.footprint.min[0]
    assert "Not counted, as they may carry nothing: `wide`:" in result.message
    assert "MaxNorm(max_value=0" in result.message


def test_without_a_path_in_doubt_the_minimum_is_the_shown_field():
    model = _model("plain")
    config = _config(model)
    graph = build_graph(config)

    shown = compute_receptive_field(graph)
    assert undecided_calls(graph, "end") == []
    assert _footprint(compute_receptive_field(graph, paths="certain")) == _footprint(shown)
    result = _rule(config, shown.footprint.min[0])
    assert result.passed is True and "Not counted" not in result.message


def test_an_end_point_whose_own_kernel_may_be_zeroed_fails_the_minimum_saying_why():
    inputs = keras.Input((SIZE, SIZE, 1), name="image")
    x = layers.Conv2D(2, 3, padding="same", name="main")(inputs)
    x = layers.Conv2D(
        2, 3, padding="same", kernel_constraint=keras.constraints.MaxNorm(0.0), name="end"
    )(x)
    model = keras.Model(inputs, layers.Dense(3)(layers.GlobalAveragePooling2D()(x)))

    result = _rule(_config(model), 3)

    assert result.passed is False and result.measured is None
    assert result.message.startswith(
        "Which pixels the units of `end` (Conv2D) are certain to see could not be computed: "
        "The image may not change the units of `end` (Conv2D):"
    )
    assert "`kernel_constraint` MaxNorm(max_value=0" in result.message
