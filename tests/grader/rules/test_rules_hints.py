"""Teaching hints: every number a hint offers is checked by making the change and re-analysing.

A what-if receptive field is compared with the field computed on the model edited accordingly (a
layer appended, a dilation set); a separable-convolution saving with the parameters the analysis
counts once the Conv2D is replaced in the config.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from grader.analysis import analyze
from grader.hints import receptive_field_options, separable_saving
from grader.loading import load_model_config
from grader.receptive_field import compute_receptive_field
from grader.rules.context import RuleContext
from tests.support.fixture_models import analysable, model_path

END = 5  # index of the smoke model's last SeparableConv2D (the default end point) in its layers


def _smoke() -> dict[str, Any]:
    return load_model_config(model_path("smoke_separable"))


def _layers(config: dict[str, Any]) -> list[dict[str, Any]]:
    return config["config"]["layers"]


def _renamed(layer: dict[str, Any], name: str, **changes: Any) -> dict[str, Any]:
    layer = copy.deepcopy(layer)
    layer["config"]["name"] = name
    layer["config"].update(changes)
    layer.pop("build_config", None)
    return layer


def _field(config: dict[str, Any], end_point: str) -> tuple[int, ...]:
    report = compute_receptive_field(analyze(config).graph, end_point=end_point)
    return tuple(report.size)


@pytest.fixture(scope="module")
def options():
    config = _smoke()
    assert _layers(config)[END]["config"]["name"] == "separable_conv2d_3"
    return receptive_field_options(compute_receptive_field(analyze(config).graph))


def test_one_more_conv3x3_matches_the_edited_model(options):
    config = _smoke()
    conv = _renamed(_layers(config)[END], "extra_conv")
    _layers(config).insert(END + 1, conv)
    assert options.conv3x3 == _field(config, "extra_conv")


def test_pooling_then_conv_matches_the_edited_model(options):
    config = _smoke()
    pool = _renamed(_layers(config)[3], "extra_pool")
    assert pool["class_name"] == "MaxPooling2D"
    conv = _renamed(_layers(config)[END], "extra_conv")
    _layers(config)[END + 1 : END + 1] = [pool, conv]
    assert options.pool2x2 == _field(config, "extra_pool")
    assert options.conv3x3_after_pool == _field(config, "extra_conv")


def test_strided_conv_then_conv3x3_matches_the_edited_model(options):
    config = _smoke()
    strided = _renamed(_layers(config)[END], "strided_conv", strides=[2, 2])
    conv = _renamed(_layers(config)[END], "extra_conv")
    _layers(config)[END + 1 : END + 1] = [strided, conv]
    assert options.conv3x3 == _field(config, "strided_conv")
    assert options.strided_then_conv3x3 == _field(config, "extra_conv")


def test_dilating_the_last_conv3x3_matches_the_edited_model(options):
    config = _smoke()
    assert options.dilate_last is not None
    layer, size = options.dilate_last
    assert layer == "separable_conv2d_3"
    _layers(config)[END]["config"]["dilation_rate"] = [2, 2]
    assert size == _field(config, "separable_conv2d_3")


def test_stopped_growing_at_is_the_last_layer_that_grew_the_field():
    # breaks_small_rf ends with a pooling: the field grows there last (14 -> 16).
    config = load_model_config(model_path("breaks_small_rf"))
    report = compute_receptive_field(analyze(config).graph)
    options = receptive_field_options(report)
    assert options.stopped_growing_at == report.end_point == "max_pooling2d_1"
    # At an activation after the last conv, the last growth is the conv itself.
    config = load_model_config(model_path("cifar10_separable_reference"))
    report = compute_receptive_field(analyze(config).graph, end_point="re_lu_7")
    assert receptive_field_options(report).stopped_growing_at == "separable_conv2d_6"


@pytest.mark.parametrize("name", analysable())
def test_row_arithmetic_agrees_with_rf_if_appended(name):
    # Two implementations: rf_if_appended on the report object, and the dict rows fallback.
    report = compute_receptive_field(analyze(load_model_config(model_path(name))).graph)
    if report.is_global:
        pytest.skip("a global end point has no what-if")
    assert receptive_field_options(report) == receptive_field_options(report.to_dict())


def test_separable_saving_matches_the_analysis_of_the_replaced_layer():
    config = load_model_config(model_path("breaks_plain_conv3x3"))
    analysis = analyze(config)
    [plain] = [x for x in RuleContext(analysis=analysis).layers if x.name == "plain_conv"]
    saving = separable_saving(plain)
    assert saving is not None
    assert saving.params == analysis.layer("plain_conv").params.total

    edited = copy.deepcopy(config)
    [layer] = [x for x in edited["config"]["layers"] if x["config"]["name"] == "plain_conv"]
    layer["class_name"] = "SeparableConv2D"
    for key in ("kernel_initializer", "kernel_regularizer", "kernel_constraint", "groups"):
        layer["config"].pop(key, None)
    layer["config"].update(
        depth_multiplier=1,
        depthwise_initializer=None,
        pointwise_initializer=None,
        depthwise_regularizer=None,
        pointwise_regularizer=None,
        depthwise_constraint=None,
        pointwise_constraint=None,
    )
    replaced = analyze(edited)
    assert saving.separable_params == replaced.layer("plain_conv").params.total
    assert saving.saved == analysis.total_params - replaced.total_params


def test_no_separable_saving_for_pointwise_or_separable_layers():
    analysis = analyze(load_model_config(model_path("breaks_no_global_pooling")))
    facts = {x.name: x for x in RuleContext(analysis=analysis).layers}
    assert separable_saving(facts["squeeze"]) is None  # a 1x1 Conv2D
    assert separable_saving(facts["separable_conv2d"]) is None
