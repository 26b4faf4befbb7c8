"""Preprocessing and augmentation layers: Rescaling, Normalization, Resizing, crops, Random*.

Augmentation layers keep their input shape (they are the identity at inference); only
Normalization has weights, all of them statistics that Keras never trains (``mean``,
``variance``, ``count``), and none when the mean and variance are given in its config. Its
``axis`` sets their shape; no other argument of these classes creates a weight.
"""

from __future__ import annotations

from collections.abc import Sequence

from grader.graph import Shape
from grader.layers.base import (
    BUILTIN,
    IMAGE_PRESERVING,
    NO_ZERO_RULE,
    Config,
    LayerSpec,
    Safety,
    SpecError,
    WeightSpec,
    arguments,
    data_format,
    dim_of,
    join_channels,
    normalize_axes,
    single_input,
    split_channels,
)
from grader.rf.readers import (
    AUTO_CONTRAST,
    CENTER_CROP,
    ELEMENTWISE,
    INFERENCE_IDENTITY,
    RANDOM_CROP,
    RESIZING,
)

# Image preprocessing layers (BaseImagePreprocessingLayer) also accept these through **kwargs.
_IMAGE = ("factor", "bounding_box_format", "data_format")


def _image(*own: str) -> frozenset[str]:
    return arguments(*_IMAGE, *own)


# Augmentations whose output shape is their input shape, with their arguments: each is the
# identity at inference (Keras returns its input unchanged with training=False). (Equalization
# is left out: Keras 3.15 cannot put it in a functional model, so no Keras truth exists to check
# it against.)
AUGMENTATIONS: dict[str, frozenset[str]] = {
    "AugMix": _image(
        "value_range", "num_chains", "chain_depth", "alpha", "all_ops", "interpolation", "seed"
    ),
    "RandAugment": _image("value_range", "num_ops", "interpolation", "seed"),
    "RandomBrightness": _image("value_range", "seed"),
    "RandomColorDegeneration": _image("value_range", "seed"),
    "RandomColorJitter": _image(
        "value_range",
        "brightness_factor",
        "contrast_factor",
        "saturation_factor",
        "hue_factor",
        "seed",
    ),
    "RandomContrast": _image("value_range", "seed"),
    "RandomElasticTransform": _image(
        "scale", "interpolation", "fill_mode", "fill_value", "value_range", "seed"
    ),
    "RandomErasing": _image("scale", "fill_value", "value_range", "seed"),
    "RandomFlip": _image("mode", "seed"),
    "RandomGaussianBlur": _image("kernel_size", "sigma", "value_range", "seed"),
    "RandomGrayscale": _image("seed"),
    "RandomHue": _image("value_range", "seed"),
    "RandomInvert": _image("value_range", "seed"),
    "RandomPerspective": _image("scale", "interpolation", "fill_value", "seed"),
    "RandomPosterization": _image("value_range", "seed"),
    "RandomRotation": _image("fill_mode", "interpolation", "seed", "fill_value"),
    "RandomSaturation": _image("value_range", "seed"),
    "RandomSharpness": _image("value_range", "seed"),
    "RandomShear": _image(
        "x_factor", "y_factor", "interpolation", "fill_mode", "fill_value", "seed"
    ),
    "RandomTranslation": _image(
        "height_factor", "width_factor", "fill_mode", "interpolation", "seed", "fill_value"
    ),
    "RandomZoom": _image(
        "height_factor", "width_factor", "fill_mode", "interpolation", "seed", "fill_value"
    ),
    "Solarization": _image("addition_factor", "threshold_factor", "value_range", "seed"),
}


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


_KEEPS_IMAGE = frozenset({IMAGE_PRESERVING})

SPECS = [
    *(
        LayerSpec(
            name,
            _same_shape,
            arguments=own,
            geometry=INFERENCE_IDENTITY,
            families=_KEEPS_IMAGE,
            safety=BUILTIN,
            zeros=NO_ZERO_RULE,
        )
        for name, own in AUGMENTATIONS.items()
    ),
    LayerSpec(
        "AutoContrast",
        _same_shape,
        arguments=_image("value_range"),
        geometry=AUTO_CONTRAST,
        families=_KEEPS_IMAGE,
        safety=BUILTIN,
        zeros=NO_ZERO_RULE,
    ),
    LayerSpec(
        "Rescaling",
        _same_shape,
        arguments=arguments("scale", "offset"),  # a DataLayer: no image-layer arguments
        geometry=ELEMENTWISE,
        families=_KEEPS_IMAGE,
        safety=Safety(array_arguments=("scale", "offset")),
        zeros=NO_ZERO_RULE,
    ),
    LayerSpec(
        "Normalization",
        _same_shape,
        _normalization_weights,
        arguments=arguments("axis", "mean", "variance", "invert"),
        geometry=ELEMENTWISE,
        families=_KEEPS_IMAGE,
        safety=BUILTIN,
        zeros=NO_ZERO_RULE,
    ),
    LayerSpec(
        "Resizing",
        _resize_like,
        arguments=_image(
            "height",
            "width",
            "interpolation",
            "crop_to_aspect_ratio",
            "pad_to_aspect_ratio",
            "fill_mode",
            "fill_value",
            "antialias",
        ),
        geometry=RESIZING,
        families=_KEEPS_IMAGE,
        safety=BUILTIN,
        zeros=NO_ZERO_RULE,
    ),
    LayerSpec(
        "CenterCrop",
        _resize_like,
        arguments=_image("height", "width"),
        geometry=CENTER_CROP,
        families=_KEEPS_IMAGE,
        safety=BUILTIN,
        zeros=NO_ZERO_RULE,
    ),
    LayerSpec(
        "RandomCrop",
        _resize_like,
        arguments=_image("height", "width", "seed"),
        geometry=RANDOM_CROP,
        families=_KEEPS_IMAGE,
        safety=BUILTIN,
        zeros=NO_ZERO_RULE,
    ),
]
