"""Receptive fields of `keras.applications` models against the values published in the article.

Araujo, Norris and Sim, "Computing Receptive Fields of Convolutional Neural Networks", Distill
2019, table "receptive field (r), effective stride (S)" for TF-slim models at their final feature
layer: VGG-16 r = 212, MobileNet v1 r = 315, ResNet-v1-50 r = 483, Inception v3 r = 1311, all
with S = 32. The Keras layers that correspond to those end-points are named below; they are also
what `default_end_point` picks, since each feeds the classification head.

The same architectures are then measured: the gradient support of an interior unit at an early
end-point, in a twin whose max pooling is average pooling and whose weights are positive.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.tf

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from grader.graph_builder import build_graph  # noqa: E402
from grader.receptive_field import compute_receptive_field, default_end_point  # noqa: E402
from grader.rf.footprint import trace  # noqa: E402
from tests.grader.rf.test_receptive_field_empirical import (  # noqa: E402
    check_units,
    measurement_weights,
)
from tests.grader.rf.test_receptive_field_footprint import measured_projections  # noqa: E402

# name: (constructor, Keras end-point matching the article's end-point, published r, the layer
# the report names: the last one that changes the field, before batch normalisation and ReLU)
PUBLISHED = {
    "vgg16": ("VGG16", "block5_pool", 212, "block5_pool"),  # slim vgg_16/pool5
    "mobilenet": ("MobileNet", "conv_pw_13_relu", 315, "conv_pw_13"),  # Conv2d_13_pointwise
    "resnet50": ("ResNet50", "conv5_block3_out", 483, "conv5_block3_add"),  # resnet_v1_50/block4
    "inception_v3": ("InceptionV3", "mixed10", 1311, "mixed10"),  # slim Mixed_7c
}


@functools.cache
def _config_text(constructor: str, size: int | None = None) -> str:
    if size is not None:
        kwargs: dict[str, Any] = {"input_shape": (size, size, 3), "include_top": False}
    elif constructor == "VGG16":
        # VGG-16's dense head holds 120 million weights: Keras takes seconds to allocate them.
        # A pooled head keeps the same feature layers and makes block5_pool feed the head too.
        kwargs = {"input_shape": (224, 224, 3), "include_top": False, "pooling": "max"}
    else:
        kwargs = {}
    return getattr(keras.applications, constructor)(weights=None, **kwargs).to_json()


def application_config(constructor: str, size: int | None = None) -> dict[str, Any]:
    """The Keras JSON config of an application: with its head at full size, headless at ``size``."""
    return json.loads(_config_text(constructor, size))


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_published_receptive_field(name):
    constructor, end_point, published, named = PUBLISHED[name]
    graph = build_graph(application_config(constructor))
    assert default_end_point(graph) == named
    report = compute_receptive_field(graph)
    assert report.end_point == named
    # The article's end-point is the map feeding the head: the named layer or one after it.
    assert (named, *report.unchanged_after)[-1] == end_point
    assert report.size == (published, published)
    assert report.jump == (32, 32)
    assert compute_receptive_field(graph, end_point=end_point).size == report.size


def test_vgg16_offset_is_the_padding_sum():
    # Every VGG-16 convolution is 3x3 `same` (pad 1) and every pooling 2x2/2 `valid`: the field
    # of unit 0 starts at -(sum of pad * jump) = -(2*1 + 2*2 + 3*4 + 3*8 + 3*16) = -90.
    report = compute_receptive_field(build_graph(application_config("VGG16")))
    assert report.start == (-90, -90)
    assert report.interval((3, 3)) == ((6, 217), (6, 217))


def _twin(config: dict[str, Any], end_point: str) -> Any:
    """The model rebuilt from its config with average pooling, cut at ``end_point``."""
    text = json.dumps(config).replace('"MaxPooling2D"', '"AveragePooling2D"')
    model = keras.models.model_from_json(text)
    twin = keras.Model(model.inputs, model.get_layer(end_point).output)
    measurement_weights(twin)
    return twin


@pytest.mark.parametrize(
    ("constructor", "size", "end_point"),
    [
        ("ResNet50", 72, "conv2_block3_out"),
        ("MobileNet", 96, "conv_pw_5_relu"),
        ("InceptionV3", 107, "mixed0"),
        ("VGG16", 64, "block3_conv3"),
    ],
)
def test_application_field_matches_gradient_support(constructor, size, end_point):
    config = application_config(constructor, size)
    report = compute_receptive_field(build_graph(config), end_point=end_point)
    twin = _twin(config, end_point)
    n_out = tuple(twin.output.shape[1:-1])
    assert n_out == report.output_size
    centre = tuple(n // 2 for n in n_out)
    inside = [(lo >= 0 and hi < size) for lo, hi in report.interval(centre)]
    assert all(inside), f"pick a larger input: {report.interval(centre)} leaves the image"
    x = np.random.default_rng(0).uniform(0.5, 1.5, size=(1, size, size, 3)).astype("float32")
    check_units(report, twin, x, [centre, tuple(c + 1 for c in centre), (0, 0)])
    # The footprint of the first row's and the diagonal's units (borders and interior) against
    # gradient support.
    graph = build_graph(config)
    traced = trace(graph, graph.nodes_of(end_point)[-1].id, graph.inputs[0])
    units = sorted({(0, v) for v in range(n_out[1])} | {(u, u) for u in range(min(n_out))})
    measured = measured_projections(twin, x, units)
    for ours, theirs in zip(traced.proj, measured, strict=True):
        union = ours.any(axis=-2)
        assert np.array_equal(np.stack([union[u] for u in units]), theirs)


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_classifier_output_sees_the_whole_image(name):
    constructor = PUBLISHED[name][0]
    graph = build_graph(application_config(constructor))
    output = graph.nodes[graph.outputs[0]].layer.name
    report = compute_receptive_field(graph, end_point=output).to_dict()
    side = 299 if name == "inception_v3" else 224
    assert report["global"] is True
    assert report["size"] == [side, side]
