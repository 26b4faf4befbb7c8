"""Keras models for tests, and the truth Keras reports about them.

Importing this module imports Keras: use it only from tests marked ``tf``. Other test modules
may import `random_cnn` (a seeded generator of functional CNNs with branches, merges, separable,
depthwise and dilated convolutions, normalization, pooling, nested models and shared layers)
and `keras_truth` (per-layer parameter counts and output shapes, straight from Keras).
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
from keras import layers

Shape = tuple[int | None, ...]


@dataclass(frozen=True)
class LayerTruth:
    """What Keras says about one (flattened) layer."""

    name: str
    class_name: str
    total: int
    trainable: int
    non_trainable: int
    output_shape: Shape
    call_shapes: tuple[Shape, ...]  # every call's output, for layers of the outer model only


@dataclass(frozen=True)
class ModelTruth:
    """What Keras says about a whole model."""

    total: int
    trainable: int
    non_trainable: int
    layers: dict[str, LayerTruth]
    input_shapes: tuple[Shape, ...]
    output_shapes: tuple[Shape, ...]


def _size(weights: list[Any]) -> int:
    total = 0
    for w in weights:
        n = 1
        for d in w.shape:
            n *= int(d)
        total += n
    return total


def _first_output_shape(layer: keras.layers.Layer) -> Shape:
    node = layer._inbound_nodes[0]
    (tensor,) = node.output_tensors  # primitive layers have one output
    return tuple(tensor.shape[1:])


def _walk(model: keras.Model, prefix: str, out: dict[str, LayerTruth]) -> None:
    for layer in model.layers:
        name = prefix + layer.name
        if isinstance(layer, keras.Model):
            _walk(layer, name + "/", out)
            continue
        if prefix and isinstance(layer, keras.layers.InputLayer):
            continue  # a nested model's input is wired through to its caller's tensor
        out[name] = LayerTruth(
            name=name,
            class_name=type(layer).__name__,
            total=layer.count_params() if layer.built else 0,
            trainable=_size(layer.trainable_weights),
            non_trainable=_size(layer.non_trainable_weights),
            output_shape=_first_output_shape(layer),
            # Inner layers of nested models gain a node per call of their model, which the
            # flattened graph represents differently; their first call is compared instead.
            call_shapes=(
                tuple(tuple(n.output_tensors[0].shape[1:]) for n in layer._inbound_nodes)
                if not prefix
                else (_first_output_shape(layer),)
            ),
        )


def keras_truth(model: keras.Model) -> ModelTruth:
    """Parameter counts and shapes as Keras reports them, nested models flattened.

    Layer names of nested models are qualified ``outer/inner`` like `grader.graph`. Input layers
    of nested models are not listed (the grader wires them through).
    """
    per_layer: dict[str, LayerTruth] = {}
    _walk(model, "", per_layer)
    return ModelTruth(
        total=model.count_params(),
        trainable=_size(model.trainable_weights),
        non_trainable=_size(model.non_trainable_weights),
        layers=per_layer,
        input_shapes=tuple(tuple(t.shape[1:]) for t in model.inputs),
        output_shapes=tuple(tuple(t.shape[1:]) for t in model.outputs),
    )


def to_config(model: keras.Model) -> dict[str, Any]:
    """The model's config exactly as a student's upload carries it (``model.to_json()``)."""
    return json.loads(model.to_json())


def single_layer_model(
    input_shape: Shape, layer: keras.layers.Layer | list[keras.layers.Layer]
) -> keras.Model:
    """A Functional model applying `layer` (or layers, in turn) to one input of `input_shape`."""
    inputs = keras.Input(shape=input_shape, name="x")
    x = inputs
    for each in layer if isinstance(layer, list) else [layer]:
        x = each(x)
    return keras.Model(inputs, x, name="single_layer")


# ---------------------------------------------------------------------------------------------
# Seeded random CNNs.


def _spatial(x: Any) -> tuple[int, int]:
    return int(x.shape[1]), int(x.shape[2])


def _channels(x: Any) -> int:
    return int(x.shape[-1])


class _RandomCNN:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.count = 0

    def name(self, kind: str) -> str:
        self.count += 1
        return f"{kind}_{self.count}"

    def conv(self, x: Any) -> Any:
        rng = self.rng
        h, w = _spatial(x)
        kind = rng.choice(["conv", "conv", "separable", "depthwise"])
        kernel = rng.choice([1, 3, 3, 5]) if min(h, w) >= 5 else 1
        padding = rng.choice(["same", "valid"]) if min(h, w) > kernel + 2 else "same"
        strides, dilation = 1, 1
        roll = rng.random()
        if roll < 0.25 and min(h, w) >= 8:
            strides = 2
        elif roll < 0.45 and kernel > 1 and min(h, w) > 2 * (kernel - 1) * 2 + 2:
            dilation = 2
        use_bias = rng.random() < 0.7
        filters = rng.choice([4, 8, 12, 16])
        if kind == "conv":
            layer = layers.Conv2D(
                filters,
                kernel,
                strides=strides,
                padding=padding,
                dilation_rate=dilation,
                use_bias=use_bias,
                name=self.name("conv"),
            )
        elif kind == "separable":
            layer = layers.SeparableConv2D(
                filters,
                kernel,
                strides=strides,
                padding=padding,
                dilation_rate=dilation,
                depth_multiplier=rng.choice([1, 2]),
                use_bias=use_bias,
                name=self.name("sep"),
            )
        else:
            layer = layers.DepthwiseConv2D(
                kernel,
                strides=strides,
                padding=padding,
                dilation_rate=dilation,
                depth_multiplier=rng.choice([1, 2]),
                use_bias=use_bias,
                name=self.name("dw"),
            )
        x = layer(x)
        if rng.random() < 0.5:
            x = layers.BatchNormalization(
                center=rng.random() < 0.8, scale=rng.random() < 0.8, name=self.name("bn")
            )(x)
        if rng.random() < 0.6:
            x = layers.Activation(rng.choice(["relu", "elu", "swish"]), name=self.name("act"))(x)
        return x

    def residual(self, x: Any) -> Any:
        channels = _channels(x)
        y = layers.Conv2D(channels, 3, padding="same", name=self.name("res_conv"))(x)
        y = layers.BatchNormalization(name=self.name("res_bn"))(y)
        merge = self.rng.choice([layers.Add, layers.Maximum, layers.Average, layers.Multiply])
        return merge(name=self.name("merge"))([x, y])

    def inception(self, x: Any) -> Any:
        a = layers.Conv2D(self.rng.choice([4, 8]), 1, name=self.name("br1"))(x)
        b = layers.SeparableConv2D(
            self.rng.choice([4, 8]), 3, padding="same", name=self.name("br3")
        )(x)
        c = layers.MaxPooling2D(3, strides=1, padding="same", name=self.name("brpool"))(x)
        return layers.Concatenate(name=self.name("concat"))([a, b, c])

    def shared(self, x: Any) -> Any:
        channels = _channels(x)
        layer = layers.Conv2D(channels, 3, padding="same", name=self.name("shared"))
        return layer(layers.ReLU(name=self.name("relu"))(layer(x)))

    def nested(self, x: Any) -> Any:
        h, w = _spatial(x)
        channels = _channels(x)
        block_layers: list[Any] = [
            keras.Input((h, w, channels)),
            layers.Conv2D(self.rng.choice([4, 8]), 3, padding="same", name=self.name("in_conv")),
            layers.BatchNormalization(name=self.name("in_bn")),
        ]
        if self.rng.random() < 0.5:
            block_layers.append(layers.DepthwiseConv2D(3, padding="same", name=self.name("in_dw")))
        block = keras.Sequential(block_layers, name=self.name("block"))
        if self.rng.random() < 0.3:
            block.trainable = False
        y = block(x)
        if self.rng.random() < 0.5 and _channels(y) == channels:
            y = layers.Add(name=self.name("nested_add"))([block(y), y])  # block called twice
        return y

    def multi_scale(self, x: Any) -> Any:
        """One shared convolution at two resolutions: its calls have different output shapes."""
        h, w = _spatial(x)
        if min(h, w) < 4:
            return x
        shared = layers.Conv2D(self.rng.choice([4, 8]), 3, padding="same", name=self.name("ms"))
        full = shared(x)
        coarse = shared(layers.MaxPooling2D(2, padding="same", name=self.name("ms_pool"))(x))
        coarse = layers.UpSampling2D(2, name=self.name("ms_up"))(coarse)
        extra_h, extra_w = int(coarse.shape[1]) - h, int(coarse.shape[2]) - w
        if extra_h or extra_w:
            coarse = layers.Cropping2D(((0, extra_h), (0, extra_w)), name=self.name("ms_crop"))(
                coarse
            )
        return layers.Concatenate(name=self.name("ms_cat"))([full, coarse])

    def nested_functional(self, x: Any) -> Any:
        """A two-branch Functional block, sometimes frozen, sometimes called twice."""
        h, w = _spatial(x)
        channels = _channels(x)
        inner_in = keras.Input((h, w, channels))
        a = layers.Conv2D(channels, 1, name=self.name("f_pw"))(inner_in)
        b = layers.DepthwiseConv2D(3, padding="same", name=self.name("f_dw"))(inner_in)
        b = layers.BatchNormalization(name=self.name("f_bn"))(b)
        out = layers.Add(name=self.name("f_add"))([a, b])
        block = keras.Model(inner_in, out, name=self.name("fblock"))
        if self.rng.random() < 0.3:
            block.trainable = False
        y = block(x)
        if self.rng.random() < 0.5:
            y = block(layers.ReLU(name=self.name("f_relu"))(y))
        return y

    def pool(self, x: Any) -> Any:
        h, w = _spatial(x)
        if min(h, w) < 4:
            return x
        cls = self.rng.choice([layers.MaxPooling2D, layers.AveragePooling2D])
        return cls(2, padding=self.rng.choice(["valid", "same"]), name=self.name("pool"))(x)

    def build(self) -> keras.Model:
        rng = self.rng
        size = rng.choice([16, 24, 32])
        inputs = keras.Input((size, size, rng.choice([1, 3])), name="image")
        x = self.conv(inputs)
        for _ in range(rng.randint(3, 7)):
            step = rng.choice(
                [
                    self.conv,
                    self.conv,
                    self.residual,
                    self.inception,
                    self.shared,
                    self.nested,
                    self.nested_functional,
                    self.multi_scale,
                    self.pool,
                ]
            )
            x = step(x)
        if rng.random() < 0.5:
            x = layers.GlobalAveragePooling2D(name=self.name("gap"))(x)
        else:
            x = layers.Flatten(name=self.name("flatten"))(x)
            x = layers.Dropout(0.2, name=self.name("dropout"))(x)
        outputs = layers.Dense(10, activation="softmax", name="classifier")(x)
        return keras.Model(inputs, outputs, name=f"random_cnn_{self.seed}")


def random_cnn(seed: int) -> keras.Model:
    """A seeded random functional CNN (same seed, same architecture).

    It mixes plain, separable, depthwise, strided and dilated convolutions, batch normalization,
    pooling, residual merges (Add, Maximum, Average, Multiply), inception-style concatenations,
    nested Sequential blocks (sometimes frozen, sometimes called twice) and shared layers.
    """
    return _RandomCNN(seed).build()
