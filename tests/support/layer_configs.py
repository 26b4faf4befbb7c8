"""Seeded random layer arguments for every supported layer class, for the parameter property test.

`draw_case(class_name, rng, index)` returns the constructor arguments of one random, plausibly
valid layer of that class and the input shapes to call it on. Every argument the Keras class
accepts has a sampler here (`tests/grader/layers/test_params_property.py` checks that each one is
varied), so a Keras upgrade that adds an argument fails that test until a sampler is written and
the grader's table in `grader/layers` says what the argument does to the weights.

Values include Keras' defaults, so configs mix default and non-default arguments. Some draws are
invalid (a kernel larger than the input, groups that do not divide the channels, ...): Keras
refuses those and the test skips them, as a student's upload would fail to build.

Importing this module does not import Keras: the few Keras objects an argument needs (a
quantization config) are made by the test.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Shape = tuple[int | None, ...]

INITIALIZERS = ["glorot_uniform", "he_normal", "zeros", "ones", "random_normal"]
REGULARIZERS = [None, None, "l2", "l1"]
CONSTRAINTS = [None, None, "max_norm", "non_neg", "unit_norm"]
ACTIVATIONS = [None, "relu", "tanh", "linear", "gelu", "sigmoid", "swish"]
FLOAT_DTYPES = ["float32", "mixed_float16", "float64", "bfloat16"]
QUANTIZED_DTYPE = "int8_from_float32"
INTERPOLATIONS = ["bilinear", "nearest"]
FILL_MODES = ["reflect", "constant", "nearest", "wrap"]
VALUE_RANGES = [(0, 255), (0, 1), (-1, 1)]
# A marker for "an instance of keras.quantizers.Int8QuantizationConfig", made by the test.
INT8_QUANTIZATION = "<Int8QuantizationConfig>"


@dataclass
class Case:
    """One random layer: its class, constructor arguments and inputs.

    Attributes:
        class_name: the Keras class.
        kwargs: constructor arguments (those Keras does not serialize are put back into the
            config by the test, as a hand-written config could carry them).
        input_shapes: shapes (batch axis excluded) of the inputs the layer is called on.
        input_dtype: dtype of those inputs.
    """

    class_name: str
    kwargs: dict[str, Any]
    input_shapes: list[Shape]
    input_dtype: str = "float32"
    index: int = 0  # which draw of its class


class Draw:
    """Random choices with short names, for the `index`-th draw of a class.

    `cycle` picks by draw index instead of at random, so that a few draws of a class are enough
    to cover each of a few options (each data format, each argument left in or out).
    """

    def __init__(self, rng: random.Random, index: int) -> None:
        self.rng = rng
        self.index = index

    def cycle(self, options: list[Any] | tuple[Any, ...], salt: int = 0) -> Any:
        return options[(self.index + salt) % len(options)]

    def pick(self, options: list[Any] | tuple[Any, ...]) -> Any:
        return self.rng.choice(list(options))

    def coin(self, p: float = 0.5) -> bool:
        return self.rng.random() < p

    def int(self, low: int, high: int) -> int:
        return self.rng.randint(low, high)

    def real(self, low: float, high: float) -> float:
        return round(self.rng.uniform(low, high), 3)

    def ints(self, n: int, low: int, high: int) -> Any:
        """An int or a tuple of `n` ints, as Keras accepts both."""
        if self.coin(0.5):
            return self.int(low, high)
        return tuple(self.int(low, high) for _ in range(n))

    def seed(self) -> int | None:
        return self.pick([None, self.int(0, 10_000)])

    def fmt(self) -> str | None:
        return self.cycle(["channels_first", self.pick([None, "channels_last"])])


def image(
    d: Draw, rank: int, fmt: str | None, channels: int | None = None, low: int = 5, high: int = 9
) -> Shape:
    """A random image-like shape of `rank` spatial axes in the `fmt` layout."""
    spatial = [d.int(low, high) for _ in range(rank)]
    c = channels if channels is not None else d.pick([1, 2, 3, 4, 6])
    return (c, *spatial) if fmt == "channels_first" else (*spatial, c)


def feature_shape(d: Draw, max_rank: int = 3) -> Shape:
    """A random batchless shape of rank 1..`max_rank`."""
    return tuple(d.int(2, 6) for _ in range(d.int(1, max_rank)))


def axis_of(d: Draw, rank: int) -> int:
    """A random non-batch axis of a batchless shape of `rank`, positive or negative."""
    full = rank + 1
    axis = d.int(1, rank)
    return axis - full if d.coin(0.4) else axis


def axes_of(d: Draw, rank: int) -> Any:
    """One axis, or a list of distinct axes."""
    if d.coin(0.5):
        return axis_of(d, rank)
    chosen = sorted(d.rng.sample(range(1, rank + 1), d.int(1, rank)))
    return [a - (rank + 1) if d.coin(0.3) else a for a in chosen]


# ---------------------------------------------------------------------------------------------
# Families. Each returns the class's own arguments and its input shapes; `base_arguments` adds
# the ones every Keras layer accepts.


def _initializers(d: Draw, *names: str) -> dict[str, Any]:
    return {name: d.pick(INITIALIZERS) for name in names}


def _regularizers(d: Draw, *names: str) -> dict[str, Any]:
    return {name: d.pick(REGULARIZERS) for name in names}


def _constraints(d: Draw, *names: str) -> dict[str, Any]:
    return {name: d.pick(CONSTRAINTS) for name in names}


def _above_one(d: Draw, rank: int) -> Any:
    """Strides or dilations, 2 along at least one axis."""
    if d.coin(0.4):
        return 2
    values = [d.int(1, 2) for _ in range(rank)]
    values[d.int(0, rank - 1)] = 2
    return tuple(values)


def _window(d: Draw, rank: int) -> dict[str, Any]:
    """kernel_size, strides, dilation_rate, padding of a convolution."""
    mode = d.cycle(["plain", "strided", "dilated"])
    return {
        "kernel_size": d.ints(rank, 1, 3),
        "strides": _above_one(d, rank) if mode == "strided" else d.pick([1, (1,) * rank]),
        "dilation_rate": _above_one(d, rank) if mode == "dilated" else 1,
        "padding": d.pick(["valid", "same"]),
    }


def _conv_common(d: Draw, rank: int) -> tuple[dict[str, Any], str | None]:
    fmt = d.fmt()
    kwargs = {
        **_window(d, rank),
        "data_format": fmt,
        "activation": d.pick(ACTIVATIONS),
        "use_bias": d.coin(0.7),
        **_initializers(d, "bias_initializer"),
        **_regularizers(d, "bias_regularizer", "activity_regularizer"),
        **_constraints(d, "bias_constraint"),
    }
    return kwargs, fmt


def conv(rank: int) -> Callable[[Draw], tuple[dict[str, Any], list[Shape]]]:
    def draw(d: Draw) -> tuple[dict[str, Any], list[Shape]]:
        kwargs, fmt = _conv_common(d, rank)
        if rank == 1:
            kwargs["padding"] = d.pick(["valid", "same", "causal"])
        groups = d.pick([1, 1, 1, 2, 3])
        channels = groups * d.int(1, 2)
        lora = d.pick([None, None, 1, 2, 3])
        kwargs.update(
            filters=groups * d.int(1, 3),
            groups=groups,
            lora_rank=lora,
            lora_alpha=d.pick([None, 1.0, 4]),
            **_initializers(d, "kernel_initializer"),
            **_regularizers(d, "kernel_regularizer"),
            # Keras refuses LoRA with a kernel constraint: mostly avoid wasting the draw.
            kernel_constraint=None if lora and d.coin(0.8) else d.pick(CONSTRAINTS),
        )
        return kwargs, [image(d, rank, fmt, channels, high=8 if rank < 3 else 5)]

    return draw


def conv_transpose(rank: int) -> Callable[[Draw], tuple[dict[str, Any], list[Shape]]]:
    def draw(d: Draw) -> tuple[dict[str, Any], list[Shape]]:
        kwargs, fmt = _conv_common(d, rank)
        kwargs["padding"] = d.pick(["valid", "same"])
        strides = kwargs["strides"]
        largest = max(strides) if isinstance(strides, tuple) else strides
        kwargs.update(
            filters=d.int(1, 5),
            output_padding=None if largest == 1 or d.coin(0.5) else d.int(0, largest - 1),
            **_initializers(d, "kernel_initializer"),
            **_regularizers(d, "kernel_regularizer"),
            **_constraints(d, "kernel_constraint"),
        )
        return kwargs, [image(d, rank, fmt, low=3, high=7 if rank < 3 else 4)]

    return draw


def depthwise(rank: int) -> Callable[[Draw], tuple[dict[str, Any], list[Shape]]]:
    def draw(d: Draw) -> tuple[dict[str, Any], list[Shape]]:
        kwargs, fmt = _conv_common(d, rank)
        kwargs.update(
            depth_multiplier=d.int(1, 3),
            **_initializers(d, "depthwise_initializer"),
            **_regularizers(d, "depthwise_regularizer"),
            **_constraints(d, "depthwise_constraint"),
        )
        return kwargs, [image(d, rank, fmt)]

    return draw


def separable(rank: int) -> Callable[[Draw], tuple[dict[str, Any], list[Shape]]]:
    def draw(d: Draw) -> tuple[dict[str, Any], list[Shape]]:
        kwargs, fmt = _conv_common(d, rank)
        kwargs.update(
            filters=d.int(1, 6),
            depth_multiplier=d.int(1, 3),
            **_initializers(d, "depthwise_initializer", "pointwise_initializer"),
            **_regularizers(d, "depthwise_regularizer", "pointwise_regularizer"),
            **_constraints(d, "depthwise_constraint", "pointwise_constraint"),
        )
        return kwargs, [image(d, rank, fmt)]

    return draw


def dense(d: Draw) -> tuple[dict[str, Any], list[Shape]]:
    lora = d.pick([None, None, 1, 2, 4])
    kwargs = {
        "units": d.int(1, 8),
        "activation": d.pick(ACTIVATIONS),
        "use_bias": d.coin(0.7),
        **_initializers(d, "kernel_initializer", "bias_initializer"),
        **_regularizers(d, "kernel_regularizer", "bias_regularizer", "activity_regularizer"),
        "kernel_constraint": None if lora and d.coin(0.8) else d.pick(CONSTRAINTS),
        **_constraints(d, "bias_constraint"),
        "lora_rank": lora,
        "lora_alpha": d.pick([None, 2.0, 8]),
        "quantization_config": INT8_QUANTIZATION if d.coin(0.1) else None,
    }
    return kwargs, [feature_shape(d)]


def embedding(d: Draw) -> tuple[dict[str, Any], list[Shape]]:
    lora = d.pick([None, None, 1, 2])
    kwargs = {
        "input_dim": d.int(3, 20),
        "output_dim": d.int(1, 6),
        **_initializers(d, "embeddings_initializer"),
        **_regularizers(d, "embeddings_regularizer", "activity_regularizer"),
        "embeddings_constraint": None if lora and d.coin(0.8) else d.pick(CONSTRAINTS),
        "mask_zero": d.coin(0.3),
        # Keras refuses any other value from a config (it needs arrays), so null it is.
        "weights": None,
        "lora_rank": lora,
        "lora_alpha": d.pick([None, 2.0]),
        "quantization_config": INT8_QUANTIZATION if d.coin(0.1) else None,
        "input_length": d.pick([None, 4]),
    }
    return kwargs, [feature_shape(d, 2)]


def _affine(d: Draw) -> dict[str, Any]:
    return {
        "epsilon": d.pick([1e-3, 1e-5, 0.01]),
        "center": d.coin(0.7),
        "scale": d.coin(0.7),
        **_initializers(d, "beta_initializer", "gamma_initializer"),
        **_regularizers(d, "beta_regularizer", "gamma_regularizer"),
        **_constraints(d, "beta_constraint", "gamma_constraint"),
    }


def batch_norm(d: Draw) -> tuple[dict[str, Any], list[Shape]]:
    shape = feature_shape(d)
    renorm = d.coin(0.3)
    kwargs = {
        "axis": axis_of(d, len(shape)),
        "momentum": d.pick([0.99, 0.9]),
        **_affine(d),
        **_initializers(d, "moving_mean_initializer", "moving_variance_initializer"),
        "renorm": renorm,
        "renorm_clipping": (
            {"rmax": 3.0, "rmin": 0.3, "dmax": 2.0} if renorm and d.coin(0.5) else None
        ),
        "renorm_momentum": d.pick([0.99, 0.9]),
        "synchronized": d.coin(0.3),
    }
    return kwargs, [shape]


def layer_norm(d: Draw) -> tuple[dict[str, Any], list[Shape]]:
    shape = feature_shape(d)
    kwargs = {"axis": axes_of(d, len(shape)), **_affine(d), "rms_scaling": d.coin(0.3)}
    return kwargs, [shape]


def group_norm(d: Draw) -> tuple[dict[str, Any], list[Shape]]:
    groups = d.pick([1, 2, 3, -1])
    channels = (abs(groups) if groups > 0 else d.int(1, 3)) * d.int(1, 3)
    shape = (*feature_shape(d, 2), channels)
    axis = d.pick([-1, len(shape)])
    return {"groups": groups, "axis": axis, **_affine(d)}, [shape]


def rms_norm(d: Draw) -> tuple[dict[str, Any], list[Shape]]:
    shape = feature_shape(d)
    return {"axis": axes_of(d, len(shape)), "epsilon": d.pick([1e-6, 1e-3])}, [shape]


def unit_norm(d: Draw) -> tuple[dict[str, Any], list[Shape]]:
    shape = feature_shape(d)
    return {"axis": axes_of(d, len(shape))}, [shape]


def _same(own: Callable[[Draw, Shape], dict[str, Any]], max_rank: int = 3) -> Any:
    def draw(d: Draw) -> tuple[dict[str, Any], list[Shape]]:
        shape = feature_shape(d, max_rank)
        return own(d, shape), [shape]

    return draw


def _noise_shape(d: Draw, shape: Shape) -> Any:
    if d.coin(0.5):
        return None
    return [None, *(d.pick([1, s]) for s in shape)]


def prelu(d: Draw) -> tuple[dict[str, Any], list[Shape]]:
    shape = feature_shape(d)
    shared: Any = None
    if d.coin(0.6):
        axes = sorted(d.rng.sample(range(1, len(shape) + 1), d.int(1, len(shape))))
        shared = axes[0] if len(axes) == 1 and d.coin(0.5) else axes
    kwargs = {
        **_initializers(d, "alpha_initializer"),
        **_regularizers(d, "alpha_regularizer"),
        **_constraints(d, "alpha_constraint"),
        "shared_axes": shared,
    }
    return kwargs, [shape]


def spatial_dropout(rank: int) -> Callable[[Draw], tuple[dict[str, Any], list[Shape]]]:
    def draw(d: Draw) -> tuple[dict[str, Any], list[Shape]]:
        fmt = d.fmt() if rank > 1 else None
        kwargs: dict[str, Any] = {"rate": d.real(0.0, 0.6), "seed": d.seed()}
        if rank > 1:
            kwargs["data_format"] = fmt
        return kwargs, [image(d, rank, fmt, high=6)]

    return draw


def merge(exactly: int | None = None) -> Callable[[Draw], tuple[dict[str, Any], list[Shape]]]:
    def draw(d: Draw) -> tuple[dict[str, Any], list[Shape]]:
        shape = feature_shape(d)
        count = exactly or d.int(2, 3)
        shapes = [shape]
        for _ in range(count - 1):
            # Broadcasting: a 1 in place of a size, as Keras' _Merge allows.
            shapes.append(tuple(1 if d.coin(0.2) else s for s in shape))
        return {}, shapes

    return draw


def concatenate(d: Draw) -> tuple[dict[str, Any], list[Shape]]:
    shape = feature_shape(d)
    axis = axis_of(d, len(shape))
    index = axis % (len(shape) + 1) - 1
    shapes = []
    for _ in range(d.int(2, 3)):
        other = list(shape)
        other[index] = d.int(1, 5)
        shapes.append(tuple(other))
    return {"axis": axis}, shapes


def pooling(rank: int) -> Callable[[Draw], tuple[dict[str, Any], list[Shape]]]:
    def draw(d: Draw) -> tuple[dict[str, Any], list[Shape]]:
        fmt = d.fmt()
        kwargs = {
            "pool_size": d.ints(rank, 1, 3),
            "strides": d.pick([None, d.ints(rank, 1, 3)]),
            "padding": d.pick(["valid", "same"]),
            "data_format": fmt,
        }
        return kwargs, [image(d, rank, fmt, high=8 if rank < 3 else 5)]

    return draw


def global_pooling(rank: int) -> Callable[[Draw], tuple[dict[str, Any], list[Shape]]]:
    def draw(d: Draw) -> tuple[dict[str, Any], list[Shape]]:
        fmt = d.fmt()
        return {"data_format": fmt, "keepdims": d.coin(0.4)}, [image(d, rank, fmt, high=6)]

    return draw


# Image preprocessing: own arguments by class; `factor`, `bounding_box_format` and `data_format`
# come from their base class.


def _image_layer(
    own: Callable[[Draw], dict[str, Any]], *, takes_factor: bool = False
) -> Callable[[Draw], tuple[dict[str, Any], list[Shape]]]:
    def draw(d: Draw) -> tuple[dict[str, Any], list[Shape]]:
        fmt = d.fmt()
        kwargs = {
            "data_format": fmt,
            "bounding_box_format": d.pick([None, "xyxy", "rel_xyxy"]),
            **({} if takes_factor else {"factor": None}),
            **own(d),
        }
        return kwargs, [image(d, 2, fmt, channels=3, low=6, high=12)]

    return draw


def _factor(d: Draw, low: float = 0.0, high: float = 0.5) -> Any:
    value = d.real(low, high)
    return value if d.coin(0.6) else (round(value / 2, 3), value)


def _fill(d: Draw) -> dict[str, Any]:
    return {
        "fill_mode": d.pick(FILL_MODES),
        "interpolation": d.pick(INTERPOLATIONS),
        "fill_value": d.real(0.0, 1.0),
    }


IMAGE_LAYERS: dict[str, Callable[[Draw], tuple[dict[str, Any], list[Shape]]]] = {
    "AugMix": _image_layer(
        lambda d: {
            "value_range": d.pick(VALUE_RANGES),
            "num_chains": d.int(1, 3),
            "chain_depth": d.pick([1, 2, [1, 3]]),
            "factor": d.real(0.1, 0.5),
            "alpha": d.real(0.5, 1.5),
            "all_ops": d.coin(),
            "interpolation": d.pick(INTERPOLATIONS),
            "seed": d.seed(),
        },
        takes_factor=True,
    ),
    "AutoContrast": _image_layer(lambda d: {"value_range": d.pick(VALUE_RANGES)}),
    "RandAugment": _image_layer(
        lambda d: {
            "value_range": d.pick(VALUE_RANGES),
            "num_ops": d.int(1, 3),
            "factor": d.real(0.1, 0.9),
            "interpolation": d.pick(INTERPOLATIONS),
            "seed": d.seed(),
        },
        takes_factor=True,
    ),
    "RandomBrightness": _image_layer(
        lambda d: {"factor": _factor(d), "value_range": d.pick(VALUE_RANGES), "seed": d.seed()},
        takes_factor=True,
    ),
    "RandomColorDegeneration": _image_layer(
        lambda d: {"factor": _factor(d), "value_range": d.pick(VALUE_RANGES), "seed": d.seed()},
        takes_factor=True,
    ),
    "RandomColorJitter": _image_layer(
        lambda d: {
            "value_range": d.pick(VALUE_RANGES),
            "brightness_factor": d.pick([None, 0.2]),
            "contrast_factor": d.pick([None, 0.3]),
            "saturation_factor": d.pick([None, 0.4]),
            "hue_factor": d.pick([None, 0.1]),
            "seed": d.seed(),
        }
    ),
    "RandomContrast": _image_layer(
        lambda d: {"factor": _factor(d), "value_range": d.pick(VALUE_RANGES), "seed": d.seed()},
        takes_factor=True,
    ),
    "RandomElasticTransform": _image_layer(
        lambda d: {
            "factor": _factor(d, 0.1, 1.0),
            "scale": d.real(0.1, 1.0),
            "interpolation": d.pick(INTERPOLATIONS),
            "fill_mode": d.pick(["reflect", "constant", "nearest", "wrap", "mirror"]),
            "fill_value": d.real(0.0, 1.0),
            "value_range": d.pick(VALUE_RANGES),
            "seed": d.seed(),
        },
        takes_factor=True,
    ),
    "RandomErasing": _image_layer(
        lambda d: {
            "factor": _factor(d, 0.1, 1.0),
            "scale": d.pick([(0.02, 0.33), (0.1, 0.2)]),
            "fill_value": d.pick([None, 0.0, 0.5]),
            "value_range": d.pick(VALUE_RANGES),
            "seed": d.seed(),
        },
        takes_factor=True,
    ),
    "RandomFlip": _image_layer(
        lambda d: {
            "mode": d.pick(["horizontal", "vertical", "horizontal_and_vertical"]),
            "seed": d.seed(),
        }
    ),
    "RandomGaussianBlur": _image_layer(
        lambda d: {
            "factor": _factor(d, 0.1, 1.0),
            "kernel_size": d.pick([3, 5]),
            "sigma": d.real(0.1, 1.0),
            "value_range": d.pick(VALUE_RANGES),
            "seed": d.seed(),
        },
        takes_factor=True,
    ),
    "RandomGrayscale": _image_layer(
        lambda d: {"factor": d.real(0.0, 1.0), "seed": d.seed()}, takes_factor=True
    ),
    "RandomHue": _image_layer(
        lambda d: {"factor": _factor(d), "value_range": d.pick(VALUE_RANGES), "seed": d.seed()},
        takes_factor=True,
    ),
    "RandomInvert": _image_layer(
        lambda d: {
            "factor": _factor(d, 0.1, 1.0),
            "value_range": d.pick(VALUE_RANGES),
            "seed": d.seed(),
        },
        takes_factor=True,
    ),
    "RandomPerspective": _image_layer(
        lambda d: {
            "factor": _factor(d, 0.1, 1.0),
            "scale": d.real(0.1, 1.0),
            "interpolation": d.pick(INTERPOLATIONS),
            "fill_value": d.real(0.0, 1.0),
            "seed": d.seed(),
        },
        takes_factor=True,
    ),
    "RandomPosterization": _image_layer(
        lambda d: {
            "factor": d.pick([(1, 8), (2, 5), 4]),
            "value_range": d.pick(VALUE_RANGES),
            "seed": d.seed(),
        },
        takes_factor=True,
    ),
    "RandomRotation": _image_layer(
        lambda d: {"factor": _factor(d), **_fill(d), "seed": d.seed()}, takes_factor=True
    ),
    "RandomSaturation": _image_layer(
        lambda d: {"factor": _factor(d), "value_range": d.pick(VALUE_RANGES), "seed": d.seed()},
        takes_factor=True,
    ),
    "RandomSharpness": _image_layer(
        lambda d: {"factor": _factor(d), "value_range": d.pick(VALUE_RANGES), "seed": d.seed()},
        takes_factor=True,
    ),
    # A single number makes RandomShear write (-x, x), which Keras then cannot read back.
    "RandomShear": _image_layer(
        lambda d: {
            "x_factor": (0.0, d.real(0.0, 0.3)),
            "y_factor": (d.real(0.0, 0.1), 0.2),
            **_fill(d),
            "seed": d.seed(),
        }
    ),
    "RandomTranslation": _image_layer(
        lambda d: {
            "height_factor": _factor(d, 0.0, 0.3),
            "width_factor": _factor(d, 0.0, 0.3),
            **_fill(d),
            "seed": d.seed(),
        }
    ),
    "RandomZoom": _image_layer(
        lambda d: {
            "height_factor": _factor(d, -0.3, 0.3),
            "width_factor": d.pick([None, _factor(d, -0.3, 0.3)]),
            **_fill(d),
            "seed": d.seed(),
        }
    ),
    "Solarization": _image_layer(
        lambda d: {
            "addition_factor": _factor(d, 0.0, 0.5),
            "threshold_factor": _factor(d, 0.0, 0.5),
            "value_range": d.pick(VALUE_RANGES),
            "seed": d.seed(),
        }
    ),
    "Resizing": _image_layer(
        lambda d: {
            "height": d.int(3, 10),
            "width": d.int(3, 10),
            "interpolation": d.pick(["bilinear", "nearest", "bicubic", "area", "lanczos3"]),
            **d.pick(
                [
                    {"crop_to_aspect_ratio": False, "pad_to_aspect_ratio": False},
                    {"crop_to_aspect_ratio": True, "pad_to_aspect_ratio": False},
                    {"crop_to_aspect_ratio": False, "pad_to_aspect_ratio": True},
                ]
            ),
            "fill_mode": "constant",
            "fill_value": d.real(0.0, 1.0),
            "antialias": d.coin(0.3),
        }
    ),
    "CenterCrop": _image_layer(lambda d: {"height": d.int(2, 8), "width": d.int(2, 8)}),
    "RandomCrop": _image_layer(
        lambda d: {"height": d.int(2, 6), "width": d.int(2, 6), "seed": d.seed()}
    ),
}


def rescaling(d: Draw) -> tuple[dict[str, Any], list[Shape]]:
    return {"scale": d.pick([1 / 255, 2.0, 0.5]), "offset": d.cycle([0.0, -1.0])}, [
        feature_shape(d)
    ]


def normalization(d: Draw) -> tuple[dict[str, Any], list[Shape]]:
    shape = feature_shape(d)
    axis: Any = d.pick([-1, None, axis_of(d, len(shape)), "several"])
    if axis == "several":
        axis = tuple(sorted(d.rng.sample(range(1, len(shape) + 1), d.int(1, len(shape)))))
    given = d.coin(0.4)
    kwargs = {
        "axis": axis,
        "mean": d.real(-1.0, 1.0) if given else None,
        "variance": d.real(0.5, 2.0) if given else None,
        "invert": d.coin(0.3),
    }
    return kwargs, [shape]


def _reshape(d: Draw) -> tuple[dict[str, Any], list[Shape]]:
    shape = feature_shape(d)
    total = 1
    for s in shape:
        total *= s
    factors = []
    rest = total
    for f in (2, 3, 2, 5):
        if rest % f == 0 and d.coin(0.6):
            factors.append(f)
            rest //= f
    target = [*factors, rest]
    d.rng.shuffle(target)
    if d.coin(0.4):
        target[d.int(0, len(target) - 1)] = -1
    return {"target_shape": tuple(target)}, [shape]


def _permute(d: Draw) -> tuple[dict[str, Any], list[Shape]]:
    shape = feature_shape(d)
    dims = list(range(1, len(shape) + 1))
    d.rng.shuffle(dims)
    return {"dims": tuple(dims)}, [shape]


def _pad(d: Draw, rank: int, crop: bool) -> Any:
    high = 1 if crop else 2
    form = d.pick(["int", "ints", "pairs"])
    if form == "int":
        return d.int(0, high)
    if form == "ints" and rank > 1:
        return tuple(d.int(0, high) for _ in range(rank))
    if rank == 1:
        return (d.int(0, high), d.int(0, high))
    return tuple((d.int(0, high), d.int(0, high)) for _ in range(rank))


def pad_crop(rank: int, crop: bool) -> Callable[[Draw], tuple[dict[str, Any], list[Shape]]]:
    key = "cropping" if crop else "padding"

    def draw(d: Draw) -> tuple[dict[str, Any], list[Shape]]:
        has_format = not (crop and rank == 1)
        fmt = d.fmt() if has_format else None
        kwargs: dict[str, Any] = {key: _pad(d, rank, crop)}
        if has_format:
            kwargs["data_format"] = fmt
        return kwargs, [image(d, rank, fmt, low=4, high=7 if rank < 3 else 5)]

    return draw


def upsampling(rank: int) -> Callable[[Draw], tuple[dict[str, Any], list[Shape]]]:
    def draw(d: Draw) -> tuple[dict[str, Any], list[Shape]]:
        fmt = d.fmt() if rank > 1 else None
        kwargs: dict[str, Any] = {"size": d.int(1, 3) if rank == 1 else d.ints(rank, 1, 3)}
        if rank > 1:
            kwargs["data_format"] = fmt
        if rank == 2:
            kwargs["interpolation"] = d.pick(["nearest", "bilinear", "bicubic"])
        return kwargs, [image(d, rank, fmt, low=2, high=5 if rank < 3 else 3)]

    return draw


FAMILIES: dict[str, Callable[[Draw], tuple[dict[str, Any], list[Shape]]]] = {
    **{f"Conv{r}D": conv(r) for r in (1, 2, 3)},
    **{f"Conv{r}DTranspose": conv_transpose(r) for r in (1, 2, 3)},
    **{f"DepthwiseConv{r}D": depthwise(r) for r in (1, 2)},
    **{f"SeparableConv{r}D": separable(r) for r in (1, 2)},
    "Dense": dense,
    "Embedding": embedding,
    "BatchNormalization": batch_norm,
    "LayerNormalization": layer_norm,
    "GroupNormalization": group_norm,
    "RMSNormalization": rms_norm,
    "UnitNormalization": unit_norm,
    "Activation": _same(lambda d, s: {"activation": d.pick(ACTIVATIONS[1:])}),
    "ReLU": _same(
        lambda d, s: {
            "max_value": d.pick([None, 6.0, 1.5]),
            "negative_slope": d.pick([0.0, 0.1]),
            "threshold": d.pick([0.0, 0.5]),
        }
    ),
    # `alpha` is LeakyReLU's deprecated name of `negative_slope`; Keras reads it from a config.
    "LeakyReLU": _same(
        lambda d, s: {"negative_slope": d.real(0.0, 0.5), "alpha": d.pick([0.2, 0.3])}
    ),
    "ELU": _same(lambda d, s: {"alpha": d.real(0.5, 2.0)}),
    "Softmax": _same(lambda d, s: {"axis": axes_of(d, len(s))}),
    "Dropout": _same(
        lambda d, s: {"rate": d.real(0.0, 0.6), "noise_shape": _noise_shape(d, s), "seed": d.seed()}
    ),
    "GaussianDropout": _same(lambda d, s: {"rate": d.real(0.0, 0.6), "seed": d.seed()}),
    "GaussianNoise": _same(lambda d, s: {"stddev": d.real(0.0, 1.0), "seed": d.seed()}),
    "AlphaDropout": _same(
        lambda d, s: {"rate": d.real(0.0, 0.6), "noise_shape": _noise_shape(d, s), "seed": d.seed()}
    ),
    "ActivityRegularization": _same(lambda d, s: {"l1": d.real(0, 0.1), "l2": d.real(0, 0.1)}),
    "Identity": _same(lambda d, s: {}),
    "Masking": _same(lambda d, s: {"mask_value": d.pick([0.0, -1.0])}),
    "PReLU": prelu,
    **{f"SpatialDropout{r}D": spatial_dropout(r) for r in (1, 2, 3)},
    **{name: merge() for name in ("Add", "Multiply", "Average", "Maximum", "Minimum")},
    "Subtract": merge(exactly=2),
    "Concatenate": concatenate,
    **{f"{k}Pooling{r}D": pooling(r) for k in ("Max", "Average") for r in (1, 2, 3)},
    **{f"Global{k}Pooling{r}D": global_pooling(r) for k in ("Max", "Average") for r in (1, 2, 3)},
    **IMAGE_LAYERS,
    "Rescaling": rescaling,
    "Normalization": normalization,
    "Flatten": _same(lambda d, s: {"data_format": d.fmt()}),
    "Reshape": _reshape,
    "Permute": _permute,
    "RepeatVector": lambda d: ({"n": d.int(1, 4)}, [(d.int(1, 6),)]),
    **{f"ZeroPadding{r}D": pad_crop(r, crop=False) for r in (1, 2, 3)},
    **{f"Cropping{r}D": pad_crop(r, crop=True) for r in (1, 2, 3)},
    **{f"UpSampling{r}D": upsampling(r) for r in (1, 2, 3)},
}


def base_arguments(
    d: Draw, accepted: frozenset[str], name: str, input_shapes: list[Shape]
) -> dict[str, Any]:
    """Arguments every Keras layer takes (those the class accepts): name, trainable, dtype, ...

    ``input_shape`` and ``input_dim`` declare a Sequential model's input; in these Functional
    models Keras ignores them, and so must the analysis.
    """
    turn = d.index // 2  # values rotate across the draws that include an argument
    candidates: dict[str, Any] = {
        "name": name,
        "trainable": d.cycle([True, False], salt=turn),
        "dtype": QUANTIZED_DTYPE if d.coin(0.03) else d.cycle(FLOAT_DTYPES, salt=turn),
        "autocast": d.cycle([False, True], salt=turn),
        "activity_regularizer": d.cycle(["l2", None, "l1"], salt=turn),
        "input_shape": input_shapes[0],
        "input_dim": input_shapes[0][-1],
    }
    # Keras reads `input_shape` only when `input_dim` is unset (and refuses it otherwise).
    del candidates[d.cycle(["input_shape", "input_dim"], salt=d.index // 2)]
    out = {}
    for position, (key, value) in enumerate(candidates.items()):
        # `name` always; each other one in every other draw, to exercise the defaults too.
        if key in accepted and (key == "name" or d.cycle([True, False], salt=position)):
            out[key] = value
    return out


def draw_case(
    class_name: str, rng: random.Random, index: int, name: str, accepted: frozenset[str]
) -> Case:
    """One random layer of `class_name` named `name`.

    Args:
        class_name: a supported Keras layer class.
        rng: the seeded generator.
        index: which draw of this class it is (0, 1, ...).
        name: the layer's name.
        accepted: the config keys the class accepts, to pick which base arguments to pass.
    """
    d = Draw(rng, index)
    own, input_shapes = FAMILIES[class_name](d)
    kwargs = {**base_arguments(d, accepted, name, input_shapes), **own}
    dtype = "int32" if class_name == "Embedding" else "float32"
    return Case(class_name, kwargs, input_shapes, dtype, index)
