"""Shape inference against Keras: layouts, paddings and random architectures.

Shapes are where a grader silently goes wrong (channels_first, 'same' with strides, dilations,
transposed convolutions), so besides the per-layer table in test_params.py these cases stress
the geometry, and 36 seeded random CNNs (branches, merges, nested and shared blocks) compare the
whole analysis, every layer, with Keras.
"""

from __future__ import annotations

import functools
from collections import Counter

import pytest

from grader.analysis import analyze
from grader.errors import InvalidModelConfig
from tests.grader.layers.test_params import assert_matches_keras
from tests.support.keras_models import (
    ModelTruth,
    keras,
    keras_truth,
    layers,
    random_cnn,
    single_layer_model,
    to_config,
)

pytestmark = pytest.mark.tf

CF = "channels_first"

# (case id, input shape, layers applied in turn)
GEOMETRY_CASES = [
    ("cf_conv2d", (3, 11, 9), lambda: [layers.Conv2D(5, 3, strides=2, data_format=CF)]),
    ("cf_conv2d_same", (3, 11, 9), lambda: [layers.Conv2D(5, 4, padding="same", data_format=CF)]),
    ("cf_conv1d", (4, 13), lambda: [layers.Conv1D(2, 3, data_format=CF)]),
    ("cf_conv3d", (2, 6, 7, 5), lambda: [layers.Conv3D(3, 2, data_format=CF)]),
    ("cf_separable", (3, 11, 9), lambda: [layers.SeparableConv2D(4, 3, data_format=CF)]),
    (
        "cf_depthwise",
        (3, 11, 9),
        lambda: [layers.DepthwiseConv2D(3, depth_multiplier=2, data_format=CF)],
    ),
    ("cf_transpose", (3, 5, 4), lambda: [layers.Conv2DTranspose(2, 3, strides=2, data_format=CF)]),
    (
        "cf_pool_flatten",
        (3, 11, 9),
        lambda: [layers.MaxPooling2D(2, data_format=CF), layers.Flatten(data_format=CF)],
    ),
    ("cf_gap_keepdims", (3, 11, 9), lambda: [layers.GlobalAveragePooling2D(CF, keepdims=True)]),
    ("cf_batchnorm", (3, 11, 9), lambda: [layers.BatchNormalization(axis=1)]),
    ("cf_zero_padding", (3, 11, 9), lambda: [layers.ZeroPadding2D((1, 2), data_format=CF)]),
    ("cf_cropping", (3, 11, 9), lambda: [layers.Cropping2D((1, 2), data_format=CF)]),
    ("cf_upsampling", (3, 5, 4), lambda: [layers.UpSampling2D(2, data_format=CF)]),
    ("cf_resizing", (3, 11, 9), lambda: [layers.Resizing(5, 4, data_format=CF)]),
    ("cf_center_crop", (3, 11, 9), lambda: [layers.CenterCrop(5, 4, data_format=CF)]),
    ("cf_dense_last_axis", (3, 11, 9), lambda: [layers.Dense(2)]),
    ("same_stride3_odd", (17, 13, 2), lambda: [layers.Conv2D(2, 5, strides=3, padding="same")]),
    ("valid_stride3", (17, 13, 2), lambda: [layers.Conv2D(2, 5, strides=3)]),
    ("pool_stride_ne_size", (17, 13, 2), lambda: [layers.MaxPooling2D(3, strides=2)]),
    ("pool_same_stride", (17, 13, 2), lambda: [layers.AveragePooling2D(2, 3, padding="same")]),
    ("dilated_valid", (17, 13, 2), lambda: [layers.Conv2D(2, 3, dilation_rate=(3, 2))]),
    (
        "dilated_same",
        (17, 13, 2),
        lambda: [layers.SeparableConv2D(2, 3, dilation_rate=4, padding="same")],
    ),
    (
        "transpose_same_odd_stride",
        (5, 7, 2),
        lambda: [layers.Conv2DTranspose(3, 4, strides=3, padding="same")],
    ),
    (
        "transpose_output_padding_same",
        (5, 7, 2),
        lambda: [layers.Conv2DTranspose(3, 3, strides=2, padding="same", output_padding=1)],
    ),
    ("unknown_spatial_conv", (None, None, 3), lambda: [layers.Conv2D(4, 3, strides=2)]),
    (
        "unknown_spatial_gap",
        (None, None, 3),
        lambda: [layers.Conv2D(4, 3), layers.GlobalMaxPooling2D()],
    ),
    ("unknown_length_conv1d", (None, 4), lambda: [layers.Conv1D(3, 3, padding="causal")]),
    ("reshape_then_dense", (4, 6), lambda: [layers.Reshape((3, 8)), layers.Dense(5)]),
    ("permute_then_conv1d", (4, 6), lambda: [layers.Permute((2, 1)), layers.Conv1D(2, 2)]),
]


@pytest.mark.parametrize(
    ("input_shape", "factory"),
    [pytest.param(shape, factory, id=case) for case, shape, factory in GEOMETRY_CASES],
)
def test_geometry_matches_keras(input_shape, factory) -> None:
    model = single_layer_model(input_shape, factory())
    assert_matches_keras(analyze(to_config(model)), keras_truth(model))


RANDOM_SEEDS = range(36)


@functools.cache
def random_case(seed: int) -> tuple[dict, ModelTruth]:
    """Config and Keras truth of a random CNN, built once per session (builds cost seconds)."""
    model = random_cnn(seed)
    return to_config(model), keras_truth(model)


@pytest.mark.parametrize("seed", RANDOM_SEEDS)
def test_random_cnn_matches_keras(seed: int) -> None:
    config, truth = random_case(seed)
    assert_matches_keras(analyze(config), truth)


def test_random_cnns_cover_the_features_they_claim() -> None:
    """The generator really produces the structures the random test relies on."""
    seen: Counter[str] = Counter()
    for seed in RANDOM_SEEDS:
        analysis = analyze(random_case(seed)[0])
        classes = {s.class_name for s in analysis.layers}
        seen.update(classes)
        if any("/" in s.name for s in analysis.layers):
            seen["nested"] += 1
        if any("fblock" in s.name for s in analysis.layers):
            seen["nested_functional"] += 1
        if any(
            len({n.output_shape for n in analysis.graph.nodes_of(s.name)}) > 1
            for s in analysis.layers
        ):
            seen["shared_at_two_shapes"] += 1
        if any(s.calls > 1 for s in analysis.layers):
            seen["shared"] += 1
        if analysis.non_trainable_params > 0 and any(
            s.params.trainable == 0 and s.params.total > 0 and s.class_name == "Conv2D"
            for s in analysis.layers
        ):
            seen["frozen"] += 1
        if any(s.config.get("dilation_rate") not in (None, 1, [1, 1]) for s in analysis.layers):
            seen["dilated"] += 1
    for feature in (
        "SeparableConv2D",
        "DepthwiseConv2D",
        "BatchNormalization",
        "Add",
        "Concatenate",
        "MaxPooling2D",
        "nested",
        "nested_functional",
        "shared",
        "shared_at_two_shapes",
        "frozen",
        "dilated",
    ):
        assert seen[feature] >= 3, f"only {seen[feature]} random CNNs have {feature}"


def test_random_cnn_is_reproducible() -> None:
    def signature(seed: int) -> list[tuple[object, ...]]:
        # Keras numbers auto-named layers (input_layer_7) per session, so compare structure.
        analysis = analyze(to_config(random_cnn(seed)))
        return [(s.class_name, s.output_shape, s.params, s.calls) for s in analysis.layers]

    assert signature(7) == signature(7)
    assert signature(7) != signature(8)


def forget_recorded_shapes(value: object) -> None:
    """Blank the tensor shapes Keras recorded (keeping their rank, which Keras needs to read
    the config), so a hand edit reaches shape inference."""
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            value["config"]["shape"] = [None] * len(value["config"]["shape"])
        for item in value.values():
            forget_recorded_shapes(item)
    elif isinstance(value, list):
        for item in value:
            forget_recorded_shapes(item)


def test_valid_convolution_larger_than_input_is_rejected_with_the_layer_named() -> None:
    model = single_layer_model((16, 16, 3), [layers.Conv2D(2, 3, name="conv_big")])
    config = to_config(model)
    config["config"]["layers"][0]["config"]["batch_shape"] = [None, 2, 2, 3]
    forget_recorded_shapes(config)
    with pytest.raises(InvalidModelConfig, match=r"Layer `conv_big` \(Conv2D\)"):
        analyze(config)


def test_mismatched_merge_shapes_are_rejected() -> None:
    a, b = keras.Input((8, 8, 3), name="a"), keras.Input((8, 8, 3), name="b")
    model = keras.Model([a, b], layers.Add(name="join")([a, b]))
    config = to_config(model)
    config["config"]["layers"][1]["config"]["batch_shape"] = [None, 8, 4, 3]
    forget_recorded_shapes(config)
    with pytest.raises(InvalidModelConfig, match=r"Layer `join` \(Add\).*compatible shapes"):
        analyze(config)
