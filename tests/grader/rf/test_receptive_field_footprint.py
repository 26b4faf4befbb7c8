"""The image footprint against gradient support, on networks that remap positions.

For each seeded random network (sliding windows with every padding, stride and dilation,
asymmetric padding and cropping, up-sampling by nearest and bilinear interpolation, transposed
convolutions with output padding, resizing, space-to-depth and depth-to-space made of
``Reshape``/``Permute``, transposing the image, skip connections that merge paths of different
jumps, concatenation along a spatial axis), a *measurement twin* with positive weights (see
`tests.grader.rf.test_receptive_field_empirical`) gives, for every unit of the end point at once,
the support of d(unit, summed over channels)/d(image): the pixels that can influence the unit.
Its projection onto each image axis must equal the grader's footprint projection for every
unit, holes included, and so must the smallest and largest extents the report gives. The
grader may refuse a layer, but then with a `ReceptiveFieldError` naming it, never a field at
another layer.
"""

from __future__ import annotations

import json
import random
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
    MERGES,
    Sketch,
    measurement_weights,
    real_config,
)

_gradients: dict[int, tuple[Any, Any]] = {}


def measured_projections(
    model: Any, x: np.ndarray, only: list[tuple[int, ...]] | None = None
) -> list[np.ndarray]:
    """Per image axis ``a``, ``(*units, n_a)``: the rows (columns) whose pixels have a non-zero
    gradient for each unit of the model's output, summed over its channels. With ``only``, the
    listed units alone, ``(len(only), n_a)``."""
    out = tuple(model.compute_output_shape(x.shape))
    units, channels = out[1:-1], out[-1]
    chosen = [int(np.ravel_multi_index(u, units)) for u in only] if only else None
    count = len(chosen) if chosen else int(np.prod(units))
    cached, gradient = _gradients.get(id(model), (None, None))
    if cached is not model:

        @tf.function(reduce_retracing=True)
        def gradient(inputs: Any, mask: Any) -> Any:
            with tf.GradientTape() as tape:
                tape.watch(inputs)
                value = tf.reduce_sum(model(inputs, training=False) * mask)
            return tape.gradient(value, inputs)

        _gradients[id(model)] = (model, gradient)
    support = []
    for first in range(0, count, 256):
        batch = list(range(first, min(count, first + 256)))
        mask = np.zeros((len(batch), *units, channels), dtype="float32")
        for b, u in enumerate(batch):
            flat = chosen[u] if chosen else u
            mask[(b, *np.unravel_index(flat, units))] = 1.0  # one unit per copy of the image
        grad = gradient(tf.constant(np.repeat(x, len(batch), axis=0)), tf.constant(mask))
        support.append(np.abs(grad.numpy()).sum(axis=-1) > 0)
    shape = (count,) if chosen else units
    pixels = np.concatenate(support).reshape(*shape, *x.shape[1:-1])
    image_rank = x.ndim - 2
    return [
        pixels.any(axis=tuple(len(shape) + b for b in range(image_rank) if b != a))
        for a in range(image_rank)
    ]


def extents(projection: np.ndarray) -> np.ndarray:
    seen = projection.any(axis=-1)
    first = projection.argmax(axis=-1)
    last = projection.shape[-1] - 1 - projection[..., ::-1].argmax(axis=-1)
    return np.where(seen, last - first + 1, 0)


class RemapGenerator:
    """Grows a random `Sketch` whose layers remap positions, reading sizes from Keras."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.rank = 1 if seed % 6 == 5 else 2
        size = tuple(self.rng.randint(10, 18) for _ in range(self.rank))
        self.sketch = Sketch(self.rank, (*size, 2), head="gap")
        self.tensors: dict[str, Any] = {"image": keras.Input(self.sketch.input_shape)}

    def call(self, cls: str, config: dict[str, Any], *args: str) -> str:
        name = f"l{len(self.sketch.calls)}_{cls.lower()}"
        layer = getattr(keras.layers, cls)(name=name, **config)
        xs = [self.tensors[a] for a in args]
        self.tensors[name] = layer(xs if cls in MERGES else xs[0])
        self.sketch.calls.append((name, cls, config, args))
        return name

    def size(self, name: str) -> tuple[int, ...]:
        return tuple(int(d) for d in self.tensors[name].shape[1:-1])

    def channels(self, name: str) -> int:
        return int(self.tensors[name].shape[-1])

    def per_axis(self, make: Any) -> Any:
        values = [make() for _ in range(self.rank)]
        return values[0] if self.rank == 1 else values

    @property
    def dims(self) -> str:
        return f"{self.rank}D"

    # --- layers ------------------------------------------------------------------------------
    def window(self, x: str) -> str:
        rng = self.rng
        small = min(self.size(x))
        stride = 2 if small >= 8 and rng.random() < 0.3 else 1
        op = rng.choice(["conv", "conv", "separable", "depthwise", "pool"])
        kernel = self.per_axis(lambda: rng.choice([1, 2, 3]))
        dilation = self.per_axis(lambda: rng.choice([1, 2, 3])) if stride == 1 else 1
        # `valid` needs the dilated window to fit: at most 3 * (3 - 1) + 1 = 7 positions.
        padding = "same" if small < 8 else rng.choice(["valid", "same"])
        if op == "pool":
            cls = rng.choice(["MaxPooling", "AveragePooling"]) + self.dims
            return self.call(cls, {"pool_size": kernel, "strides": stride, "padding": "same"}, x)
        config: dict[str, Any] = {
            "kernel_size": kernel, "strides": stride, "padding": padding,
            "dilation_rate": dilation,
        }  # fmt: skip
        if op == "depthwise":
            config["depth_multiplier"] = rng.choice([1, 2])
        else:
            config["filters"] = rng.choice([2, 3, 4])
        cls = {"conv": "Conv", "separable": "SeparableConv", "depthwise": "DepthwiseConv"}[op]
        return self.call(cls + self.dims, config, x)

    def pad_or_crop(self, x: str) -> str:
        rng = self.rng
        if rng.random() < 0.5 and min(self.size(x)) >= 8:
            cls, key, most = "Cropping", "cropping", 2
        else:
            cls, key, most = "ZeroPadding", "padding", 3
        pairs = [[rng.randint(0, most), rng.randint(0, most)] for _ in range(self.rank)]
        value: Any = pairs[0] if self.rank == 1 else pairs
        return self.call(cls + self.dims, {key: value}, x)

    def upsample(self, x: str) -> str:
        rng = self.rng
        factors = [rng.choice([1, 2, 3]) if n <= 14 else rng.choice([1, 2]) for n in self.size(x)]
        config: dict[str, Any] = {"size": factors[0] if self.rank == 1 else factors}
        if self.rank == 2:
            config["interpolation"] = rng.choice(["nearest", "bilinear"])
        return self.call("UpSampling" + self.dims, config, x)

    def transposed(self, x: str) -> str:
        rng = self.rng
        stride = rng.choice([1, 2, 3]) if max(self.size(x)) <= 14 else 1
        kernel = rng.choice([1, 2, 3, 4])
        config: dict[str, Any] = {
            "filters": rng.choice([2, 3]), "kernel_size": kernel, "strides": stride,
            "padding": rng.choice(["valid", "same"]),
        }  # fmt: skip
        if stride == 1 and rng.random() < 0.3:
            config["dilation_rate"] = 2
        elif stride > 1 and rng.random() < 0.4:
            config["output_padding"] = rng.randint(0, stride - 1)
        return self.call(f"Conv{self.dims}Transpose", config, x)

    def resize(self, x: str) -> str:
        rng = self.rng
        height, width = (rng.randint(4, 26) for _ in range(2))
        interpolation = rng.choice(["nearest", "bilinear"])
        return self.call("Resizing", {"height": height, "width": width,
                                      "interpolation": interpolation}, x)  # fmt: skip

    def even(self, x: str) -> str:
        odd = [n % 2 for n in self.size(x)]
        if any(odd):
            pairs = [[o, 0] for o in odd]
            x = self.call("Cropping" + self.dims, {"cropping": pairs[0] if self.rank == 1
                                                   else pairs}, x)  # fmt: skip
        return x

    def space_to_depth(self, x: str) -> str:
        x = self.even(x)
        c = self.channels(x)
        if self.rank == 1:
            (n,) = self.size(x)
            return self.call("Reshape", {"target_shape": [n // 2, 2 * c]}, x)
        h, w = self.size(x)
        x = self.call("Reshape", {"target_shape": [h // 2, 2, w // 2, 2, c]}, x)
        x = self.call("Permute", {"dims": [1, 3, 2, 4, 5]}, x)
        return self.call("Reshape", {"target_shape": [h // 2, w // 2, 4 * c]}, x)

    def depth_to_space(self, x: str) -> str:
        c = self.channels(x)
        block = 2 if self.rank == 1 else 4
        if c % block:
            x = self.call(f"Conv{self.dims}", {"filters": block, "kernel_size": 1}, x)
            c = block
        if self.rank == 1:
            (n,) = self.size(x)
            return self.call("Reshape", {"target_shape": [2 * n, c // 2]}, x)
        h, w = self.size(x)
        x = self.call("Reshape", {"target_shape": [h, w, 2, 2, c // 4]}, x)
        x = self.call("Permute", {"dims": [1, 3, 2, 4, 5]}, x)
        return self.call("Reshape", {"target_shape": [2 * h, 2 * w, c // 4]}, x)

    def transpose_image(self, x: str) -> str:
        if self.rank == 1:
            return self.window(x)
        return self.call("Permute", {"dims": [2, 1, 3]}, x)

    def skip(self, x: str) -> str:
        """A U-Net step: a full-resolution branch merged with a pooled, up-sampled one."""
        if min(self.size(x)) < 6:
            return self.window(x)
        same = {"padding": "same"}
        a = self.call(f"Conv{self.dims}", {"filters": 2, "kernel_size": 3, **same}, x)
        b = self.call(f"MaxPooling{self.dims}", {"pool_size": 2}, x)
        b = self.call(f"Conv{self.dims}", {"filters": 2, "kernel_size": 3, **same}, b)
        b = self.call(f"UpSampling{self.dims}", {"size": 2}, b)
        diff = [n - m for n, m in zip(self.size(a), self.size(b), strict=True)]
        if any(diff):
            pairs = [[d, 0] for d in diff]
            b = self.call(f"ZeroPadding{self.dims}", {"padding": pairs[0] if self.rank == 1
                                                      else pairs}, b)  # fmt: skip
        merge = self.rng.choice(["Add", "Concatenate", "Multiply"])
        return self.call(merge, {"axis": -1} if merge == "Concatenate" else {}, a, b)

    def side_by_side(self, x: str) -> str:
        """Two branches concatenated along a spatial axis."""
        axis = self.rng.randint(1, self.rank)
        a = self.window(x)
        b = self.window(x)
        sizes = [self.size(a), self.size(b)]
        target = [min(s) for s in zip(*sizes, strict=True)]
        fixed = []
        for branch, size in zip((a, b), sizes, strict=True):
            pairs = [[0, n - t] if i != axis - 1 else [0, 0]
                     for i, (n, t) in enumerate(zip(size, target, strict=True))]  # fmt: skip
            if any(p[1] for p in pairs):
                branch = self.call(f"Cropping{self.dims}", {"cropping": pairs[0] if self.rank == 1
                                                            else pairs}, branch)  # fmt: skip
            fixed.append(branch)
        channels = {self.channels(f) for f in fixed}
        if len(channels) > 1:
            fixed = [self.call(f"Conv{self.dims}", {"filters": 2, "kernel_size": 1}, f)
                     for f in fixed]  # fmt: skip
        return self.call("Concatenate", {"axis": axis}, *fixed)

    def sketch_model(self) -> Sketch:
        ops = [self.window, self.pad_or_crop, self.upsample, self.transposed, self.space_to_depth,
               self.depth_to_space, self.transpose_image, self.skip, self.side_by_side]  # fmt: skip
        if self.rank == 2:
            ops.append(self.resize)
        x = "image"
        for _ in range(self.rng.randint(3, 6)):
            op = self.rng.choice(ops)
            growing = (self.upsample, self.transposed, self.depth_to_space)
            shrinking = (self.window, self.space_to_depth, self.skip, self.side_by_side)
            if max(self.size(x)) > 30 and op in growing:
                op = self.window
            if min(self.size(x)) < 4 and op in shrinking:
                op = self.upsample
            x = op(x)
        if self.sketch.calls[-1][1] in {"Reshape", "Permute", *MERGES}:
            x = self.window(x)  # end on a layer that changes the field
        return self.sketch


def check_footprint(sketch: Sketch, seed: int) -> None:
    real, last = sketch.build(measure=False)
    graph = build_graph(real_config(real))
    assert default_end_point(graph) == last
    report = compute_receptive_field(graph)
    assert report.end_point == last
    twin, _ = sketch.build(measure=True)
    measurement_weights(twin)
    x = np.random.default_rng(seed).uniform(0.5, 1.5, (1, *sketch.input_shape)).astype("float32")
    measured = measured_projections(twin, x)
    node = graph.nodes_of(last)[-1]
    traced = trace(graph, node.id, graph.inputs[0])
    for axis, (ours, theirs) in enumerate(zip(traced.proj, measured, strict=True)):
        union = ours.any(axis=-2)
        assert union.shape == theirs.shape, axis
        wrong = np.argwhere(union != theirs)
        assert not wrong.size, f"axis {axis}: first unit that differs {wrong[0][:-1]}"
    assert report.footprint is not None
    assert report.footprint.min == tuple(int(extents(p).min()) for p in measured)
    assert report.footprint.max == tuple(int(extents(p).max()) for p in measured)


@pytest.mark.parametrize("seed", range(36))
def test_random_remapping_network_footprint_matches_gradient_support(seed):
    keras.utils.set_random_seed(seed)
    check_footprint(RemapGenerator(seed).sketch_model(), seed)


def test_dilation_past_the_map_sees_only_what_the_stem_sees():
    # The example: a 3x3 SeparableConv2D with dilation 32 on a 32x32 map. The course
    # formula gives 3 + 2 * 32 = 67, but the taps at -32 and +32 always land in zero padding.
    sketch = Sketch(2, (32, 32, 3), [
        ("stem", "Conv2D", {"filters": 4, "kernel_size": 3, "padding": "same"}, ("image",)),
        ("wide", "SeparableConv2D", {"filters": 4, "kernel_size": 3, "padding": "same",
                                     "dilation_rate": 32}, ("stem",)),
    ])  # fmt: skip
    real, _ = sketch.build(measure=False)
    report = compute_receptive_field(build_graph(real_config(real)))
    assert report.end_point == "wide"
    assert report.size == (67, 67)
    assert report.footprint is not None
    assert (report.footprint.min, report.footprint.max) == ((2, 2), (3, 3))  # 2 at the border
    check_footprint(sketch, 0)


def test_space_to_depth_and_back_is_exact_per_channel():
    # Channels carry different positions after space-to-depth; a depthwise convolution keeps
    # them apart, and depth-to-space puts them back where they came from.
    sketch = Sketch(2, (12, 10, 2), [
        ("a", "Reshape", {"target_shape": [6, 2, 5, 2, 2]}, ("image",)),
        ("b", "Permute", {"dims": [1, 3, 2, 4, 5]}, ("a",)),
        ("c", "Reshape", {"target_shape": [6, 5, 8]}, ("b",)),
        ("d", "DepthwiseConv2D", {"kernel_size": [1, 3], "padding": "same"}, ("c",)),
        ("e", "Reshape", {"target_shape": [6, 5, 2, 2, 2]}, ("d",)),
        ("f", "Permute", {"dims": [1, 3, 2, 4, 5]}, ("e",)),
        ("g", "Reshape", {"target_shape": [12, 10, 2]}, ("f",)),
        ("h", "DepthwiseConv2D", {"kernel_size": 1}, ("g",)),
    ])  # fmt: skip
    real, _ = sketch.build(measure=False)
    report = compute_receptive_field(build_graph(real_config(real)))
    assert report.formula_note is not None and "`a` (Reshape)" in report.formula_note
    assert report.size == (None, None)
    # Each pixel comes back to its place, having seen its own row only: one row, three
    # columns two pixels apart (the depthwise kernel ran on 2-pixel blocks), less at edges.
    assert report.footprint is not None
    assert report.footprint.min == (1, 3) and report.footprint.max == (1, 5)
    assert report.footprint.gaps
    check_footprint(sketch, 1)


# Augmentation layers the grader declares the identity at inference, with a config Keras
# accepts; each must return its input unchanged when `training=False`.
AUGMENTATIONS: dict[str, dict[str, Any]] = {
    "AugMix": {}, "RandAugment": {}, "RandomBrightness": {"factor": 0.2},
    "RandomColorDegeneration": {"factor": 0.5}, "RandomColorJitter": {"brightness_factor": 0.2},
    "RandomContrast": {"factor": 0.5}, "RandomElasticTransform": {}, "RandomErasing": {},
    "RandomFlip": {}, "RandomGaussianBlur": {}, "RandomGrayscale": {}, "RandomHue": {"factor": 0.5},
    "RandomInvert": {}, "RandomPerspective": {}, "RandomPosterization": {"factor": [1, 4]},
    "RandomRotation": {"factor": 0.2}, "RandomSaturation": {"factor": 0.5},
    "RandomSharpness": {"factor": 0.5}, "RandomShear": {"x_factor": 0.3},
    "RandomTranslation": {"height_factor": 0.2, "width_factor": 0.2},
    "RandomZoom": {"height_factor": 0.3}, "Solarization": {"addition_factor": 0.5},
}  # fmt: skip


@pytest.mark.parametrize("cls", sorted(AUGMENTATIONS))
def test_augmentation_declared_identity_is_the_identity_at_inference(cls):
    from grader.rf.geometry import INFERENCE_IDENTITY_CLASSES

    assert cls in INFERENCE_IDENTITY_CLASSES
    layer = getattr(keras.layers, cls)(**AUGMENTATIONS[cls])
    x = np.random.default_rng(5).uniform(0, 255, (2, 12, 10, 3)).astype("float32")
    assert np.array_equal(np.asarray(layer(x, training=False)), x)


def test_auto_contrast_makes_every_unit_depend_on_the_whole_image():
    # Declared a reduction over every position: each pixel is rescaled by the image's minimum
    # and maximum, so raising one far pixel above the maximum changes every other output.
    layer = keras.layers.AutoContrast(value_range=(0, 255))
    x = np.random.default_rng(6).uniform(50, 200, (1, 9, 7, 1)).astype("float32")
    moved = x.copy()
    moved[0, 8, 6, 0] = 250.0
    before, after = np.asarray(layer(x)), np.asarray(layer(moved))
    changed = before != after
    changed[np.unravel_index(np.argmin(x), x.shape)] = True  # the minimum stays at 0
    assert changed.all()
    sketch = Sketch(2, (9, 7, 1), [
        ("contrast", "AutoContrast", {"value_range": [0, 255]}, ("image",)),
        ("c", "Conv2D", {"filters": 1, "kernel_size": 1}, ("contrast",)),
    ])  # fmt: skip
    real, _ = sketch.build(measure=False)
    report = compute_receptive_field(build_graph(real_config(real)))
    assert report.is_global and report.size == (9, 7)


def test_layer_without_exact_geometry_is_refused_by_name_not_skipped():
    sketch = Sketch(2, (16, 16, 2), [
        ("c1", "Conv2D", {"filters": 2, "kernel_size": 3, "padding": "same"}, ("image",)),
        ("up", "UpSampling2D", {"size": 2, "interpolation": "bicubic"}, ("c1",)),
        ("c2", "Conv2D", {"filters": 2, "kernel_size": 3, "padding": "same"}, ("up",)),
    ])  # fmt: skip
    real, _ = sketch.build(measure=False)
    graph = build_graph(json.loads(real.to_json()))
    assert default_end_point(graph) == "c2"
    from grader.errors import ReceptiveFieldError

    with pytest.raises(
        ReceptiveFieldError,
        match=r"^The receptive field at `c2` \(Conv2D\).*Layer `up` \(UpSampling2D\) has "
        r"interpolation='bicubic'",
    ):
        compute_receptive_field(graph)


def test_nested_model_called_twice_footprint_matches_gradient_support():
    # One set of weights, two calls: the inner layers appear twice in the graph, each call
    # with its own input size; the footprint follows the calls, not the layer names.
    block = keras.Sequential(
        [
            keras.Input((None, None, 2)),
            keras.layers.Conv2D(2, 3, padding="same", name="c1"),
            keras.layers.UpSampling2D(2, name="up"),
            keras.layers.AveragePooling2D(3, strides=2, padding="same", name="pool"),
            keras.layers.DepthwiseConv2D([1, 3], padding="valid", name="dw"),
        ],
        name="block",
    )
    image = keras.Input((18, 20, 2), name="image")
    x = keras.layers.Conv2D(2, 3, dilation_rate=2, name="stem")(image)
    features = block(block(x))
    head = keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(features))
    graph = build_graph(real_config(keras.Model(image, head)))
    report = compute_receptive_field(graph)
    assert len(graph.nodes_of(report.end_point)) == 2
    assert report.formula_note is not None and "UpSampling2D" in report.formula_note
    twin = keras.Model(image, features)
    measurement_weights(twin)
    x = np.random.default_rng(7).uniform(0.5, 1.5, (1, 18, 20, 2)).astype("float32")
    traced = trace(graph, graph.nodes_of(report.end_point)[-1].id, graph.inputs[0])
    for ours, theirs in zip(traced.proj, measured_projections(twin, x), strict=True):
        assert np.array_equal(ours.any(axis=-2), theirs)
