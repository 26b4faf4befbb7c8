"""Attacks on `min_receptive_field`: a large course-formula field that sees little of the image.

The course formula counts zero padding, so a dilated convolution whose taps all land outside
the map grows the formula without showing a unit one more pixel. The rule is decided on the
image footprint (the pixels that can influence each unit), and the default end point never
moves to an earlier, more flattering layer. The footprint itself is checked against gradient
support in tests/grader/rf/test_receptive_field_footprint.py; here, the verdicts on the presets.
"""

from __future__ import annotations

from typing import Any

from grader.presets import load_preset
from grader.report import check_model


def _sequential(name: str, *layers: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    """A Keras 3 Sequential config on a 32x32x3 image ending in global pooling and a head."""
    entries: list[dict[str, Any]] = [
        {"module": "keras.layers", "class_name": "InputLayer",
         "config": {"batch_shape": [None, 32, 32, 3], "name": "image"}}
    ]  # fmt: skip
    tail = [
        ("GlobalAveragePooling2D", {"name": "gap"}),
        ("Dense", {"name": "head", "units": 10, "activation": "softmax"}),
    ]
    for cls, config in (*layers, *tail):
        entries.append({"module": "keras.layers", "class_name": cls, "config": config})
    return {
        "module": "keras",
        "class_name": "Sequential",
        "config": {"name": name, "layers": entries},
    }


def _stem() -> tuple[str, dict[str, Any]]:
    return ("Conv2D", {"name": "stem", "filters": 16, "kernel_size": 3, "padding": "same"})


def _separable(name: str, dilation: int, **extra: Any) -> tuple[str, dict[str, Any]]:
    config = {"name": name, "filters": 32, "kernel_size": 3, "padding": "same",
              "dilation_rate": dilation, "depth_multiplier": 1, **extra}  # fmt: skip
    return ("SeparableConv2D", config)


def _rule(report: dict[str, Any]) -> dict[str, Any]:
    return next(r for r in report["rules"] if r["id"] == "min_receptive_field")


def test_dilation_past_the_map_fails_min_receptive_field():
    # The attack: 3 + 2 * 32 = 67 by the course formula, yet the taps at -32 and +32
    # always land in zero padding: each unit sees what the stem's unit sees, 3x3 (2 at borders).
    config = _sequential("dilated_past_the_map", _stem(), _separable("wide", 32))
    report = check_model(config, load_preset("cifar10-separable"))
    rf = report["receptive_field"]
    assert rf["end_point"] == "wide" and rf["size"] == [67, 67]
    assert rf["footprint"]["min"] == [2, 2] and rf["footprint"]["max"] == [3, 3]
    rule = _rule(report)
    assert rule["passed"] is False
    assert rule["measured"] == 2
    assert "(course formula: 67x67)" in rule["message"]
    assert "no unit sees that much" in rule["hint"]
    assert report["passed"] is False


def test_dilation_one_short_of_the_map_fails_at_the_centre():
    # With dilation 31 the outer taps reach the image from the first and last rows only: units
    # 0 and 31 read stem units 0 and 31 and span the image; every unit in between sees only its
    # stem unit's 3 rows. Deciding on the best unit would let this pass.
    config = _sequential("dilated_to_the_edges", _stem(), _separable("wide", 31))
    report = check_model(config, load_preset("cifar10-separable"))
    rf = report["receptive_field"]
    assert rf["footprint"]["max"] == [32, 32]
    rule = _rule(report)
    assert rule["passed"] is False and rule["measured"] == 3


def test_dilation_on_a_pooled_map_fails_under_the_dilated_preset():
    # After pooling to 8x8, dilation 8 again lands in padding; the cifar10-dilated preset asks
    # every unit to see the whole 32x32 image.
    config = _sequential(
        "dilated_after_pooling",
        _stem(),
        ("AveragePooling2D", {"name": "pool", "pool_size": 4}),
        _separable("wide", 8),
        _separable("wider", 8),
    )
    report = check_model(config, load_preset("cifar10-dilated"))
    rf = report["receptive_field"]
    assert rf["size"][0] >= 64  # the formula alone would pass, twice over
    rule = _rule(report)
    assert rule["passed"] is False
    # Pooling unit p averages stem units 4p..4p+3, which see pixels 4p - 1..4p + 4: 6 pixels,
    # 5 at the borders; the dilated taps at +-8 never reach another pooled unit.
    assert rule["measured"] == 5
    assert "Expected every unit to see at least 32x32 pixels." in rule["message"]


def test_a_refused_layer_cannot_hide_the_last_map():
    # A large field early, then a layer the analysis refuses before the last convolution: the
    # old code reported the early layer's field as the network's. Now the rule fails, naming
    # the refused layer, and gives no hint computed from another layer.
    config = _sequential(
        "hidden_behind_bicubic",
        _stem(),
        _separable("wide", 2),
        ("UpSampling2D", {"name": "up", "size": 2, "interpolation": "bicubic"}),
        ("MaxPooling2D", {"name": "down", "pool_size": 2}),
        ("Conv2D", {"name": "last", "filters": 8, "kernel_size": 1}),
    )
    report = check_model(config, load_preset("cifar10-separable"))
    rf = report["receptive_field"]
    assert rf["end_point"] is None and rf["size"] is None
    assert "`last` (Conv2D)" in rf["error"]["message"]
    assert "Layer `up` (UpSampling2D) has interpolation='bicubic'" in rf["error"]["message"]
    rule = _rule(report)
    assert rule["passed"] is False and rule["measured"] is None
    assert "Layer `up` (UpSampling2D)" in rule["message"]
    assert not rule["hint"]


def test_an_honest_network_of_the_same_size_passes():
    # Control: dilations 1, 2, 4, 8 on the 16x16 pooled map grow the formula to 64 with unit 0
    # starting at -31, so every unit's window covers the 32x32 image and no tap is wasted.
    config = _sequential(
        "honest",
        _stem(),
        ("MaxPooling2D", {"name": "pool", "pool_size": 2}),
        _separable("a", 1),
        _separable("b", 2),
        _separable("c", 4),
        _separable("d", 8),
    )
    report = check_model(config, load_preset("cifar10-separable"))
    assert report["receptive_field"]["size"] == [64, 64]
    rule = _rule(report)
    assert rule["passed"] is True and rule["measured"] == 32


def test_a_model_too_large_to_trace_is_refused_by_name(monkeypatch):
    # A huge kernel on a large map would take the footprint trace minutes. The trace spends a
    # bounded budget of cell operations (`MAX_WORK`, seconds at most): past it the rule fails,
    # naming the layer, instead of stalling the grader. A small budget shows the mechanism.
    import grader.rf.footprint as footprint

    monkeypatch.setattr(footprint, "MAX_WORK", 10**6)
    config = _sequential(
        "huge_kernel",
        (
            "Conv2D",
            {"name": "huge", "filters": 1, "kernel_size": 31, "padding": "same"},
        ),
    )
    report = check_model(config, load_preset("cifar10-separable"))
    rf = report["receptive_field"]
    assert rf["size"] == [31, 31] and rf["footprint"] is None
    assert "Layer `huge` (Conv2D) takes the trace" in rf["footprint_note"]
    rule = _rule(report)
    assert rule["passed"] is False and rule["measured"] is None
    assert "Layer `huge` (Conv2D) takes the trace" in rule["message"]
