"""Families of Keras layer classes the rules and hints talk about, and config accessors.

The families are built from the layer records (`grader.layers`, each spec's ``families``): a
new layer class joins a family in its own record, not here. Class names are Keras 3's canonical
ones as they appear in saved configs (aliases such as ``GlobalAvgPool2D`` are serialized under
their canonical name).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from grader.layers import REGISTRY
from grader.layers import base as families


def classes_in(family: str) -> frozenset[str]:
    """The supported classes whose record (`grader.layers`) lists `family`."""
    return frozenset(
        name for name, spec in REGISTRY.items() if spec.families and family in spec.families
    )


PLAIN_CONVS = classes_in(families.PLAIN_CONV)  # ConvND and ConvNDTranspose
SEPARABLE_CONVS = classes_in(families.SEPARABLE_CONV)
DEPTHWISE_CONVS = classes_in(families.DEPTHWISE_CONV)
CONVS = PLAIN_CONVS | SEPARABLE_CONVS | DEPTHWISE_CONVS

# Layers whose `rate` is a dropout probability.
DROPOUTS = classes_in(families.DROPOUT)
# Config keys of other layers (recurrent, attention) that are dropout probabilities too.
DROPOUT_KEYS = ("dropout", "recurrent_dropout", "attention_dropout")

GLOBAL_AVERAGE_POOLING = classes_in(families.GLOBAL_AVERAGE_POOLING)
GLOBAL_MAX_POOLING = classes_in(families.GLOBAL_MAX_POOLING)

# Layers after which a tensor is still "the image" for the first-convolution exemption: each one
# maps every position on its own (a scale, a shift, a per-channel affine map such as batch
# normalization at inference, noise, an activation) or only moves, pads, crops or resamples
# positions without learned weights (preprocessing, augmentation). None filters the image with
# learned weights or merges it with another tensor, so the convolution after them is the one
# that reads the image. Batch normalization belongs here: at inference it is a per-channel
# ``x * a + b`` like `Normalization`, learnt instead of adapted. Dropouts belong here too.
IMAGE_PRESERVING = classes_in(families.IMAGE_PRESERVING)

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
