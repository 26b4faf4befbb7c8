"""Per-layer rules count calls and computation: shared layers, degenerate kernels, dead paths.

Models are built with Keras; the counts are checked against the model as written (a layer
called N times is N calls, as Keras' own ``layer._inbound_nodes`` says), the degenerate kernels
against `grader.rules.kernels` (itself checked against TensorFlow in test_rules_kernels.py), the
dead paths against `grader.graph_effect` (checked against Keras in test_graph_effect.py).
"""

from __future__ import annotations

import pytest

from grader.analysis import analyze
from grader.rules import evaluate_rules, load_ruleset
from tests.support.keras_models import keras, layers, to_config

pytestmark = pytest.mark.tf


def _results(model, rules):
    analysis = analyze(to_config(model))
    return {r.name: r for r in evaluate_rules(load_ruleset({"rules": rules}), analysis)}


def _head(x, classes=4):
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return layers.Dense(classes, name="classifier")(x)


def _zeroed(x, name="mul"):
    """`x` multiplied by a constant zero: a branch that cannot change the output."""
    return layers.Multiply(name=name)([x, layers.Rescaling(0.0, name=f"{name}_zero")(x)])


# --- separable convolutions ------------------------------------------------------------------


def test_a_shared_separable_layer_counts_once_per_call():
    inputs = keras.Input((16, 16, 3))
    shared = layers.SeparableConv2D(3, 3, padding="same", name="sep")
    x = shared(shared(shared(inputs)))
    model = keras.Model(inputs, _head(x))
    assert len(model.get_layer("sep")._inbound_nodes) == 3  # Keras: three calls

    result = _results(model, [{"id": "separable_conv_used", "min_count": 4}])["separable_conv_used"]

    assert (result.passed, result.measured) == (False, 3)
    assert result.message == (
        "The model has 3 separable convolutions, counted by call (`sep` called 3 times). "
        "Expected at least 4."
    )


@pytest.mark.parametrize(
    ("conv", "shape", "reason"),
    [
        (
            lambda: layers.SeparableConv2D(8, 1, name="sep"),
            (16, 16, 3),
            "1x1, no depthwise spatial filter (a 1x1 depthwise kernel only scales each channel)",
        ),
        (
            lambda: layers.SeparableConv2D(8, 3, padding="same", name="sep"),
            (1, 1, 3),
            "no depthwise spatial filter: its 3x3 window reads one position of its 1x1 input at "
            "a time (the other taps fall on padding)",
        ),
        (
            lambda: layers.SeparableConv1D(8, 1, name="sep"),
            (16, 3),
            "1, no depthwise spatial filter",
        ),
    ],
    ids=["1x1", "3x3-on-1x1-input", "conv1d-1"],
)
def test_a_separable_convolution_without_a_spatial_filter_is_not_counted(conv, shape, reason):
    inputs = keras.Input(shape)
    x = conv()(inputs)
    pool = layers.GlobalAveragePooling2D if len(shape) == 3 else layers.GlobalAveragePooling1D
    model = keras.Model(inputs, layers.Dense(4)(pool()(x)))

    result = _results(model, [{"id": "separable_conv_used"}])["separable_conv_used"]

    assert (result.passed, result.measured) == (False, 0)
    cls = "SeparableConv2D" if len(shape) == 3 else "SeparableConv1D"
    assert f"Not counted: `sep` ({cls}): {reason}" in result.message


def test_a_separable_kernel_wide_along_one_axis_counts_and_a_1x1_one_beside_it_does_not():
    inputs = keras.Input((16, 16, 3))
    x = layers.SeparableConv2D(8, (3, 1), padding="same", name="tall")(inputs)
    x = layers.SeparableConv2D(8, 1, name="flat")(x)
    result = _results(keras.Model(inputs, _head(x)), [{"id": "separable_conv_used"}])

    assert result["separable_conv_used"].measured == 1
    assert result["separable_conv_used"].message.startswith(
        "The model has 1 separable convolution (`tall`). Not counted: `flat`"
    )


def test_a_1x1_depthwise_then_pointwise_is_not_a_separable_convolution():
    inputs = keras.Input((16, 16, 3))
    x = layers.DepthwiseConv2D(1, name="dw")(inputs)
    x = layers.ReLU()(x)
    x = layers.Conv2D(8, 1, name="pw")(x)
    results = _results(keras.Model(inputs, _head(x)), [{"id": "separable_conv_used"}])

    result = results["separable_conv_used"]
    assert result.measured == 0
    assert "`dw` (DepthwiseConv2D): 1x1, no depthwise spatial filter" in result.message
    assert "Give `dw` (DepthwiseConv2D) a 3x3 kernel" in result.hint


def test_a_shared_depthwise_block_counts_per_call():
    inputs = keras.Input((16, 16, 8))
    dw = layers.DepthwiseConv2D(3, padding="same", name="dw")
    pw = layers.Conv2D(8, 1, name="pw")
    x = pw(dw(pw(dw(inputs))))
    result = _results(keras.Model(inputs, _head(x)), [{"id": "separable_conv_used"}])

    assert result["separable_conv_used"].measured == 2


# --- the first-convolution exemption ---------------------------------------------------------


def _separable_tail(x):
    return layers.SeparableConv2D(8, 3, padding="same", name="tail")(x)


@pytest.mark.parametrize(
    "preprocess",
    [
        lambda x: x,
        lambda x: layers.Rescaling(1 / 255)(x),
        lambda x: layers.RandomFlip("horizontal")(layers.Rescaling(1 / 255)(x)),
        lambda x: layers.BatchNormalization()(x),
        lambda x: layers.ZeroPadding2D(1)(layers.GaussianNoise(0.1)(x)),
    ],
    ids=["direct", "rescaling", "augmentation", "batch-norm", "noise-padding"],
)
def test_the_convolution_that_reads_the_image_is_exempt(preprocess):
    # A separable branch reads the image too, and comes first: the plain `stem` is not the
    # model's first convolution, but it is the plain one reading the image.
    inputs = keras.Input((16, 16, 3))
    image = preprocess(inputs)
    side = layers.SeparableConv2D(8, 3, padding="same", name="side")(image)
    x = layers.Conv2D(8, 3, padding="same", name="stem")(image)
    model = keras.Model(inputs, _head(_separable_tail(layers.Add()([side, x]))))

    result = _results(model, [{"id": "only_separable_convs", "allow_first_layer": True}])[
        "only_separable_convs"
    ]

    assert (result.passed, result.measured) == (True, [])
    assert "(`stem`, the convolution that reads the image, is exempt)" in result.message


def test_only_one_call_reading_the_image_is_exempt():
    inputs = keras.Input((16, 16, 3))
    stem_a = layers.Conv2D(3, 3, padding="same", name="stem_a")
    a = stem_a(inputs)
    b = layers.Conv2D(3, 3, padding="same", name="stem_b")(inputs)
    x = stem_a(layers.Add()([a, b]))
    result = _results(
        keras.Model(inputs, _head(_separable_tail(x))),
        [{"id": "only_separable_convs", "allow_first_layer": True}],
    )["only_separable_convs"]

    assert (result.passed, result.measured) == (False, ["stem_b", "stem_a (call 2)"])


def test_a_plain_convolution_after_a_bottleneck_does_not_read_the_image():
    inputs = keras.Input((16, 16, 3))
    x = layers.Conv2D(8, 1, name="bottleneck")(inputs)
    x = layers.Conv2D(8, 3, padding="same", name="stem")(x)
    result = _results(
        keras.Model(inputs, _head(_separable_tail(x))),
        [{"id": "only_separable_convs", "allow_first_layer": True}],
    )["only_separable_convs"]

    assert (result.passed, result.measured) == (False, ["stem"])
    assert (
        "No plain convolution call reads the image (directly, or through preprocessing, "
        "augmentation, normalization, noise or activations); `stem` reads the output of "
        "`bottleneck` (Conv2D)."
    ) in result.message


def test_the_exempt_stem_called_again_is_a_plain_convolution():
    inputs = keras.Input((16, 16, 3))
    stem = layers.Conv2D(3, 3, padding="same", name="stem")
    x = stem(layers.ReLU()(stem(inputs)))
    result = _results(
        keras.Model(inputs, _head(_separable_tail(x))),
        [{"id": "only_separable_convs", "allow_first_layer": True}],
    )["only_separable_convs"]

    assert (result.passed, result.measured) == (False, ["stem (call 2)"])
    assert result.message.startswith("Layer `stem` (Conv2D, call 2 of 2) has a 3x3 kernel.")
    assert (
        "Only the call that reads the image is exempt (`stem` call 1); `stem` call 2 reads "
        "another layer's output."
    ) in result.message


def test_a_plain_3x3_convolution_on_a_1x1_map_counts_as_pointwise():
    inputs = keras.Input((1, 1, 8))
    x = layers.Conv2D(8, 3, padding="same", name="head_conv")(inputs)
    result = _results(keras.Model(inputs, _head(x)), [{"id": "only_separable_convs"}])[
        "only_separable_convs"
    ]

    assert (result.passed, result.measured) == (True, [])
    assert "`head_conv` (Conv2D): counted as pointwise: its 3x3 window reads one position" in (
        result.message
    )


def test_a_dead_plain_convolution_is_not_an_offender_but_an_undecided_one_is():
    inputs = keras.Input((16, 16, 3))
    x = layers.SeparableConv2D(8, 3, padding="same", name="sep")(inputs)
    dead = layers.Conv2D(8, 3, padding="same", name="dead")(x)
    maybe = layers.Conv2D(
        8,
        3,
        padding="same",
        kernel_constraint=keras.constraints.MaxNorm(0.0),
        name="maybe",
    )(x)
    x = layers.Add()([x, _zeroed(dead), maybe])
    result = _results(keras.Model(inputs, _head(x)), [{"id": "only_separable_convs"}])[
        "only_separable_convs"
    ]

    assert (result.passed, result.measured) == (False, ["maybe"])
    assert "`dead` (Conv2D): cannot change the output" in result.message


# --- dilation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("conv", "counted"),
    [
        (lambda: layers.Conv2D(8, 3, dilation_rate=2, padding="same", name="c"), 1),
        (lambda: layers.Conv2D(8, (3, 1), dilation_rate=(2, 1), padding="same", name="c"), 1),
        (lambda: layers.Conv2D(8, (3, 1), dilation_rate=(1, 2), padding="same", name="c"), 0),
        (lambda: layers.DepthwiseConv2D(1, dilation_rate=3, name="c"), 0),
        (lambda: layers.SeparableConv2D(8, 3, dilation_rate=16, padding="same", name="c"), 0),
    ],
    ids=["3x3", "3x1-along-height", "3x1-along-width", "1x1-depthwise", "past-the-input"],
)
def test_dilation_counts_only_where_the_kernel_filters(conv, counted):
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, _head(conv()(inputs)))
    result = _results(model, [{"id": "dilated_conv_used"}])["dilated_conv_used"]

    assert result.measured == counted
    if counted:  # the counted call is described by its kernel, not by its rate alone
        from grader.rules.kernels import describe_kernel

        assert f"`c` (Conv2D {describe_kernel(analyze(to_config(model)).graph.nodes[1])})" in (
            result.message
        )
        assert "dilation 2x1" in result.message or "dilation 2x2" in result.message
    else:
        assert "Not counted: `c`" in result.message


def test_a_shared_dilated_convolution_counts_per_call():
    inputs = keras.Input((16, 16, 3))
    shared = layers.SeparableConv2D(3, 3, dilation_rate=2, padding="same", name="dil")
    model = keras.Model(inputs, _head(shared(shared(inputs))))
    result = _results(model, [{"id": "dilated_conv_used", "min_count": 2}])["dilated_conv_used"]

    assert (result.passed, result.measured) == (True, 2)
    assert "`dil (call 1)` (SeparableConv2D 3x3, dilation 2x2)" in result.message


def test_a_dead_dilated_convolution_is_not_counted():
    inputs = keras.Input((16, 16, 3))
    x = layers.SeparableConv2D(8, 3, padding="same", name="sep")(inputs)
    d = layers.SeparableConv2D(8, 3, dilation_rate=2, padding="same", name="dil")(x)
    x = layers.Add()([x, _zeroed(d)])
    result = _results(keras.Model(inputs, _head(x)), [{"id": "dilated_conv_used"}])[
        "dilated_conv_used"
    ]

    assert result.measured == 0
    assert "`dil` (SeparableConv2D): cannot change the output" in result.message
    assert "not counted" in result.hint


# --- layer classes, pooling, dropout ---------------------------------------------------------


def test_required_layers_counts_calls_and_skips_dead_ones():
    inputs = keras.Input((16, 16, 3))
    norm = layers.BatchNormalization(name="bn")
    x = layers.SeparableConv2D(8, 3, padding="same")(inputs)
    x = norm(x)
    x = norm(layers.SeparableConv2D(8, 3, padding="same")(x))
    dead = layers.BatchNormalization(name="dead_bn")(x)
    x = layers.Add()([x, _zeroed(dead)])
    result = _results(
        keras.Model(inputs, _head(x)),
        [{"id": "required_layers", "layers": ["BatchNormalization"], "min_count": 3}],
    )["required_layers"]

    assert (result.passed, result.measured) == (False, {"BatchNormalization": 2})
    assert "(counted by call: `bn` (2 calls))" in result.message
    assert "`dead_bn` (BatchNormalization): cannot change the output" in result.message


def test_forbidden_layers_ignores_a_dead_call_and_names_each_live_one():
    inputs = keras.Input((16, 16, 3))
    pool = layers.MaxPooling2D(name="pool")
    x = pool(pool(layers.SeparableConv2D(8, 3, padding="same")(inputs)))
    dead = layers.AveragePooling2D(1, name="dead_pool")(x)
    x = layers.Add()([x, _zeroed(dead)])
    results = _results(
        keras.Model(inputs, _head(x)),
        [
            {"id": "forbidden_layers", "layers": ["MaxPooling2D"]},
            {"id": "forbidden_layers", "name": "avg", "layers": ["AveragePooling2D"]},
        ],
    )

    assert results["forbidden_layers"].measured == ["pool (call 1)", "pool (call 2)"]
    assert results["forbidden_layers"].message.startswith(
        "Layer `pool` (MaxPooling2D, call 1 of 2) is not allowed (1 more forbidden layer call)."
    )
    assert (results["avg"].passed, results["avg"].measured) == (True, [])
    assert "`dead_pool` (AveragePooling2D): cannot change the output" in results["avg"].message


def test_global_pooling_on_a_dead_branch_does_not_count():
    inputs = keras.Input((8, 8, 3))
    x = layers.SeparableConv2D(4, 3, padding="same", name="sep")(inputs)
    flat = layers.Flatten(name="flatten")(x)
    pooled = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Concatenate()([flat, _zeroed(pooled)])
    result = _results(keras.Model(inputs, layers.Dense(4)(x)), [{"id": "global_pooling_used"}])[
        "global_pooling_used"
    ]

    assert (result.passed, result.measured) == (False, 0)
    assert "`gap` (GlobalAveragePooling2D): cannot change the output" in result.message


def test_max_dropout_ignores_a_dropout_that_cannot_change_the_output():
    inputs = keras.Input((8, 8, 3))
    x = layers.SeparableConv2D(4, 3, padding="same", name="sep")(inputs)
    dead = layers.Dropout(0.5, name="leftover")(x)
    x = layers.Add()([x, _zeroed(dead)])
    x = layers.Dropout(0.05, name="kept")(x)
    result = _results(keras.Model(inputs, _head(x)), [{"id": "max_dropout", "limit": 0.1}])[
        "max_dropout"
    ]

    assert (result.passed, result.measured) == (True, 0.05)
