"""Rule gaming: architectures that satisfy a rule's letter without computing what it asks for.

Each attack passed every static rule of a shipped preset before rules counted calls and
computation (a "use SeparableConv2D" assignment scored with no depthwise spatial filter at all):

- degenerate kernels: 1x1 SeparableConv2D layers (a per-channel scale and a pointwise
  convolution) next to a plain stem whose huge kernel buys the receptive field; dilation on a
  1x1 kernel, or a dilation so wide that every dilated tap falls on padding;
- counting by name: the exempt first convolution applied again and again;
- paths that cannot change the output: a SeparableConv2D branch multiplied by zero (or made
  constant otherwise) next to a plain main path.

Each is checked statically with `grader.report.check_model` under the shipped preset, and each
class once through the whole local pipeline (`manage.py grade`), where the static check ends
the grading before any training. A layer called several times on purpose is legitimate: it is
counted once per call, and the message says so.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from grader.presets import load_preset
from grader.report import check_model

pytestmark = pytest.mark.tf

_TRAINING_RULES = {"max_epochs", "min_val_accuracy"}


def _keras() -> tuple[Any, Any, Any]:
    from tests.support.keras_models import keras, layers

    return keras, layers, keras.constraints


def _config(model: Any) -> dict[str, Any]:
    from tests.support.keras_models import to_config

    return to_config(model)


def _rules(model: Any, preset: str) -> dict[str, dict[str, Any]]:
    report = check_model(_config(model), load_preset(preset))
    return {rule["id"]: rule for rule in report["rules"]}


def _static_failures(rules: dict[str, dict[str, Any]]) -> set[str]:
    return {rule_id for rule_id, r in rules.items() if r["passed"] is False}


def _head(x: Any, classes: int = 10) -> Any:
    _, layers, _ = _keras()
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return layers.Dense(classes, activation="softmax", name="classifier")(x)


# --- degenerate kernels ----------------------------------------------------------------------


def one_by_one_separable_model() -> Any:
    """A 63x63 plain stem (exempt, it reads the image) buys the receptive field: each of its
    units sees the whole 32x32 image; the "separable" convolutions are 1x1: pointwise
    convolutions after a per-channel scale."""
    keras, layers, _ = _keras()
    inputs = keras.Input((32, 32, 3))
    x = layers.Conv2D(4, 63, padding="same", activation="relu", name="stem")(inputs)
    for k in range(3):
        x = layers.SeparableConv2D(32, 1, activation="relu", name=f"sep_{k}")(x)
    return keras.Model(inputs, _head(x))


def test_one_by_one_separable_convs_do_not_satisfy_a_separable_assignment():
    rules = _rules(one_by_one_separable_model(), "cifar10-separable")

    assert _static_failures(rules) == {"separable_conv_used"}
    rule = rules["separable_conv_used"]
    assert rule["measured"] == 0
    assert (
        "Not counted: `sep_0`, `sep_1`, `sep_2` (SeparableConv2D): 1x1, no depthwise spatial filter"
    ) in rule["message"]
    assert "a 3x3 kernel" in rule["hint"]


def _dilated_model(last: Any) -> Any:
    """Separable, strided, no pooling, a 49x49 field: all cifar10-dilated asks, bar the last
    layer's dilation, which filters nothing."""
    keras, layers, _ = _keras()
    inputs = keras.Input((32, 32, 3))
    x = layers.Conv2D(16, 3, padding="same", activation="relu", name="stem")(inputs)
    for k in range(3):
        x = layers.SeparableConv2D(32, 3, strides=2, padding="same", name=f"down_{k}")(x)
    for k in range(2):
        x = layers.SeparableConv2D(32, 3, padding="same", name=f"conv_{k}")(x)
    x = last(layers)(x)
    return keras.Model(inputs, _head(x))


@pytest.mark.parametrize(
    ("last", "reason"),
    [
        (
            lambda layers: layers.SeparableConv2D(32, 1, dilation_rate=4, name="dilated"),
            "dilation rate 4x4 on a 1x1 kernel: nothing to dilate",
        ),
        (
            # On the 4x4 map, taps 16 apart: one reads the input, the other two read padding.
            lambda layers: layers.SeparableConv2D(
                32, 3, dilation_rate=16, padding="same", name="dilated"
            ),
            "dilation rate 16x16 on a 3x3 kernel over a 4x4 input: the dilated taps fall on "
            "padding",
        ),
        (
            lambda layers: layers.SeparableConv2D(
                32, (3, 1), dilation_rate=(1, 2), padding="same", name="dilated"
            ),
            "dilation rate 1x2 on a 3x1 kernel: the kernel is 1 wide along every dilated axis",
        ),
    ],
    ids=["1x1", "taps-on-padding", "1-wide-axis"],
)
def test_dilation_that_widens_no_kernel_does_not_satisfy_a_dilation_assignment(last, reason):
    rules = _rules(_dilated_model(last), "cifar10-dilated")

    assert "dilated_conv_used" in _static_failures(rules)
    rule = rules["dilated_conv_used"]
    assert rule["measured"] == 0
    assert "Not counted: `dilated` (SeparableConv2D): " + reason in rule["message"]


def test_a_real_dilation_on_the_same_model_passes():
    rules = _rules(
        _dilated_model(
            lambda layers: layers.SeparableConv2D(
                32, 3, dilation_rate=2, padding="same", name="dilated"
            )
        ),
        "cifar10-dilated",
    )

    assert _static_failures(rules) == set()
    assert rules["dilated_conv_used"]["measured"] == 1
    assert rules["dilated_conv_used"]["message"] == (
        "The model has 1 dilated convolution: `dilated` (SeparableConv2D 3x3, dilation 2x2)."
    )


# --- counting by call ------------------------------------------------------------------------


def reapplied_stem_model() -> Any:
    """The plain 3x3 stem is exempt because it reads the image; calling it seven more times
    makes eight plain 3x3 convolutions under one exempt name. Enough separable convolutions
    follow for every unit to see the whole image."""
    keras, layers, _ = _keras()
    inputs = keras.Input((32, 32, 3))
    stem = layers.Conv2D(3, 3, padding="same", activation="relu", name="stem")
    x = inputs
    for _ in range(8):
        x = stem(x)
    x = layers.SeparableConv2D(32, 3, strides=2, padding="same", name="sep_0")(x)
    x = layers.SeparableConv2D(32, 3, strides=2, padding="same", name="sep_1")(x)
    for k in range(2, 7):
        x = layers.SeparableConv2D(32, 3, padding="same", name=f"sep_{k}")(x)
    return keras.Model(inputs, _head(x))


def test_reapplying_the_exempt_stem_is_not_exempt():
    rules = _rules(reapplied_stem_model(), "cifar10-separable")

    assert _static_failures(rules) == {"only_separable_convs"}
    rule = rules["only_separable_convs"]
    assert rule["measured"] == [f"stem (call {n})" for n in range(2, 9)]
    assert rule["message"].startswith("Layer `stem` (Conv2D, call 2 of 8) has a 3x3 kernel")
    assert "Only the call that reads the image is exempt (`stem` call 1)" in rule["message"]


def test_a_separable_layer_called_four_times_counts_four_calls_and_says_so():
    keras, layers, _ = _keras()
    inputs = keras.Input((16, 16, 3))
    x = layers.SeparableConv2D(8, 3, padding="same", name="stem")(inputs)
    shared = layers.SeparableConv2D(8, 3, padding="same", name="shared")
    for _ in range(4):
        x = shared(x)
    model = keras.Model(inputs, _head(x, classes=4))
    ruleset = {"rules": [{"id": "separable_conv_used", "min_count": 5}]}

    [rule] = check_model(_config(model), ruleset)["rules"]

    assert (rule["passed"], rule["measured"]) == (True, 5)
    assert rule["message"] == (
        "The model has 5 separable convolutions, counted by call (`stem`, `shared` called 4 times)."
    )


# --- paths that cannot change the output -----------------------------------------------------


def _zero_product(layers: Any, b: Any) -> Any:
    return layers.Multiply(name="mul")([b, layers.Rescaling(0.0, name="zero")(b)])


def _clipped_to_zero(layers: Any, b: Any) -> Any:
    return layers.ReLU(max_value=0.0, name="clip")(b)


def _minus_itself(layers: Any, b: Any) -> Any:
    return layers.Subtract(name="sub")([b, b])


def _main_path(layers: Any, inputs: Any) -> Any:
    x = inputs
    for k in range(7):
        x = layers.Conv2D(8, 3, padding="same", activation="relu", name=f"main_{k}")(x)
    return x


def dead_branch_model(kill: Any = _zero_product, input_shape: tuple[int, ...] = (16, 16, 3)) -> Any:
    """Plain convolutions do the work (seven 3x3: every unit sees at least 8x8 of the 16x16
    image, as the smoke preset asks); two SeparableConv2D sit on a branch that `kill` makes
    constant before it is added to the main path."""
    keras, layers, _ = _keras()
    inputs = keras.Input(input_shape)
    x = _main_path(layers, inputs)
    b = layers.SeparableConv2D(8, 3, padding="same", name="fake_0")(x)
    b = layers.SeparableConv2D(8, 3, padding="same", name="fake_1")(b)
    x = layers.Add(name="add")([x, kill(layers, b)])
    classes = 4 if input_shape[0] == 16 else 10
    return keras.Model(inputs, _head(x, classes=classes))


@pytest.mark.parametrize(
    ("kill", "why"),
    [
        (
            _zero_product,
            "cannot change the output: `mul` (Multiply) multiplies it by a constant zero "
            "(`zero` (Rescaling) has scale 0.0: it outputs 0.0 whatever its input)",
        ),
        (
            _clipped_to_zero,
            "cannot change the output: `clip` (ReLU) has max_value 0: it outputs 0 whatever its "
            "input",
        ),
        (
            _minus_itself,
            "cannot change the output: `sub` (Subtract) subtracts a tensor from itself",
        ),
    ],
    ids=["multiply-by-zero", "relu-max-0", "subtract-itself"],
)
def test_a_separable_branch_that_cannot_change_the_output_is_not_counted(kill, why):
    rules = _rules(dead_branch_model(kill), "smoke")

    assert _static_failures(rules) == {"separable_conv_used"}
    rule = rules["separable_conv_used"]
    assert rule["measured"] == 0
    assert f"Not counted: `fake_0`, `fake_1` (SeparableConv2D): {why}" in rule["message"]


def test_a_dead_separable_branch_does_not_satisfy_the_cifar10_separable_assignment():
    keras, layers, _ = _keras()
    inputs = keras.Input((32, 32, 3))
    x = layers.Conv2D(4, 63, padding="same", activation="relu", name="stem")(inputs)
    b = layers.SeparableConv2D(4, 3, padding="same", name="fake")(x)
    x = layers.Add(name="add")([x, _zero_product(layers, b)])
    rules = _rules(keras.Model(inputs, _head(x)), "cifar10-separable")

    assert _static_failures(rules) == {"separable_conv_used"}
    assert rules["separable_conv_used"]["measured"] == 0


def test_a_branch_zeroed_by_a_weight_constraint_is_refused_as_undecidable():
    keras, layers, constraints = _keras()
    inputs = keras.Input((16, 16, 3))
    x = _main_path(layers, inputs)
    b = layers.SeparableConv2D(8, 3, padding="same", name="fake_0")(x)
    b = layers.SeparableConv2D(
        8, 3, padding="same", pointwise_constraint=constraints.MaxNorm(0.0), name="fake_1"
    )(b)
    x = layers.Add(name="add")([x, b])
    rules = _rules(keras.Model(inputs, _head(x, classes=4)), "smoke")

    assert _static_failures(rules) == {"separable_conv_used"}
    rule = rules["separable_conv_used"]
    assert rule["measured"] == 0
    assert (
        "`fake_0`, `fake_1` (SeparableConv2D): the grader cannot tell whether it changes the "
        "output: `fake_1` (SeparableConv2D) has `pointwise_constraint` MaxNorm(max_value=0.0)"
    ) in rule["message"]
    assert "such layers are refused in an assignment that counts layers" in rule["message"]


# --- the whole pipeline ----------------------------------------------------------------------


@pytest.fixture
def env_dirs(tmp_path: Path, bwrap_available: None) -> dict[str, Path]:
    # The attacks now end at the static check: no dataset is read, so none is prepared (cifar10
    # cannot be downloaded here; before the fix, grading went on to training and failed).
    data = tmp_path / "data"
    data.mkdir()
    return {"tmp": tmp_path, "data": data}


@pytest.mark.bwrap
@pytest.mark.parametrize(
    ("build", "preset", "failed_rule"),
    [
        (one_by_one_separable_model, "cifar10-separable", "separable_conv_used"),
        (reapplied_stem_model, "cifar10-separable", "only_separable_convs"),
        (dead_branch_model, "smoke", "separable_conv_used"),
    ],
    ids=["degenerate-kernel", "exemption-by-call", "dead-branch"],
)
def test_grade_ends_a_gaming_model_at_the_static_check(
    build, preset, failed_rule, env_dirs, tmp_path
):
    from tests.workers.test_grade_command import run_grade

    path = tmp_path / "model.json"
    path.write_text(json.dumps(_config(build())))

    completed = run_grade(str(path), "--assignment", preset, "--format", "json", env_dirs=env_dirs)

    assert completed.returncode == 1, completed.stdout + completed.stderr
    report = json.loads(completed.stdout)
    assert (report["status"], report["reason"]) == ("failed", "rules")
    failed = [r["id"] for r in report["checks"]["rules"] if r["passed"] is False]
    assert failed == [failed_rule]
    assert report["training"] is None and report["evaluation"] is None
    assert report["score"] is None or report["score"] < 100
