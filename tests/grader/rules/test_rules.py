"""Rules on the committed course fixtures: each model fails exactly the rules it was built to break.

The fixtures are Keras models (tests/fixtures/make_models.py); parameter counts are compared with
what Keras reported, receptive fields with the values worked by hand in make_models.py.
"""

from __future__ import annotations

import copy

import pytest

from grader.analysis import analyze
from grader.loading import load_model_config
from grader.receptive_field import compute_receptive_field
from grader.rules import evaluate_rules, load_preset, load_ruleset, overall_passed
from tests.support.fixture_models import analysable, expected, model_path


def _evaluate(name, ruleset=None, **kwargs):
    analysis = analyze(load_model_config(model_path(name)))
    ruleset = ruleset if ruleset is not None else load_preset(expected()[name]["preset"])
    return {r.name: r for r in evaluate_rules(ruleset, analysis, **kwargs)}


@pytest.mark.parametrize("name", analysable())
def test_fixture_fails_exactly_the_rules_it_breaks_under_its_preset(name):
    results = _evaluate(name)
    breaks = set(expected()[name]["breaks"])
    failed = {rule for rule, r in results.items() if r.passed is False}
    assert failed == breaks
    for rule, result in results.items():
        if rule in {"max_epochs", "min_val_accuracy"}:
            assert result.passed is None, "training rules wait for training"
        elif rule not in breaks:
            assert result.passed is True, result.message


@pytest.mark.parametrize(
    "name", ["cifar10_separable_reference", "cifar10_dilated_reference", "smoke_separable"]
)
def test_reference_models_pass_every_static_rule(name):
    results = list(_evaluate(name).values())
    assert overall_passed(results) is None  # nothing failed; training rules pending
    assert all(r.passed is True for r in results if r.id not in {"max_epochs", "min_val_accuracy"})


@pytest.mark.parametrize("name", analysable())
def test_max_params_measures_what_keras_counts(name):
    keras = expected()[name]
    total = _evaluate(name, {"rules": [{"id": "max_params", "limit": 10**9}]})["max_params"]
    trainable = _evaluate(
        name, {"rules": [{"id": "max_params", "limit": 10**9, "count": "trainable"}]}
    )["max_params"]
    assert total.measured == keras["params_total"]
    assert trainable.measured == keras["params_trainable"]


@pytest.mark.parametrize(
    "name", [n for n in analysable() if expected()[n]["designed_receptive_field"] is not None]
)
def test_min_receptive_field_measures_the_smallest_footprint(name):
    # Independent of the footprint code: none of these fixtures has a dilation gap at an image
    # border, so a unit sees exactly its course-formula window within the image.
    report = compute_receptive_field(analyze(load_model_config(model_path(name))).graph)
    assert report.size == (expected()[name]["designed_receptive_field"],) * 2
    n_out, n_in = report.output_size, report.input_size
    smallest = min(
        hi - lo + 1 for u in range(n_out[0]) for lo, hi in [report.interval((u, 0), clip=True)[0]]
    )
    at_limit = _evaluate(name, {"rules": [{"id": "min_receptive_field", "limit": smallest}]})
    above = _evaluate(name, {"rules": [{"id": "min_receptive_field", "limit": smallest + 1}]})
    assert at_limit["min_receptive_field"].measured == smallest
    assert at_limit["min_receptive_field"].passed is True
    # Nothing sees more than the image: a larger limit asks for the whole image.
    assert above["min_receptive_field"].passed is (smallest == n_in[0])


def test_max_params_message_and_hint_name_the_heaviest_layers():
    result = _evaluate("breaks_too_many_params")["max_params"]
    keras = expected()["breaks_too_many_params"]
    total = keras["params_total"]
    assert result.message == f"The model has {total:,} parameters. Expected at most 100,000."
    heaviest = sorted(keras["layer_params"].items(), key=lambda kv: kv[1], reverse=True)[:3]
    for layer, count in heaviest:
        assert f"`{layer}`" in result.hint
        assert f"{count:,} ({count / total:.0%})" in result.hint
    assert result.hint.startswith(f"{total - 100_000:,} too many.")


def test_max_dropout_message_names_the_worst_layer():
    result = _evaluate("breaks_dropout_025")["max_dropout"]
    assert result.message == "Layer `dropout` (Dropout) has rate 0.25. Expected at most 0.10."
    assert result.measured == 0.25
    assert result.limit == 0.1
    assert "Lower the rate of `dropout` (Dropout) from 0.25 to at most 0.10." in result.hint


def test_only_separable_convs_names_the_plain_conv_and_the_separable_saving():
    result = _evaluate("breaks_plain_conv3x3")["only_separable_convs"]
    assert result.measured == ["plain_conv"]
    assert result.message.startswith("Layer `plain_conv` (Conv2D) has a 3x3 kernel.")
    # plain_conv: 3x3, 32 -> 64 channels, no bias. Separable: 3*3*32 + 32*64 = 2,336.
    plain = expected()["breaks_plain_conv3x3"]["layer_params"]["plain_conv"]
    assert f"({'Conv2D'} 3x3, {plain:,} params)" in result.hint
    assert "SeparableConv2D(64, 3x3): 2,336 params" in result.hint
    assert f"{plain - 2336:,} fewer" in result.hint


def test_only_separable_convs_without_first_layer_exemption_flags_the_stem():
    ruleset = {"rules": [{"id": "only_separable_convs", "allow_first_layer": False}]}
    result = _evaluate("cifar10_separable_reference", ruleset)["only_separable_convs"]
    assert result.passed is False
    assert result.measured == ["stem_conv"]


def test_forbidden_layers_lists_every_offender():
    result = _evaluate("breaks_maxpooling")["forbidden_layers"]
    assert result.measured == ["max_pooling2d", "max_pooling2d_1"]
    assert result.message.startswith("Layer `max_pooling2d` (MaxPooling2D) is not allowed")
    assert "strided convolution" in result.hint


def test_global_pooling_kind_max_is_not_satisfied_by_average_pooling():
    ruleset = {"rules": [{"id": "global_pooling_used", "kind": "max"}]}
    assert _evaluate("cifar10_dilated_reference", ruleset)["global_pooling_used"].passed is False
    ruleset = {"rules": [{"id": "global_pooling_used", "kind": "any"}]}
    assert _evaluate("cifar10_dilated_reference", ruleset)["global_pooling_used"].passed is True


def test_global_pooling_hint_points_at_flatten():
    result = _evaluate("breaks_no_global_pooling")["global_pooling_used"]
    assert result.message == (
        "The model has no global pooling. Expected a GlobalAveragePooling layer."
    )
    assert "Replace `flatten` (Flatten) by GlobalAveragePooling2D" in result.hint


def test_required_layers_counts_each_class():
    ruleset = {
        "rules": [
            {"id": "required_layers", "layers": ["BatchNormalization", "Dropout"], "min_count": 2}
        ]
    }
    result = _evaluate("cifar10_separable_reference", ruleset)["required_layers"]
    assert result.measured == {"BatchNormalization": 8, "Dropout": 1}
    assert result.passed is False
    assert "The model has 1 Dropout layer." in result.message


def test_dilated_conv_used_counts_dilated_layers():
    results = _evaluate("cifar10_dilated_reference", {"rules": [{"id": "dilated_conv_used"}]})
    assert results["dilated_conv_used"].measured == 4
    none = _evaluate("breaks_no_dilation")["dilated_conv_used"]
    assert none.measured == 0
    assert "dilation_rate=2" in none.hint


def test_separable_conv_used_min_count():
    ruleset = {"rules": [{"id": "separable_conv_used", "min_count": 8}]}
    result = _evaluate("cifar10_separable_reference", ruleset)["separable_conv_used"]
    assert (result.passed, result.measured, result.limit) == (False, 7, 8)
    assert result.message == "The model has 7 separable convolutions. Expected at least 8."


def test_receptive_field_at_named_end_point_and_rectangular_limit():
    ruleset = {
        "rules": [
            {"id": "min_receptive_field", "name": "early", "limit": 16, "end_point": "re_lu_3"},
            {"id": "min_receptive_field", "name": "late", "limit": [48, 24]},
        ]
    }
    results = _evaluate("cifar10_separable_reference", ruleset)
    # Hand-worked: re_lu_3 follows the fourth 3x3 conv at jump 2: 14x14 (see make_models.py),
    # unit 0's window starts at -6 (1 + 1 + 2 + 2 padding), so it sees pixels 0..7 only.
    early = results["early"]
    assert (early.passed, early.measured) == (False, 8)
    assert early.message == (
        "The units of `re_lu_3` (ReLU) see between 8x8 and 14x14 pixels of the 32x32 image "
        "(course formula: 14x14); the unit at (0, 0) sees the fewest. Expected every unit to "
        "see at least 16x16 pixels."
    )
    # 48 rows is more than the image: every unit must see all 32 (and it does).
    late = results["late"]
    assert (late.passed, late.measured, late.limit) == (True, 32, [48, 24])
    assert "(the limit 48x24, capped at the 32x32 image)" in late.message


def test_receptive_field_rule_ignores_a_report_at_another_end_point():
    analysis = analyze(load_model_config(model_path("cifar10_separable_reference")))
    other = compute_receptive_field(analysis.graph, end_point="re_lu_3")
    [result] = evaluate_rules(
        load_ruleset({"rules": [{"id": "min_receptive_field", "limit": 32}]}), analysis, other
    )
    assert result.measured == 32


def _appended(name: str, *layers: dict) -> dict:
    """The fixture's config with layers inserted after its last SeparableConv2D block."""
    config = copy.deepcopy(load_model_config(model_path(name)))
    entries = config["config"]["layers"]
    at = max(i for i, e in enumerate(entries) if e["class_name"] == "ReLU")
    previous = entries[at]["config"]["name"]
    for index, layer in enumerate(layers):
        name_ = f"extra_{index}"
        entries.insert(at + 1 + index, {
            "module": "keras.layers", "class_name": layer["class_name"], "registered_name": None,
            "name": name_, "config": {"name": name_, **layer["config"]},
            "inbound_nodes": [{"args": [{"class_name": "__keras_tensor__", "config": {
                # Sizes left unknown: the inserted layers change them.
                "shape": [None] * 4, "dtype": "float32", "keras_history": [previous, 0, 0]}}],
                "kwargs": {}}],
        })  # fmt: skip
        previous = name_
    follower = entries[at + 1 + len(layers)]["inbound_nodes"][0]["args"][0]["config"]
    follower["keras_history"] = [previous, 0, 0]
    follower["shape"] = [None] * 4  # the inserted layers change it
    return config


def test_receptive_field_hint_never_suggests_a_forbidden_pooling():
    # Under cifar10-dilated (MaxPooling2D forbidden) the hint offers a strided convolution; its
    # numbers are what every unit would see in the model with the change (traced again). The
    # inserted convolutions keep the 192 channels of the last block.
    conv = {"class_name": "Conv2D", "config": {"filters": 192, "kernel_size": 3, "padding": "same"}}
    strided = {"class_name": "Conv2D", "config": {"filters": 192, "kernel_size": 3, "strides": 2,
                                                  "padding": "same"}}  # fmt: skip
    pool = {"class_name": "MaxPooling2D", "config": {"pool_size": 2, "padding": "same"}}
    hint = _evaluate("breaks_no_dilation")["min_receptive_field"].hint
    assert "pooling" not in hint
    seen = _smallest(_appended("breaks_no_dilation", strided, conv))
    assert f"A 3x3 convolution with stride 2 and a 3x3 convolution after it: {seen}." in hint
    one_more = _smallest(_appended("breaks_no_dilation", conv))
    assert f"would make every unit see at least {one_more}." in hint
    ruleset = {"rules": [{"id": "min_receptive_field", "limit": 44}]}
    hint = _evaluate("breaks_no_dilation", ruleset)["min_receptive_field"].hint
    seen = _smallest(_appended("breaks_no_dilation", pool, conv))
    assert f"A 2x2 pooling (stride 2) and a 3x3 convolution after it: {seen}." in hint
    # Course formula 39 >= 32, but units at the border see 20: the hint says why.
    assert "a unit near the border sees only the part of its field inside the image" in hint


def _smallest(config: dict) -> str:
    report = compute_receptive_field(analyze(config).graph)
    return "x".join(str(v) for v in report.footprint.min)


def test_receptive_field_at_unknown_end_point_fails_with_reason():
    ruleset = {"rules": [{"id": "min_receptive_field", "limit": 8, "end_point": "nope"}]}
    result = _evaluate("smoke_separable", ruleset)["min_receptive_field"]
    assert result.passed is False
    assert result.message.startswith("The receptive field could not be computed:")
    assert "nope" in result.message


def test_results_carry_points_and_names_from_the_rule_set():
    ruleset = load_preset("cifar10-separable")
    results = evaluate_rules(
        ruleset, analyze(load_model_config(model_path("cifar10_separable_reference")))
    )
    assert [r.points for r in results] == [spec.points for spec in ruleset.rules]
    assert [r.to_dict()["name"] for r in results] == [spec.name for spec in ruleset.rules]
    assert set(results[0].to_dict()) == {
        "id",
        "name",
        "passed",
        "measured",
        "limit",
        "message",
        "hint",
        "points",
    }
