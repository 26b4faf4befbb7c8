"""Preprocessing and augmentation layers: Rescaling, Normalization, Resizing, crops, Random*.

Augmentation layers keep their input shape (they are the identity at inference); only
Normalization has weights, all of them statistics that Keras never trains (``mean``,
``variance``, ``count``), and none when the mean and variance are given in its config.
"""

from __future__ import annotations

from collections.abc import Sequence

from grader.graph import Shape
from grader.layers.base import (
    Config,
    LayerSpec,
    SpecError,
    WeightSpec,
    data_format,
    dim_of,
    join_channels,
    normalize_axes,
    single_input,
    split_channels,
)

# Augmentations whose output shape is their input shape. (Equalization is left out: Keras 3.15
# cannot put it in a functional model, so no Keras truth exists to check it against.)
SHAPE_PRESERVING = (
    "AugMix",
    "AutoContrast",
    "RandAugment",
    "RandomBrightness",
    "RandomColorDegeneration",
    "RandomColorJitter",
    "RandomContrast",
    "RandomElasticTransform",
    "RandomErasing",
    "RandomFlip",
    "RandomGaussianBlur",
    "RandomGrayscale",
    "RandomHue",
    "RandomInvert",
    "RandomPerspective",
    "RandomPosterization",
    "RandomRotation",
    "RandomSaturation",
    "RandomSharpness",
    "RandomShear",
    "RandomTranslation",
    "RandomZoom",
    "Rescaling",
    "Solarization",
)


def _same_shape(config: Config, input_shapes: Sequence[Shape]) -> Shape:
    return single_input(input_shapes)


def _resize_like(config: Config, input_shapes: Sequence[Shape]) -> Shape:
    """Resizing, CenterCrop, RandomCrop: the image becomes ``height`` x ``width``."""
    shape = single_input(input_shapes)
    if len(shape) not in (3, 4):
        raise SpecError(
            f"Expected an image batch of rank 4 (or a batch of rank 5 sequences). Received rank "
            f"{len(shape) + 1}."
        )
    height, width = config.get("height"), config.get("width")
    if not all(isinstance(v, int) and v > 0 for v in (height, width)):
        raise SpecError(
            f"Expected positive ints `height` and `width`. Received {height!r}, {width!r}."
        )
    fmt = data_format(config)
    spatial, channels = split_channels(shape, fmt)
    return join_channels((*spatial[:-2], height, width), channels, fmt)


def _normalization_weights(config: Config, input_shapes: Sequence[Shape]) -> list[WeightSpec]:
    # Given mean and variance are constants, not variables (Keras creates no weights then).
    if config.get("mean") is not None and config.get("variance") is not None:
        return []
    shape = single_input(input_shapes)
    axis = config.get("axis", -1)
    axes = () if axis is None else normalize_axes(axis, len(shape))
    stats_shape = tuple(dim_of(shape, a, "normalized axis") for a in axes)
    return [
        WeightSpec("mean", stats_shape, trainable=False),
        WeightSpec("variance", stats_shape, trainable=False),
        WeightSpec("count", (), trainable=False),
    ]


SPECS = [
    *(LayerSpec(name, _same_shape) for name in SHAPE_PRESERVING),
    LayerSpec("Normalization", _same_shape, _normalization_weights),
    LayerSpec("Resizing", _resize_like),
    LayerSpec("CenterCrop", _resize_like),
    LayerSpec("RandomCrop", _resize_like),
]
