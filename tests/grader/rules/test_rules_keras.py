"""Rules and hints on models built with Keras right here, checked against what Keras reports.

Marked ``tf``: importing Keras costs seconds. Covers what the committed fixtures do not: every
dropout-like layer, hand-factored depthwise-separable blocks, nested models, and the separable
parameter counts a hint promises, compared with Keras' own ``count_params()``.
"""

from __future__ import annotations

import pytest

from grader.analysis import analyze
from grader.graph_builder import build_graph
from grader.hints import separable_saving
from grader.receptive_field import compute_receptive_field
from grader.rules import evaluate_rules, load_ruleset
from grader.rules.context import RuleContext
from tests.support.keras_models import keras, layers, to_config

pytestmark = pytest.mark.tf


def _results(model, rules):
    analysis = analyze(to_config(model))
    return {r.name: r for r in evaluate_rules(load_ruleset({"rules": rules}), analysis)}


def _head(x, classes=4):
    x = layers.GlobalAveragePooling2D()(x)
    return layers.Dense(classes)(x)


@pytest.mark.parametrize(
    ("layer", "rate", "label"),
    [
        (lambda: layers.SpatialDropout2D(0.3, name="drop"), 0.3, "SpatialDropout2D"),
        (lambda: layers.GaussianDropout(0.2, name="drop"), 0.2, "GaussianDropout"),
        (lambda: layers.AlphaDropout(0.15, name="drop"), 0.15, "AlphaDropout"),
        (lambda: layers.Dropout(0.12, name="drop"), 0.12, "Dropout"),
    ],
)
def test_max_dropout_covers_every_dropout_layer(layer, rate, label):
    inputs = keras.Input((8, 8, 3))
    x = layers.SeparableConv2D(4, 3)(inputs)
    x = layers.Dropout(0.05)(x)
    x = layer()(x)
    model = keras.Model(inputs, _head(x))
    result = _results(model, [{"id": "max_dropout", "limit": 0.1}])["max_dropout"]
    assert result.passed is False
    assert result.measured == pytest.approx(rate)
    assert result.message == f"Layer `drop` ({label}) has rate {rate:.2f}. Expected at most 0.10."


def test_depthwise_then_pointwise_counts_as_separable_and_is_allowed():
    inputs = keras.Input((16, 16, 3))
    x = layers.Conv2D(8, 3, padding="same", name="stem")(inputs)
    x = layers.DepthwiseConv2D(3, padding="same", dilation_rate=2, name="dw")(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    x = layers.Conv2D(16, 1, name="pw")(x)
    model = keras.Model(inputs, _head(x))
    results = _results(
        model,
        [
            {"id": "separable_conv_used"},
            {"id": "separable_conv_used", "name": "strict", "include_depthwise": False},
            {"id": "only_separable_convs", "allow_first_layer": True},
            {"id": "dilated_conv_used"},
        ],
    )
    assert (results["separable_conv_used"].passed, results["separable_conv_used"].measured) == (
        True,
        1,
    )
    assert results["strict"].passed is False
    assert results["only_separable_convs"].passed is True
    assert results["dilated_conv_used"].measured == 1


def test_depthwise_feeding_a_3x3_conv_is_not_separable():
    inputs = keras.Input((16, 16, 3))
    x = layers.DepthwiseConv2D(3, padding="same")(inputs)
    x = layers.Conv2D(8, 3, name="not_pointwise")(x)
    model = keras.Model(inputs, _head(x))
    results = _results(model, [{"id": "separable_conv_used"}, {"id": "only_separable_convs"}])
    assert results["separable_conv_used"].measured == 0
    assert results["only_separable_convs"].measured == ["not_pointwise"]


def test_rules_see_layers_inside_nested_models():
    block = keras.Sequential(
        # Named: Keras numbers unnamed layers per process (`max_pooling2d_4` after other tests).
        [keras.Input((16, 16, 8)), layers.SeparableConv2D(8, 3), layers.MaxPooling2D(name="pool")],
        name="block",
    )
    inputs = keras.Input((16, 16, 3))
    x = layers.SeparableConv2D(8, 3, padding="same")(inputs)
    x = block(x)
    model = keras.Model(inputs, _head(x))
    results = _results(
        model,
        [{"id": "forbidden_layers", "layers": ["MaxPooling2D"]}, {"id": "separable_conv_used"}],
    )
    assert results["forbidden_layers"].measured == ["block/pool"]
    assert results["separable_conv_used"].measured == 2


@pytest.mark.parametrize(
    ("conv", "channels"),
    [
        (lambda: layers.Conv2D(32, 3, name="c"), 16),
        (lambda: layers.Conv2D(24, 5, use_bias=False, name="c"), 8),
        (lambda: layers.Conv2D(12, (3, 1), name="c"), 6),
        (lambda: layers.Conv1D(10, 7, name="c"), 5),
    ],
)
def test_separable_saving_matches_keras_count_params(conv, channels):
    layer = conv()
    rank = 1 if isinstance(layer, layers.Conv1D) else 2
    shape = (12,) * rank + (channels,)
    inputs = keras.Input(shape)
    model = keras.Model(inputs, layer(inputs))
    analysis = analyze(to_config(model))
    [facts] = [x for x in RuleContext(analysis=analysis).layers if x.name == "c"]
    saving = separable_saving(facts)
    assert saving is not None

    config = layer.get_config()
    separable_cls = layers.SeparableConv1D if rank == 1 else layers.SeparableConv2D
    separable = separable_cls(config["filters"], config["kernel_size"], use_bias=config["use_bias"])
    separable.build((None, *shape))
    assert saving.params == layer.count_params()
    assert saving.separable_params == separable.count_params()
    assert saving.separable_class == type(separable).__name__


def test_max_params_trainable_matches_keras_with_frozen_layers():
    inputs = keras.Input((8, 8, 3))
    frozen = layers.SeparableConv2D(8, 3, name="frozen")
    frozen.trainable = False
    x = frozen(inputs)
    x = layers.BatchNormalization()(x)
    model = keras.Model(inputs, _head(x))
    trainable = sum(int(w.numpy().size) for w in model.trainable_weights)
    results = _results(
        model,
        [
            {"id": "max_params", "limit": trainable, "count": "trainable"},
            {"id": "max_params", "name": "total", "limit": trainable},
        ],
    )
    assert results["max_params"].measured == trainable
    assert results["max_params"].passed is True
    assert results["total"].measured == model.count_params()
    assert results["total"].passed is False


def test_report_survives_a_model_without_a_receptive_field():
    from grader.report import check_model, format_text

    # A multilayer perceptron has no spatial layer: no receptive field, yet shapes and parameters
    # are reported and the receptive-field rule fails with the reason.
    inputs = keras.Input((48,))
    x = layers.Dense(16, activation="relu")(inputs)
    model = keras.Model(inputs, layers.Dense(4)(x))
    report = check_model(to_config(model), {"rules": [{"id": "min_receptive_field", "limit": 8}]})
    assert report["params"]["total"] == model.count_params()
    assert report["receptive_field"]["size"] is None
    assert report["receptive_field"]["error"]["kind"] == "receptive_field"
    [rule] = report["rules"]
    assert rule["passed"] is False
    assert rule["message"].startswith("The receptive field could not be computed:")
    assert "Receptive field: not computed" in format_text(report)


def test_mobilenet_v1_against_its_published_architecture():
    # Howard et al. 2017 (Table 1): a 3x3 stem convolution, then 13 depthwise-separable blocks
    # (DepthwiseConv2D, BN, ReLU, 1x1 Conv2D). Araujo et al., Distill 2019: receptive field 315.
    model = keras.applications.MobileNet(weights=None, input_shape=(128, 128, 3))
    rules = [
        {"id": "separable_conv_used"},
        {"id": "only_separable_convs", "allow_first_layer": True},
        {"id": "only_separable_convs", "name": "strict"},
        {"id": "min_receptive_field", "limit": 315},
        {"id": "max_params", "limit": 100_000},
        {"id": "max_dropout", "limit": 0.1},
    ]
    results = _results(model, rules)
    assert results["separable_conv_used"].measured == 13
    assert results["only_separable_convs"].passed is True
    assert results["strict"].measured == ["conv1"]
    # The course formula gives 315 on a 128x128 image: every unit's window covers the whole
    # image (checked unit by unit on the formula), so every unit sees 128x128 pixels.
    report = compute_receptive_field(build_graph(to_config(model)))
    assert report.size == (315, 315)
    assert {report.interval((u, v), clip=True) for u in range(4) for v in range(4)} == {
        ((0, 127), (0, 127))
    }
    assert results["min_receptive_field"].measured == 128
    assert "(course formula: 315x315)" in results["min_receptive_field"].message
    assert results["max_params"].measured == model.count_params()
    assert "`conv_pw_13` (Conv2D)" in results["max_params"].hint
    assert "Replace `conv1`" not in results["max_params"].hint  # saves 741 of millions
    assert "in `dropout` (Dropout)" in results["max_dropout"].message
    assert "is 0.001," in results["max_dropout"].message  # MobileNet's default dropout 1e-3
