"""Normalization layers: Batch-, Layer-, Group-, RMS- and UnitNormalization.

BatchNormalization's moving statistics are never trained; Keras reports them as non-trainable
weights, and so does this module.

Arguments that change the weights: ``axis`` (the normalized axes), ``center`` (beta), ``scale``
(gamma), BatchNormalization's ``renorm`` (three more statistics) and LayerNormalization's
deprecated ``rms_scaling`` (gamma, never beta). ``epsilon``, ``momentum``, ``renorm_clipping``,
``renorm_momentum``, ``synchronized``, ``groups`` (beyond its validity), initializers,
regularizers and constraints change values, never the weights.
"""

from __future__ import annotations

from collections.abc import Sequence

from grader.graph import Shape
from grader.layers.base import (
    BUILTIN,
    IMAGE_PRESERVING,
    NO_FAMILY,
    NO_ZERO_RULE,
    Config,
    LayerSpec,
    SpecError,
    WeightSpec,
    arguments,
    dim_of,
    flag,
    normalize_axes,
    scaled_by,
    single_input,
)
from grader.rf.readers import AXIS_NORMALIZATION, GROUP_NORMALIZATION, INFERENCE_IDENTITY

_AFFINE = (
    "epsilon",
    "center",
    "scale",
    "beta_initializer",
    "gamma_initializer",
    "beta_regularizer",
    "gamma_regularizer",
    "beta_constraint",
    "gamma_constraint",
)
BATCH_NORM_ARGUMENTS = arguments(
    "axis",
    "momentum",
    *_AFFINE,
    "moving_mean_initializer",
    "moving_variance_initializer",
    "renorm",
    "renorm_clipping",
    "renorm_momentum",
    "synchronized",
)
LAYER_NORM_ARGUMENTS = arguments("axis", *_AFFINE, "rms_scaling")
GROUP_NORM_ARGUMENTS = arguments("groups", "axis", *_AFFINE)
RMS_NORM_ARGUMENTS = arguments("axis", "epsilon")
UNIT_NORM_ARGUMENTS = arguments("axis")


def _same_shape(config: Config, input_shapes: Sequence[Shape]) -> Shape:
    return single_input(input_shapes)


def _batch_norm_weights(config: Config, input_shapes: Sequence[Shape]) -> list[WeightSpec]:
    shape = single_input(input_shapes)
    axis = config.get("axis", -1)
    if type(axis) is not int:
        # Keras reads `int(axis)`: one axis only.
        raise SpecError(f"Expected `axis` to be an int. Received {axis!r}.")
    (normalized,) = normalize_axes(axis, len(shape))
    size = dim_of(shape, normalized, "normalized axis")
    weights = []
    if flag(config, "scale", True):
        weights.append(WeightSpec("gamma", (size,)))
    if flag(config, "center", True):
        weights.append(WeightSpec("beta", (size,)))
    weights += [
        WeightSpec("moving_mean", (size,), trainable=False),
        WeightSpec("moving_variance", (size,), trainable=False),
    ]
    if flag(config, "renorm", False):
        # Batch renormalization tracks three more statistics, never trained.
        weights += [
            WeightSpec(stat, (size,), trainable=False)
            for stat in ("moving_stddev", "renorm_mean", "renorm_stddev")
        ]
    return weights


def _layer_norm_weights(config: Config, input_shapes: Sequence[Shape]) -> list[WeightSpec]:
    shape = single_input(input_shapes)
    axes = normalize_axes(config.get("axis", -1), len(shape))
    param_shape = tuple(dim_of(shape, a, "normalized axis") for a in axes)
    rms_scaling = flag(config, "rms_scaling", False)
    weights = []
    # Keras: RMS scaling always has a scale and never a center.
    if flag(config, "scale", True) or rms_scaling:
        weights.append(WeightSpec("gamma", param_shape))
    if flag(config, "center", True) and not rms_scaling:
        weights.append(WeightSpec("beta", param_shape))
    return weights


def _rms_norm_weights(config: Config, input_shapes: Sequence[Shape]) -> list[WeightSpec]:
    shape = single_input(input_shapes)
    axes = normalize_axes(config.get("axis", -1), len(shape))
    return [WeightSpec("scale", tuple(dim_of(shape, a, "normalized axis") for a in axes))]


def _group_norm_weights(config: Config, input_shapes: Sequence[Shape]) -> list[WeightSpec]:
    shape = single_input(input_shapes)
    axes = normalize_axes(config.get("axis", -1), len(shape))
    channels = dim_of(shape, axes[0], "normalized axis")
    groups = config.get("groups", 32)
    if type(groups) is not int or groups == 0 or groups < -1:
        raise SpecError(f"Expected `groups` to be a positive int or -1. Received {groups!r}.")
    groups = channels if groups == -1 else groups
    if groups > channels or channels % groups:
        raise SpecError(
            f"The number of channels ({channels}) must be a multiple of, and at least, `groups` "
            f"({groups})."
        )
    weights = []
    if flag(config, "scale", True):
        weights.append(WeightSpec("gamma", (channels,)))
    if flag(config, "center", True):
        weights.append(WeightSpec("beta", (channels,)))
    return weights


SPECS = [
    # At inference batch normalization is a per-channel ``x * a + b``: it keeps the image.
    LayerSpec(
        "BatchNormalization",
        _same_shape,
        _batch_norm_weights,
        arguments=BATCH_NORM_ARGUMENTS,
        geometry=INFERENCE_IDENTITY,
        families=frozenset({IMAGE_PRESERVING}),
        safety=BUILTIN,
        zeros=scaled_by("gamma"),
        call_takes_mask=True,
    ),
    LayerSpec(
        "LayerNormalization",
        _same_shape,
        _layer_norm_weights,
        arguments=LAYER_NORM_ARGUMENTS,
        geometry=AXIS_NORMALIZATION,
        families=frozenset({IMAGE_PRESERVING}),
        safety=BUILTIN,
        zeros=scaled_by("gamma"),
    ),
    LayerSpec(
        "GroupNormalization",
        _same_shape,
        _group_norm_weights,
        arguments=GROUP_NORM_ARGUMENTS,
        geometry=GROUP_NORMALIZATION,
        families=NO_FAMILY,
        safety=BUILTIN,
        zeros=scaled_by("gamma"),
    ),
    LayerSpec(
        "RMSNormalization",
        _same_shape,
        _rms_norm_weights,
        arguments=RMS_NORM_ARGUMENTS,
        geometry=AXIS_NORMALIZATION,
        families=NO_FAMILY,
        safety=BUILTIN,
        # Its scale takes no initializer or constraint argument: nothing can zero it.
        zeros=NO_ZERO_RULE,
    ),
    LayerSpec(
        "UnitNormalization",
        _same_shape,
        arguments=UNIT_NORM_ARGUMENTS,
        geometry=AXIS_NORMALIZATION,
        families=NO_FAMILY,
        safety=BUILTIN,
        zeros=NO_ZERO_RULE,
    ),
]
