"""Families of Keras layer classes the rules and hints talk about, and config accessors.

Class names are Keras 3's canonical ones as they appear in saved configs (aliases such as
``GlobalAvgPool2D`` are serialized under their canonical name).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PLAIN_CONVS = frozenset(
    {"Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"}
)
SEPARABLE_CONVS = frozenset({"SeparableConv1D", "SeparableConv2D"})
DEPTHWISE_CONVS = frozenset({"DepthwiseConv1D", "DepthwiseConv2D"})
CONVS = PLAIN_CONVS | SEPARABLE_CONVS | DEPTHWISE_CONVS

# Layers whose `rate` is a dropout probability.
DROPOUTS = frozenset(
    {
        "Dropout",
        "SpatialDropout1D",
        "SpatialDropout2D",
        "SpatialDropout3D",
        "GaussianDropout",
        "AlphaDropout",
    }
)
# Config keys of other layers (recurrent, attention) that are dropout probabilities too.
DROPOUT_KEYS = ("dropout", "recurrent_dropout", "attention_dropout")

GLOBAL_AVERAGE_POOLING = frozenset(
    {"GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D"}
)
GLOBAL_MAX_POOLING = frozenset({"GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D"})

# Layers after which a tensor is still "the image" for the first-convolution exemption: each one
# maps every position on its own (a scale, a shift, a per-channel affine map such as batch
# normalization at inference, noise, an activation) or only moves, pads, crops or resamples
# positions without learned weights (preprocessing, augmentation). None filters the image with
# learned weights or merges it with another tensor, so the convolution after them is the one
# that reads the image. Batch normalization belongs here: at inference it is a per-channel
# ``x * a + b`` like `Normalization`, learnt instead of adapted.
IMAGE_PRESERVING = (
    frozenset(
        {
            "Rescaling",
            "Normalization",
            "BatchNormalization",
            "LayerNormalization",
            "Identity",
            "ActivityRegularization",
            "Activation",
            "ReLU",
            "LeakyReLU",
            "ELU",
            "PReLU",
            "GaussianNoise",
            "ZeroPadding1D",
            "ZeroPadding2D",
            "ZeroPadding3D",
            "Cropping1D",
            "Cropping2D",
            "Cropping3D",
            "Resizing",
            "CenterCrop",
            "AugMix",
            "AutoContrast",
            "RandAugment",
            "Solarization",
            "RandomBrightness",
            "RandomColorDegeneration",
            "RandomColorJitter",
            "RandomContrast",
            "RandomCrop",
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
        }
    )
    | DROPOUTS
)

_RANK = {"1D": 1, "2D": 2, "3D": 3}


def spatial_rank(class_name: str) -> int:
    """1, 2 or 3 from the class name's suffix (``Conv2D`` -> 2); 2 when there is none."""
    for suffix, rank in _RANK.items():
        if class_name.endswith(suffix) or class_name.endswith(suffix + "Transpose"):
            return rank
    return 2


def as_tuple(value: Any, rank: int) -> tuple[int, ...]:
    """A Keras int-or-tuple argument (``kernel_size=3`` or ``[3, 3]``) as a tuple of ints."""
    if isinstance(value, int | float):
        return (int(value),) * rank
    return tuple(int(v) for v in value)


def kernel_size(class_name: str, config: Mapping[str, Any]) -> tuple[int, ...]:
    """The kernel size of a conv layer, e.g. ``(3, 3)``."""
    rank = spatial_rank(class_name)
    return as_tuple(config.get("kernel_size", 1), rank)


def dilation_rate(class_name: str, config: Mapping[str, Any]) -> tuple[int, ...]:
    """The dilation rate of a conv layer, e.g. ``(2, 2)``; ones when not set."""
    rank = spatial_rank(class_name)
    return as_tuple(config.get("dilation_rate", 1), rank)


def format_kernel(kernel: tuple[int, ...]) -> str:
    """``(3, 3)`` -> ``"3x3"``."""
    return "x".join(str(k) for k in kernel)


def dropout_rates(class_name: str, config: Mapping[str, Any]) -> list[tuple[str, float]]:
    """Every dropout probability a layer applies, as ``(what, rate)`` pairs.

    ``what`` is ``"rate"`` for dropout layers, else the config key (``"recurrent_dropout"``).
    """
    rates: list[tuple[str, float]] = []
    if class_name in DROPOUTS and isinstance(config.get("rate"), int | float):
        rates.append(("rate", float(config["rate"])))
    for key in DROPOUT_KEYS:
        value = config.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            rates.append((key, float(value)))
    return rates
