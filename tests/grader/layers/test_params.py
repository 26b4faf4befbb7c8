"""Parameter counts and output shapes of every supported layer kind, checked against Keras.

Each case builds the real Keras model, serializes it with ``model.to_json()`` (what a student
uploads), analyses the JSON without Keras, and compares totals, per-layer counts (trainable and
non-trainable) and every layer's output shape with what Keras itself reports.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from grader.analysis import ModelAnalysis, analyze
from tests.support.keras_models import (
    ModelTruth,
    keras,
    keras_truth,
    layers,
    single_layer_model,
    to_config,
)

pytestmark = [
    pytest.mark.tf,
    # Deprecated options are still what students may submit; Keras' advice is noise here.
    pytest.mark.filterwarnings("ignore:You passed `rms_scaling=True`:UserWarning"),
    pytest.mark.filterwarnings("ignore:Do not pass an `input_shape`:UserWarning"),
]

IMG = (12, 10, 3)
SEQ = (9, 4)
VOL = (6, 7, 5, 2)

# (case id, input shape without batch, layer factory)
LAYER_CASES: list[tuple[str, tuple[int, ...], Callable[[], Any]]] = [
    # Convolutions
    ("conv1d", SEQ, lambda: layers.Conv1D(5, 3)),
    ("conv1d_causal_dilated", SEQ, lambda: layers.Conv1D(5, 3, padding="causal", dilation_rate=2)),
    ("conv1d_no_bias_stride", SEQ, lambda: layers.Conv1D(5, 2, strides=2, use_bias=False)),
    ("conv2d", IMG, lambda: layers.Conv2D(8, 3)),
    ("conv2d_same_stride", IMG, lambda: layers.Conv2D(8, (3, 5), strides=(2, 3), padding="same")),
    ("conv2d_dilated", IMG, lambda: layers.Conv2D(4, 3, dilation_rate=(2, 1))),
    ("conv2d_no_bias", IMG, lambda: layers.Conv2D(4, 1, use_bias=False)),
    ("conv2d_groups", (8, 8, 6), lambda: layers.Conv2D(9, 3, groups=3)),
    ("conv3d", VOL, lambda: layers.Conv3D(3, 2, strides=(1, 2, 1))),
    ("conv3d_same_no_bias", VOL, lambda: layers.Conv3D(3, 3, padding="same", use_bias=False)),
    ("separable1d", SEQ, lambda: layers.SeparableConv1D(6, 3, depth_multiplier=2)),
    ("separable2d", IMG, lambda: layers.SeparableConv2D(7, 3)),
    (
        "separable2d_dm3_no_bias",
        IMG,
        lambda: layers.SeparableConv2D(7, 3, depth_multiplier=3, use_bias=False, padding="same"),
    ),
    ("separable2d_dilated", IMG, lambda: layers.SeparableConv2D(5, 3, dilation_rate=2)),
    ("depthwise1d", SEQ, lambda: layers.DepthwiseConv1D(3, depth_multiplier=2)),
    ("depthwise2d", IMG, lambda: layers.DepthwiseConv2D(3)),
    (
        "depthwise2d_dm2_stride_no_bias",
        IMG,
        lambda: layers.DepthwiseConv2D(3, strides=2, depth_multiplier=2, use_bias=False),
    ),
    ("conv1d_transpose", SEQ, lambda: layers.Conv1DTranspose(3, 3, strides=2)),
    ("conv2d_transpose", IMG, lambda: layers.Conv2DTranspose(4, 3)),
    (
        "conv2d_transpose_same_stride",
        IMG,
        lambda: layers.Conv2DTranspose(4, (3, 2), strides=2, padding="same", use_bias=False),
    ),
    (
        "conv2d_transpose_output_padding",
        IMG,
        lambda: layers.Conv2DTranspose(4, 3, strides=3, output_padding=(1, 2)),
    ),
    ("conv2d_transpose_dilated", IMG, lambda: layers.Conv2DTranspose(2, 3, dilation_rate=2)),
    ("conv3d_transpose", VOL, lambda: layers.Conv3DTranspose(2, 2, strides=2)),
    # Dense and embedding
    ("dense", (7,), lambda: layers.Dense(5)),
    ("dense_no_bias", (7,), lambda: layers.Dense(5, use_bias=False)),
    ("dense_on_3d", SEQ, lambda: layers.Dense(6)),
    ("dense_on_4d", IMG, lambda: layers.Dense(2)),
    ("embedding", (5,), lambda: layers.Embedding(50, 8)),
    # Normalization
    ("batchnorm", IMG, lambda: layers.BatchNormalization()),
    ("batchnorm_no_center", IMG, lambda: layers.BatchNormalization(center=False)),
    ("batchnorm_no_scale", IMG, lambda: layers.BatchNormalization(scale=False)),
    ("batchnorm_neither", IMG, lambda: layers.BatchNormalization(center=False, scale=False)),
    ("batchnorm_axis1", IMG, lambda: layers.BatchNormalization(axis=1)),
    ("batchnorm_renorm", IMG, lambda: layers.BatchNormalization(renorm=True)),
    ("layernorm", IMG, lambda: layers.LayerNormalization()),
    ("layernorm_axes", IMG, lambda: layers.LayerNormalization(axis=[1, 3])),
    ("layernorm_no_center", SEQ, lambda: layers.LayerNormalization(center=False)),
    ("layernorm_rms", SEQ, lambda: layers.LayerNormalization(rms_scaling=True)),
    ("groupnorm", (8, 8, 6), lambda: layers.GroupNormalization(groups=3)),
    ("groupnorm_no_scale", (8, 8, 6), lambda: layers.GroupNormalization(groups=2, scale=False)),
    ("groupnorm_instance", (8, 8, 6), lambda: layers.GroupNormalization(groups=-1)),
    ("unitnorm", (7,), lambda: layers.UnitNormalization()),
    ("rmsnorm", IMG, lambda: layers.RMSNormalization()),
    ("rmsnorm_axes", IMG, lambda: layers.RMSNormalization(axis=[1, 3])),
    # Activations, dropout, noise
    ("dropout", IMG, lambda: layers.Dropout(0.3)),
    ("spatial_dropout1d", SEQ, lambda: layers.SpatialDropout1D(0.2)),
    ("spatial_dropout2d", IMG, lambda: layers.SpatialDropout2D(0.2)),
    ("spatial_dropout3d", VOL, lambda: layers.SpatialDropout3D(0.2)),
    ("gaussian_dropout", IMG, lambda: layers.GaussianDropout(0.1)),
    ("gaussian_noise", IMG, lambda: layers.GaussianNoise(0.1)),
    ("alpha_dropout", (7,), lambda: layers.AlphaDropout(0.1)),
    ("activation", IMG, lambda: layers.Activation("relu")),
    ("relu", IMG, lambda: layers.ReLU(max_value=6.0)),
    ("leaky_relu", IMG, lambda: layers.LeakyReLU(negative_slope=0.1)),
    ("prelu", IMG, lambda: layers.PReLU()),
    ("prelu_shared", IMG, lambda: layers.PReLU(shared_axes=[1, 2])),
    ("elu", IMG, lambda: layers.ELU()),
    ("softmax", IMG, lambda: layers.Softmax(axis=1)),
    ("identity", IMG, lambda: layers.Identity()),
    ("activity_regularization", (7,), lambda: layers.ActivityRegularization(l1=0.01)),
    ("masking", SEQ, lambda: layers.Masking()),
    # Pooling
    ("maxpool1d", SEQ, lambda: layers.MaxPooling1D(2)),
    ("avgpool1d_same_stride", SEQ, lambda: layers.AveragePooling1D(3, strides=2, padding="same")),
    ("maxpool2d", IMG, lambda: layers.MaxPooling2D()),
    ("maxpool2d_3_stride1_same", IMG, lambda: layers.MaxPooling2D(3, strides=1, padding="same")),
    ("avgpool2d_rect", IMG, lambda: layers.AveragePooling2D((3, 2), strides=(1, 2))),
    ("maxpool3d", VOL, lambda: layers.MaxPooling3D(2)),
    ("avgpool3d_same", VOL, lambda: layers.AveragePooling3D(2, padding="same")),
    ("gmp1d", SEQ, lambda: layers.GlobalMaxPooling1D()),
    ("gap1d_keepdims", SEQ, lambda: layers.GlobalAveragePooling1D(keepdims=True)),
    ("gap2d", IMG, lambda: layers.GlobalAveragePooling2D()),
    ("gmp2d_keepdims", IMG, lambda: layers.GlobalMaxPooling2D(keepdims=True)),
    ("gap3d", VOL, lambda: layers.GlobalAveragePooling3D()),
    ("gmp3d_keepdims", VOL, lambda: layers.GlobalMaxPooling3D(keepdims=True)),
    # Reshaping
    ("flatten", IMG, lambda: layers.Flatten()),
    ("reshape", IMG, lambda: layers.Reshape((30, 12))),
    ("reshape_minus_one", IMG, lambda: layers.Reshape((-1, 6))),
    ("permute", IMG, lambda: layers.Permute((3, 1, 2))),
    ("repeat_vector", (7,), lambda: layers.RepeatVector(4)),
    ("zero_padding1d", SEQ, lambda: layers.ZeroPadding1D((1, 3))),
    ("zero_padding2d", IMG, lambda: layers.ZeroPadding2D(((1, 2), (0, 3)))),
    ("zero_padding3d", VOL, lambda: layers.ZeroPadding3D(1)),
    ("cropping1d", SEQ, lambda: layers.Cropping1D((2, 1))),
    ("cropping2d", IMG, lambda: layers.Cropping2D(((1, 2), (3, 0)))),
    ("cropping3d", VOL, lambda: layers.Cropping3D(((1, 0), (2, 1), (1, 1)))),
    ("upsampling1d", SEQ, lambda: layers.UpSampling1D(3)),
    ("upsampling2d", IMG, lambda: layers.UpSampling2D((2, 3))),
    ("upsampling3d", VOL, lambda: layers.UpSampling3D(2)),
    # Preprocessing and augmentation
    ("rescaling", IMG, lambda: layers.Rescaling(1 / 255)),
    ("normalization_adapt_axis", IMG, lambda: layers.Normalization()),
    ("normalization_axes", IMG, lambda: layers.Normalization(axis=(1, 3))),
    ("normalization_no_axis", IMG, lambda: layers.Normalization(axis=None)),
    ("normalization_given", IMG, lambda: layers.Normalization(mean=0.5, variance=0.25)),
    ("resizing", IMG, lambda: layers.Resizing(6, 8)),
    ("center_crop", IMG, lambda: layers.CenterCrop(8, 6)),
    ("random_crop", IMG, lambda: layers.RandomCrop(8, 6)),
    ("random_flip", IMG, lambda: layers.RandomFlip()),
    ("random_rotation", IMG, lambda: layers.RandomRotation(0.1)),
    ("random_translation", IMG, lambda: layers.RandomTranslation(0.1, 0.1)),
    ("random_zoom", IMG, lambda: layers.RandomZoom(0.1)),
    ("random_contrast", IMG, lambda: layers.RandomContrast(0.2)),
    ("random_brightness", IMG, lambda: layers.RandomBrightness(0.2)),
    ("random_grayscale", IMG, lambda: layers.RandomGrayscale()),
    ("random_hue", IMG, lambda: layers.RandomHue(0.1)),
    ("random_saturation", IMG, lambda: layers.RandomSaturation(0.1)),
    ("random_sharpness", IMG, lambda: layers.RandomSharpness(0.1)),
    ("random_shear", IMG, lambda: layers.RandomShear(0.1)),
    ("random_erasing", IMG, lambda: layers.RandomErasing()),
    ("random_gaussian_blur", IMG, lambda: layers.RandomGaussianBlur()),
    ("random_color_jitter", IMG, lambda: layers.RandomColorJitter(brightness_factor=0.1)),
    ("random_invert", IMG, lambda: layers.RandomInvert()),
    ("random_posterization", IMG, lambda: layers.RandomPosterization(factor=(1, 8))),
    ("random_perspective", IMG, lambda: layers.RandomPerspective()),
    ("solarization", IMG, lambda: layers.Solarization()),
    ("aug_mix", IMG, lambda: layers.AugMix()),
    ("rand_augment", IMG, lambda: layers.RandAugment()),
    ("random_color_degeneration", IMG, lambda: layers.RandomColorDegeneration(0.2)),
    ("random_elastic_transform", IMG, lambda: layers.RandomElasticTransform()),
    ("auto_contrast", IMG, lambda: layers.AutoContrast()),
]

# (case id, list of input shapes, merge layer factory)
MERGE_CASES: list[tuple[str, list[tuple[int, ...]], Callable[[], Any]]] = [
    ("add", [IMG, IMG, IMG], lambda: layers.Add()),
    ("add_broadcast", [IMG, (1, 1, 3)], lambda: layers.Add()),
    ("subtract", [IMG, IMG], lambda: layers.Subtract()),
    ("multiply", [IMG, IMG], lambda: layers.Multiply()),
    ("average", [IMG, IMG], lambda: layers.Average()),
    ("maximum", [IMG, IMG], lambda: layers.Maximum()),
    ("minimum", [IMG, IMG], lambda: layers.Minimum()),
    ("concatenate", [IMG, (12, 10, 5)], lambda: layers.Concatenate()),
    ("concatenate_axis1", [IMG, (4, 10, 3)], lambda: layers.Concatenate(axis=1)),
]


def assert_matches_keras(analysis: ModelAnalysis, truth: ModelTruth) -> None:
    """Totals, per-layer counts and shapes of `analysis` equal Keras' `truth`."""
    assert (analysis.total_params, analysis.trainable_params, analysis.non_trainable_params) == (
        truth.total,
        truth.trainable,
        truth.non_trainable,
    )
    assert analysis.input_shapes == truth.input_shapes
    assert analysis.output_shapes == truth.output_shapes
    mine = {s.name: s for s in analysis.layers}
    for name, expected in truth.layers.items():
        assert name in mine, f"Keras layer `{name}` missing from the analysis"
        got = mine[name]
        assert got.class_name == expected.class_name, name
        assert (got.params.total, got.params.trainable, got.params.non_trainable) == (
            expected.total,
            expected.trainable,
            expected.non_trainable,
        ), name
        assert got.output_shape == expected.output_shape, name
        calls = [n.output_shape for n in analysis.graph.nodes_of(name)]
        assert tuple(calls[: len(expected.call_shapes)]) == expected.call_shapes, name
        if "/" not in name:
            assert got.calls == len(expected.call_shapes), name
    # Nothing extra, except the input layers of nested models, which are wired through.
    extra = {n for n in mine if n not in truth.layers and mine[n].class_name != "InputLayer"}
    assert not extra


@pytest.mark.parametrize(
    ("input_shape", "factory"),
    [pytest.param(shape, factory, id=case) for case, shape, factory in LAYER_CASES],
)
def test_layer_counts_and_shapes_match_keras(input_shape, factory) -> None:
    model = single_layer_model(input_shape, factory())
    assert_matches_keras(analyze(to_config(model)), keras_truth(model))


@pytest.mark.parametrize(
    ("input_shapes", "factory"),
    [pytest.param(shapes, factory, id=case) for case, shapes, factory in MERGE_CASES],
)
def test_merge_layer_shapes_match_keras(input_shapes, factory) -> None:
    inputs = [keras.Input(shape, name=f"in_{i}") for i, shape in enumerate(input_shapes)]
    model = keras.Model(inputs, factory()(inputs))
    assert_matches_keras(analyze(to_config(model)), keras_truth(model))


def test_sequential_with_input_layer_matches_keras() -> None:
    model = keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            layers.Conv2D(8, 3, activation="relu"),
            layers.BatchNormalization(),
            layers.MaxPooling2D(),
            layers.SeparableConv2D(16, 3, padding="same"),
            layers.GlobalAveragePooling2D(),
            layers.Dense(10),
        ]
    )
    assert_matches_keras(analyze(to_config(model)), keras_truth(model))


def test_sequential_built_without_input_layer_matches_keras() -> None:
    model = keras.Sequential([layers.Conv2D(4, 3), layers.Flatten(), layers.Dense(3)])
    model.build((None, 9, 9, 2))
    assert_matches_keras(analyze(to_config(model)), keras_truth(model))


def test_nested_sequential_built_by_its_first_call_matches_keras() -> None:
    block = keras.Sequential([layers.Conv2D(4, 3, name="c"), layers.BatchNormalization()], name="b")
    inputs = keras.Input((9, 9, 3))
    model = keras.Model(inputs, block(inputs))
    assert_matches_keras(analyze(to_config(model)), keras_truth(model))


@pytest.mark.parametrize("with_input", [True, False], ids=["input_layer", "no_input_layer"])
def test_functional_model_inside_sequential_matches_keras(with_input: bool) -> None:
    inner_input = keras.Input((9, 9, 3))
    inner = keras.Model(inner_input, layers.Conv2D(2, 3, name="c")(inner_input), name="inner")
    head = [layers.Flatten(), layers.Dense(2)]
    model = keras.Sequential(
        [keras.Input((9, 9, 3)), inner, *head] if with_input else [inner, *head]
    )
    assert_matches_keras(analyze(to_config(model)), keras_truth(model))


def test_input_shape_argument_of_first_layer_matches_keras() -> None:
    model = keras.Sequential([layers.Dense(3, input_shape=(4,)), layers.Dense(2)])
    assert_matches_keras(analyze(to_config(model)), keras_truth(model))


def test_frozen_layers_count_as_non_trainable() -> None:
    inputs = keras.Input((8, 8, 3))
    conv = layers.Conv2D(4, 3, name="frozen_conv")
    bn = layers.BatchNormalization(name="frozen_bn")
    conv.trainable = False
    bn.trainable = False
    x = bn(conv(inputs))
    outputs = layers.Dense(2, name="head")(layers.Flatten()(x))
    model = keras.Model(inputs, outputs)
    analysis = analyze(to_config(model))
    assert_matches_keras(analysis, keras_truth(model))
    assert analysis.layer("frozen_conv").params.trainable == 0
    assert analysis.layer("head").params.non_trainable == 0


def test_frozen_nested_model_freezes_every_inner_layer() -> None:
    backbone = keras.Sequential(
        [keras.Input((8, 8, 3)), layers.Conv2D(4, 3), layers.BatchNormalization()],
        name="backbone",
    )
    backbone.trainable = False
    inputs = keras.Input((8, 8, 3))
    outputs = layers.Dense(2)(layers.GlobalAveragePooling2D()(backbone(inputs)))
    model = keras.Model(inputs, outputs)
    analysis = analyze(to_config(model))
    assert_matches_keras(analysis, keras_truth(model))
    inner = [s for s in analysis.layers if s.name.startswith("backbone/")]
    assert inner and all(s.params.trainable == 0 for s in inner)


def test_shared_layer_weights_are_counted_once() -> None:
    inputs = keras.Input((8, 8, 4))
    shared = layers.Conv2D(4, 3, padding="same", name="shared")
    outputs = shared(shared(inputs))
    model = keras.Model(inputs, outputs)
    analysis = analyze(to_config(model))
    assert_matches_keras(analysis, keras_truth(model))
    assert analysis.layer("shared").calls == 2
    assert analysis.total_params == 3 * 3 * 4 * 4 + 4


def test_dense_with_lora_matches_keras() -> None:
    inputs = keras.Input((6,))
    dense = layers.Dense(5, lora_rank=2, name="lora_dense")
    model = keras.Model(inputs, dense(inputs))
    assert_matches_keras(analyze(to_config(model)), keras_truth(model))


# keras.applications: large, real architectures (built once per module: each takes seconds).
APPLICATIONS = {
    "VGG16": lambda: keras.applications.VGG16(weights=None),
    "ResNet50": lambda: keras.applications.ResNet50(weights=None),
    "MobileNet": lambda: keras.applications.MobileNet(weights=None),
    "InceptionV3": lambda: keras.applications.InceptionV3(weights=None),
    "DenseNet121": lambda: keras.applications.DenseNet121(weights=None),
}


@pytest.fixture(scope="module", params=sorted(APPLICATIONS))
def application(request) -> tuple[dict[str, Any], ModelTruth]:
    model = APPLICATIONS[request.param]()
    result = (to_config(model), keras_truth(model))
    del model
    keras.backend.clear_session()
    return result


def test_keras_applications_match_keras(application) -> None:
    config, truth = application
    assert_matches_keras(analyze(config), truth)
