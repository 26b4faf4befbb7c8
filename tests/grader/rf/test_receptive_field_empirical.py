"""Receptive fields measured with TensorFlow: the support of an input gradient.

For each seeded random graph (branches, Add/Average/Multiply/Concatenate merges whose paths have
different kernels, dilations, strides and paddings, then cropping or zero padding to realign
them, separable and depthwise convolutions, pooling), a *measurement twin* of the model is built
with the same layers and sizes, but every kernel a positive constant, biases zero, batch
normalisation the identity and max pooling replaced by average pooling, so that every input
position on some path to an output unit gets a strictly positive gradient. The support of
d(output unit, summed over channels)/d(input) is then exactly the union of the unit's windows
over all paths. Its bounding box must equal the interval the report gives for that unit: that
checks the size, the start offset (which same padding and asymmetric crops shift) and, from a
neighbouring unit, the jump.

The analysis reads the *real* model's config (max pooling, heads and all) through
`build_graph`, so the test also checks the default end-point: the layer feeding the head.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.tf

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from grader.errors import ReceptiveFieldError  # noqa: E402
from grader.graph_builder import build_graph  # noqa: E402
from grader.receptive_field import (  # noqa: E402
    compute_receptive_field,
    default_end_point,
    rf_if_appended,
)

MERGES = ("Add", "Average", "Multiply", "Concatenate")  # gradients of all inputs stay positive


@dataclass
class Sketch:
    """A model as a list of layer calls, so that it can be built twice (real and measurement)."""

    rank: int
    input_shape: tuple[int, ...]
    calls: list[tuple[str, str, dict[str, Any], tuple[str, ...]]] = field(default_factory=list)
    head: str = "gap"

    def build(self, *, measure: bool) -> tuple[Any, str]:
        """The Keras model and the name of its last spatial layer."""
        inputs = keras.Input(self.input_shape, name="image")
        tensors: dict[str, Any] = {"image": inputs}
        for name, cls, config, args in self.calls:
            if measure and cls.startswith("MaxPooling"):
                cls = cls.replace("MaxPooling", "AveragePooling")
            layer = getattr(keras.layers, cls)(name=name, **config)
            xs = [tensors[a] for a in args]
            tensors[name] = layer(xs if cls in MERGES else xs[0])
        last = self.calls[-1][0]
        if measure:
            return keras.Model(inputs, tensors[last]), last
        x = tensors[last]
        if self.head == "flatten":
            x = keras.layers.Flatten(name="flatten")(x)
        else:
            pool = getattr(keras.layers, f"GlobalAveragePooling{self.rank}D")
            x = pool(name="gap")(x)
        outputs = keras.layers.Dense(4, name="head")(x)
        return keras.Model(inputs, outputs), last


class Generator:
    """Grows a random `Sketch`, reading sizes from symbolic Keras tensors as it goes."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        rank = 1 if seed % 8 == 7 else 2
        size = tuple(self.rng.randint(48, 64) for _ in range(rank))
        self.sketch = Sketch(rank, (*size, 3), head=self.rng.choice(["gap", "gap", "flatten"]))
        self.tensors: dict[str, Any] = {"image": keras.Input(self.sketch.input_shape)}
        self.jumps: dict[str, tuple[int, ...]] = {"image": (1,) * rank}

    # --- bookkeeping -------------------------------------------------------------------------
    def call(self, cls: str, config: dict[str, Any], *args: str, stride: int = 1) -> str:
        name = f"l{len(self.sketch.calls)}_{cls.lower()}"
        layer = getattr(keras.layers, cls)(name=name, **config)
        xs = [self.tensors[a] for a in args]
        self.tensors[name] = layer(xs if cls in MERGES else xs[0])
        self.sketch.calls.append((name, cls, config, args))
        self.jumps[name] = tuple(j * stride for j in self.jumps[args[0]])
        return name

    def size(self, name: str) -> tuple[int, ...]:
        return tuple(self.tensors[name].shape[1:-1])

    def channels(self, name: str) -> int:
        return int(self.tensors[name].shape[-1])

    def per_axis(self, make: Any) -> Any:
        values = [make() for _ in range(self.sketch.rank)]
        return values[0] if self.sketch.rank == 1 else values

    # --- layers ------------------------------------------------------------------------------
    def window(self, x: str, stride: int | None = None) -> str:
        """A convolution or pooling layer with random geometry (stride forced when given)."""
        rank, rng = self.sketch.rank, self.rng
        dims = f"{rank}D"
        small = min(self.size(x))
        if stride is None:
            stride = 2 if rng.random() < 0.3 and max(self.jumps[x]) < 4 and small >= 14 else 1
        op = rng.choice(["conv", "conv", "separable", "depthwise", "pool"])
        padding = rng.choice(["valid", "same"])
        if op == "pool":
            pool = self.per_axis(lambda: rng.choice([2, 3]))
            cls = rng.choice(["MaxPooling", "AveragePooling"]) + dims
            return self.call(cls, {"pool_size": pool, "strides": stride, "padding": padding}, x,
                             stride=stride)  # fmt: skip
        dilation = 1
        if stride == 1 and rng.random() < 0.35:
            dilation = self.per_axis(lambda: rng.choice([1, 2, 3]))
        kernel = self.per_axis(lambda: rng.choice([1, 2, 3, 3, 5]))
        if op == "conv" and rank == 1 and stride == 1 and rng.random() < 0.4:
            padding = "causal"
        config: dict[str, Any] = {
            "kernel_size": kernel, "strides": stride, "padding": padding,
            "dilation_rate": dilation, "use_bias": rng.random() < 0.5,
        }  # fmt: skip
        cls = {"conv": "Conv", "separable": "SeparableConv", "depthwise": "DepthwiseConv"}[op]
        if op != "depthwise":
            config["filters"] = 3
        return self.call(cls + dims, config, x, stride=stride)

    def pointwise(self, x: str) -> str:
        cls = self.rng.choice(["BatchNormalization", "ReLU", "Dropout", "Dense"])
        config = {"Dropout": {"rate": 0.2}, "Dense": {"units": 3}}.get(cls, {})
        return self.call(cls, config, x)

    def pad_or_crop(self, x: str, amounts: list[tuple[int, int]], crop: bool) -> str:
        rank = self.sketch.rank
        cls = ("Cropping" if crop else "ZeroPadding") + f"{rank}D"
        value: Any = list(amounts[0]) if rank == 1 else [list(a) for a in amounts]
        return self.call(cls, {"cropping" if crop else "padding": value}, x)

    def realign(self, branches: list[str]) -> list[str]:
        """Crop the larger branches to the smallest, splitting the difference at random."""
        target = [min(s) for s in zip(*(self.size(b) for b in branches), strict=True)]
        out = []
        for b in branches:
            diff = [n - t for n, t in zip(self.size(b), target, strict=True)]
            if any(diff):
                splits = [(lo := self.rng.randint(0, d), d - lo) for d in diff]
                b = self.pad_or_crop(b, splits, crop=True)
            out.append(b)
        if self.rng.random() < 0.3:
            pad = [(self.rng.randint(0, 2), self.rng.randint(0, 2)) for _ in target]
            out = [self.pad_or_crop(b, pad, crop=False) for b in out]
        return out

    def block(self, x: str) -> str:
        """Two or three branches with the same stride, realigned, then merged."""
        stride = (
            2
            if self.rng.random() < 0.3 and max(self.jumps[x]) < 4 and min(self.size(x)) >= 16
            else 1
        )
        branches = []
        for index in range(self.rng.choice([2, 2, 3])):
            if index == 0 and stride == 1 and self.rng.random() < 0.4:
                branches.append(x)  # identity shortcut
                continue
            b = self.window(x, stride=stride)
            if self.rng.random() < 0.5:
                b = self.window(b, stride=1)
            branches.append(b)
        branches = self.realign(branches)
        channels = {self.channels(b) for b in branches}
        merge = self.rng.choice(MERGES if len(channels) == 1 else ("Concatenate",))
        out = self.call(merge, {"axis": -1} if merge == "Concatenate" else {}, *branches)
        if merge == "Concatenate":
            out = self.call("Conv" + f"{self.sketch.rank}D", {"filters": 3, "kernel_size": 1}, out)
        return out

    def sketch_model(self) -> Sketch:
        x = "image"
        for _ in range(self.rng.randint(3, 6)):
            if min(self.size(x)) < 14:
                break
            roll = self.rng.random()
            if roll < 0.45:
                x = self.block(x)
            elif roll < 0.8:
                x = self.window(x)
            elif roll < 0.9:
                x = self.pad_or_crop(
                    x, [(self.rng.randint(0, 2), self.rng.randint(0, 2))] * self.sketch.rank,
                    crop=self.rng.random() < 0.5,
                )  # fmt: skip
            else:
                x = self.pointwise(x)
        if x == "image" or self.sketch.calls[-1][0] != x:
            x = self.window(x, stride=1)
        if self.rng.random() < 0.3:
            x = self.pointwise(x)
        return self.sketch


def measurement_weights(model: Any) -> None:
    """Positive constant kernels, zero biases, identity batch normalisation."""
    for weight in model.weights:
        leaf = weight.path.split("/")[-1]
        shape = tuple(weight.shape)
        if "kernel" in leaf:
            fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
            value = 1.0 / fan_in
        elif leaf in {"gamma", "moving_variance"}:
            value = 1.0
        else:  # bias, beta, moving_mean
            value = 0.0
        weight.assign(np.full(shape, value, dtype="float32"))


# id(model) -> (model, its traced gradient); holding the model keeps its id from being reused.
_input_gradients: dict[int, tuple[Any, Any]] = {}


def gradient_support(
    model: Any, x: np.ndarray, unit: tuple[int, ...]
) -> list[tuple[int, int]] | None:
    """Per spatial axis, the first and last input positions with a nonzero gradient (or None).

    The gradient is taken in a `tf.function` (graph mode, as training takes it): TensorFlow
    2.21's eager oneDNN kernel for the input gradient of a strided 1x1 convolution corrupts the
    heap on CPU (seed 31's `Conv1D(kernel_size=1, strides=2)` aborted the process), while the
    graph kernel is sound.
    """

    # The output's size for this input (a model may accept any input size).
    mask = np.zeros(tuple(model.compute_output_shape(x.shape)), dtype="float32")
    mask[(0, *unit)] = 1.0  # the unit, summed over its channels
    cached_model, gradient = _input_gradients.get(id(model), (None, None))
    if cached_model is not model:  # one trace per model, not per unit

        @tf.function
        def gradient(inputs: Any, mask: Any) -> Any:
            with tf.GradientTape() as tape:
                tape.watch(inputs)
                value = tf.reduce_sum(model(inputs, training=False) * mask)
            return tape.gradient(value, inputs)

        _input_gradients[id(model)] = (model, gradient)
    grad = np.abs(gradient(tf.constant(x), tf.constant(mask)).numpy()[0]).sum(axis=-1)
    support = []
    for axis in range(grad.ndim):
        other = tuple(a for a in range(grad.ndim) if a != axis)
        hits = np.nonzero(grad.sum(axis=other) > 0)[0]
        if not hits.size:
            return None
        support.append((int(hits[0]), int(hits[-1])))
    return support


def check_units(report: Any, model: Any, x: np.ndarray, units: list[tuple[int, ...]]) -> None:
    n_in = report.input_size
    for unit in units:
        measured = gradient_support(model, x, unit)
        expected = report.interval(unit)
        if measured is None:
            # A corner unit can see only padding; its field must then leave the image.
            assert any(lo < 0 or hi >= n for (lo, hi), n in zip(expected, n_in, strict=True)), (
                f"unit {unit}: no gradient, but the report says it sees {expected}"
            )
            continue
        for axis, ((m_lo, m_hi), (lo, hi)) in enumerate(zip(measured, expected, strict=True)):
            where = f"unit {unit}, axis {axis}: measured {(m_lo, m_hi)}, report {(lo, hi)}"
            # Inside the image the bounding box is exact; where the field hangs over the border,
            # dilation holes may leave the first image positions unused, so only bound it.
            if lo >= 0:
                assert m_lo == lo, where
            else:
                assert m_lo >= 0, where
            if hi <= n_in[axis] - 1:
                assert m_hi == hi, where
            else:
                assert m_hi <= n_in[axis] - 1, where


@pytest.mark.parametrize("seed", range(48))
def test_random_graph_field_matches_gradient_support(seed):
    keras.utils.set_random_seed(seed)
    sketch = Generator(seed).sketch_model()
    real, last = sketch.build(measure=False)
    graph = build_graph(real_config(real))
    # A trailing point-wise layer keeps the field: the report names the layer before it.
    calls = {name: (cls, args) for name, cls, _, args in sketch.calls}
    named, after = last, []
    while named in calls and calls[named][0] in {"BatchNormalization", "ReLU", "Dropout", "Dense"}:
        after.insert(0, named)
        named = calls[named][1][0]
    assert default_end_point(graph) == named
    report = compute_receptive_field(graph)
    assert report.end_point == named
    assert list(report.unchanged_after) == after
    assert not report.is_global
    twin, _ = sketch.build(measure=True)
    measurement_weights(twin)
    n_out = tuple(twin.output.shape[1:-1])
    assert n_out == report.output_size
    centre = tuple(n // 2 for n in n_out)
    after = tuple(min(n // 2 + 1, n - 1) for n in n_out)
    x = (
        np.random.default_rng(seed)
        .uniform(0.5, 1.5, size=(1, *sketch.input_shape))
        .astype("float32")
    )
    check_units(report, twin, x, [centre, after, (0,) * len(n_out)])
    # Every merge, and the layer after each, as an end-point of its own: the union must hold
    # where it is formed, not only after later layers have widened it.
    names = [call[0] for call in sketch.calls]
    merges = [i for i, call in enumerate(sketch.calls) if call[1] in MERGES]
    for name in sorted({names[j] for i in merges for j in (i, i + 1) if j < len(names) - 1}):
        inner = compute_receptive_field(graph, end_point=name)
        cut = keras.Model(twin.inputs, twin.get_layer(name).output)
        check_units(inner, cut, x, [tuple(n // 2 for n in inner.output_size)])


def test_volumetric_branches_match_gradient_support():
    sketch = Sketch(3, (14, 16, 12, 2), head="gap")
    conv = {"filters": 2, "use_bias": False}
    sketch.calls = [
        ("a", "Conv3D", {**conv, "kernel_size": [3, 1, 2], "padding": "same"}, ("image",)),
        ("b", "MaxPooling3D", {"pool_size": 2, "strides": 1, "padding": "same"}, ("image",)),
        ("b2", "Conv3D", {**conv, "kernel_size": 3, "dilation_rate": [1, 2, 1]}, ("b",)),
        ("b3", "ZeroPadding3D", {"padding": [[2, 0], [0, 4], [1, 1]]}, ("b2",)),
        ("add", "Add", {}, ("a", "b3")),
        ("s", "Conv3D", {**conv, "kernel_size": 2, "strides": 2, "padding": "same"}, ("add",)),
        ("crop", "Cropping3D", {"cropping": [[1, 0], [0, 1], [1, 1]]}, ("s",)),
    ]
    real, last = sketch.build(measure=False)
    report = compute_receptive_field(build_graph(real_config(real)))
    assert report.end_point == last == "crop"
    twin, _ = sketch.build(measure=True)
    measurement_weights(twin)
    x = np.random.default_rng(0).uniform(0.5, 1.5, size=(1, *sketch.input_shape)).astype("float32")
    check_units(report, twin, x, [(3, 3, 2), (4, 4, 3), (0, 0, 0)])


def real_config(model: Any) -> dict[str, Any]:
    """The model's Keras 3 JSON config, as a student's upload would carry it."""
    return json.loads(model.to_json())


def _rebuilt(sketch: Sketch, *extra: tuple[str, dict[str, Any]], dilate: str = "") -> Sketch:
    """A copy of ``sketch`` with layers appended and/or one layer's dilation set to 2."""
    calls = [
        (name, cls, {**config, "dilation_rate": 2} if name == dilate else config, args)
        for name, cls, config, args in sketch.calls
    ]
    for index, (cls, config) in enumerate(extra):
        calls.append((f"extra_{index}", cls, config, (calls[-1][0],)))
    return Sketch(sketch.rank, sketch.input_shape, calls, sketch.head)


def _residual_sketch() -> Sketch:
    conv = {"filters": 3, "kernel_size": 3, "padding": "same"}
    return Sketch(2, (40, 40, 3), [
        ("stem", "Conv2D", {**conv, "strides": 2}, ("image",)),
        ("t", "Conv2D", conv, ("stem",)),  # the layer to dilate: every path crosses it
        ("a", "Conv2D", conv, ("t",)),
        ("b", "SeparableConv2D", {**conv, "dilation_rate": 2}, ("a",)),
        ("add", "Add", {}, ("t", "b")),
        ("pool", "MaxPooling2D", {"pool_size": 2}, ("add",)),
        ("c", "Conv2D", conv, ("pool",)),
        ("d", "DepthwiseConv2D", {"kernel_size": 3, "padding": "same"}, ("c",)),
        ("add2", "Add", {}, ("pool", "d")),
        ("e", "Conv2D", {**conv, "kernel_size": [3, 1]}, ("add2",)),
    ])  # fmt: skip


def _valid_chain_sketch() -> Sketch:
    conv = {"filters": 3, "kernel_size": 3, "padding": "valid"}
    return Sketch(2, (36, 30, 3), [
        ("c1", "Conv2D", conv, ("image",)),
        ("c2", "Conv2D", {**conv, "strides": 2}, ("c1",)),
        ("c3", "SeparableConv2D", conv, ("c2",)),
        ("c4", "Conv2D", {**conv, "kernel_size": [1, 3]}, ("c3",)),
    ])  # fmt: skip


HINT_CASES = {
    "residual": _residual_sketch,
    "valid-chain": _valid_chain_sketch,
    **{
        f"random-{seed}": (lambda seed=seed: Generator(seed).sketch_model())
        for seed in range(0, 48, 4)
    },
}


@pytest.mark.parametrize("case", list(HINT_CASES))
def test_hint_formulas_match_keras_rebuilt_models(case):
    """The what-if formulas against the field of the model Keras builds with the change."""
    sketch = HINT_CASES[case]()
    real, last = sketch.build(measure=False)
    report = compute_receptive_field(build_graph(real_config(real)))
    conv_cls = f"Conv{sketch.rank}D"
    conv3 = (conv_cls, {"filters": 3, "kernel_size": 3, "padding": "same"})
    pool2 = (f"MaxPooling{sketch.rank}D", {"pool_size": 2, "strides": 2, "padding": "same"})
    for change, extra in (("conv3x3", [conv3]), ("pool2x2", [pool2, conv3])):
        changed, end = _rebuilt(sketch, *extra).build(measure=False)
        truth = compute_receptive_field(build_graph(real_config(changed)), end_point=end)
        assert rf_if_appended(report, change) == list(truth.size), change
    targets = [
        row.layer for row in report.rows
        if row.type.endswith(("Conv1D", "Conv2D", "Conv3D")) and row.on_every_path
        and set(row.k) == {3} and set(row.d) == {1} and set(row.s) == {1}
    ]  # fmt: skip
    if not targets:
        with pytest.raises(ReceptiveFieldError, match="Expected one to dilate"):
            rf_if_appended(report, "dilate_last")
        return
    changed, _ = _rebuilt(sketch, dilate=targets[-1]).build(measure=False)
    truth = compute_receptive_field(build_graph(real_config(changed)), end_point=last)
    assert rf_if_appended(report, "dilate_last") == list(truth.size)


def test_nested_model_called_twice_matches_gradient_support():
    block = keras.Sequential(
        [
            keras.Input((None, None, 3)),  # any size: the two calls see different sizes
            keras.layers.Conv2D(3, 3, padding="same", name="c1"),
            keras.layers.AveragePooling2D(3, strides=2, padding="same", name="pool"),
            keras.layers.DepthwiseConv2D([1, 3], padding="valid", name="dw"),
        ],
        name="block",
    )
    image = keras.Input((64, 60, 3), name="image")
    x = keras.layers.Conv2D(3, 5, dilation_rate=2, name="stem")(image)
    features = block(block(x))  # one set of weights, two calls: two nodes per inner layer
    head = keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(features))
    graph = build_graph(real_config(keras.Model(image, head)))
    end_point = default_end_point(graph)
    assert len(graph.nodes_of(end_point)) == 2
    report = compute_receptive_field(graph)
    twin = keras.Model(image, features)
    measurement_weights(twin)
    assert tuple(twin.output.shape[1:-1]) == report.output_size
    x = np.random.default_rng(1).uniform(0.5, 1.5, size=(1, 64, 60, 3)).astype("float32")
    check_units(report, twin, x, [(6, 5), (7, 6), (0, 0)])


def test_unknown_input_size_field_matches_gradient_support_at_any_size():
    conv = {"filters": 3, "padding": "same"}
    image = keras.Input((None, None, 3), name="image")
    stem = keras.layers.Conv2D(kernel_size=3, strides=2, name="stem", **conv)(image)
    a = keras.layers.SeparableConv2D(kernel_size=5, name="a", **conv)(stem)
    a = keras.layers.ZeroPadding2D([[3, 0], [0, 2]], name="pad")(a)
    a = keras.layers.Cropping2D([[0, 3], [2, 0]], name="crop")(a)
    merged = keras.layers.Add(name="add")([stem, a])
    top = keras.layers.Conv2D(kernel_size=3, strides=2, name="top", **conv)(merged)
    head = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(top))
    report = compute_receptive_field(build_graph(real_config(keras.Model(image, head))))
    assert report.end_point == "top"
    assert report.start == (None, None)  # the `same` paddings depend on the size
    twin = keras.Model(image, top)
    measurement_weights(twin)
    for size in (45, 46):
        x = np.random.default_rng(size).uniform(0.5, 1.5, (1, size, size, 3)).astype("float32")
        support = gradient_support(twin, x, (5, 5))
        assert support is not None and all(lo > 0 and hi < size - 1 for lo, hi in support)
        assert tuple(hi - lo + 1 for lo, hi in support) == report.size


def test_center_crop_offsets_match_gradient_support():
    sketch = Sketch(2, (41, 37, 3), [
        ("crop", "CenterCrop", {"height": 32, "width": 30}, ("image",)),
        ("c1", "Conv2D", {"filters": 3, "kernel_size": [3, 5], "strides": 2}, ("crop",)),
    ])  # fmt: skip
    real, _ = sketch.build(measure=False)
    report = compute_receptive_field(build_graph(real_config(real)))
    twin, _ = sketch.build(measure=True)
    measurement_weights(twin)
    x = np.random.default_rng(2).uniform(0.5, 1.5, (1, 41, 37, 3)).astype("float32")
    check_units(report, twin, x, [(0, 0), (7, 6), (14, 12)])


@pytest.mark.parametrize(("axis", "is_global"), [(-1, False), ([1, 2, 3], True), ([1, 2], True)])
def test_inference_identities_and_normalisation_axes_match_gradient_support(axis, is_global):
    # Augmentation and noise layers are the identity at inference; layer normalisation over the
    # channels stays local, over the spatial axes it makes every unit depend on the whole image.
    sketch = Sketch(2, (40, 36, 3), [
        ("scale", "Rescaling", {"scale": 0.5, "offset": 0.25}, ("image",)),
        ("flip", "RandomFlip", {}, ("scale",)),
        ("shift", "RandomTranslation", {"height_factor": 0.2, "width_factor": 0.2}, ("flip",)),
        ("zoom", "RandomZoom", {"height_factor": 0.2}, ("shift",)),
        ("noise", "GaussianNoise", {"stddev": 0.3}, ("zoom",)),
        ("conv", "Conv2D", {"filters": 3, "kernel_size": 5, "strides": 2}, ("noise",)),
        ("norm", "LayerNormalization", {"axis": axis}, ("conv",)),
        ("mix", "Dense", {"units": 2}, ("norm",)),
    ])  # fmt: skip
    real, _ = sketch.build(measure=False)
    report = compute_receptive_field(build_graph(real_config(real)), end_point="mix")
    assert report.is_global is is_global
    twin, _ = sketch.build(measure=True)
    measurement_weights(twin)
    # Normalised values sum to zero over the normalised axes: mix them with unequal weights.
    kernel = twin.get_layer("mix").kernel
    kernel.assign(np.random.default_rng(3).uniform(0.1, 1.0, kernel.shape).astype("float32"))
    x = np.random.default_rng(4).uniform(0.5, 1.5, (1, 40, 36, 3)).astype("float32")
    if is_global:
        # The 5x5 stride-2 `valid` convolution's last units read up to row 38 and column 34:
        # global means every position any unit saw, 39 x 35, not the whole 40 x 36 image.
        assert report.size == (39, 35)
        for unit in [(8, 7), (0, 0)]:
            assert gradient_support(twin, x, unit) == list(report.interval(unit))
    else:
        assert report.size == (5, 5) and report.jump == (2, 2)
        check_units(report, twin, x, [(8, 7), (9, 8)])
