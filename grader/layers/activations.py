"""Shape-preserving layers: activations, dropout, noise, regularization and identity.

Only PReLU has weights: one ``alpha`` per input position, shared along ``shared_axes`` (its
initializer, regularizer and constraint change values only). No other argument of these classes
creates a weight.
"""

from __future__ import annotations

from collections.abc import Sequence

from grader.graph import Shape
from grader.layers.base import (
    BUILTIN,
    DROPOUT,
    IMAGE_PRESERVING,
    NO_FAMILY,
    NO_ZERO_RULE,
    PRESERVES_ZERO,
    Config,
    LayerSpec,
    Safety,
    SpecError,
    WeightSpec,
    Zeros,
    arguments,
    require_known,
    require_rank,
    single_input,
)
from grader.rf.effects import Geometry
from grader.rf.readers import AXIS_NORMALIZATION, ELEMENTWISE, INFERENCE_IDENTITY, MASKING


def _same_shape(config: Config, input_shapes: Sequence[Shape]) -> Shape:
    return single_input(input_shapes)


def _prelu_weights(config: Config, input_shapes: Sequence[Shape]) -> list[WeightSpec]:
    shape = list(single_input(input_shapes))
    shared = config.get("shared_axes") or []
    shared = [shared] if isinstance(shared, int) else list(shared)
    for axis in shared:
        if not isinstance(axis, int) or not 1 <= axis <= len(shape):
            raise SpecError(
                f"Expected `shared_axes` in [1, {len(shape)}] (1 is the first axis after the "
                f"batch axis). Received {config.get('shared_axes')!r}."
            )
        shape[axis - 1] = 1
    alpha = tuple(require_known(d, "size of a non-shared axis") for d in shape)
    return [WeightSpec("alpha", alpha)]


def _spatial_dropout(class_name: str, rank: int) -> LayerSpec:
    def output_shape(config: Config, input_shapes: Sequence[Shape]) -> Shape:
        shape = single_input(input_shapes)
        require_rank(shape, rank + 1)
        return shape

    # SpatialDropoutND has no **kwargs: `trainable`, `input_shape` ... make Keras refuse it.
    own = ("rate", "seed", "name", "dtype", *(("data_format",) if rank > 1 else ()))
    return LayerSpec(
        class_name,
        output_shape,
        arguments=frozenset(own),
        geometry=INFERENCE_IDENTITY,
        families=frozenset({DROPOUT, IMAGE_PRESERVING}),
        safety=BUILTIN,
        zeros=PRESERVES_ZERO,
    )


def _same(
    class_name: str,
    own: frozenset[str],
    geometry: Geometry,
    families: frozenset[str],
    safety: Safety = BUILTIN,
    *,
    zeros: Zeros,
    call_takes_mask: bool = False,
) -> LayerSpec:
    return LayerSpec(
        class_name,
        _same_shape,
        arguments=own,
        geometry=geometry,
        families=families,
        safety=safety,
        zeros=zeros,
        call_takes_mask=call_takes_mask,
    )


_IMAGE = frozenset({IMAGE_PRESERVING})
_DROPOUT = frozenset({DROPOUT, IMAGE_PRESERVING})

# Each class's own arguments, besides those every layer accepts.
SPECS = [
    # Activation: f(0) depends on its function (`grader.graph_effect` reads it).
    _same("Activation", arguments("activation"), ELEMENTWISE, _IMAGE, zeros=NO_ZERO_RULE),
    # ReLU, LeakyReLU and ELU are weight-free and shape-preserving: Keras also accepts them as
    # another layer's `activation` object, with these arguments.
    _same(
        "ReLU",
        arguments("max_value", "negative_slope", "threshold"),
        ELEMENTWISE,
        _IMAGE,
        Safety(activation_arguments=("max_value", "negative_slope", "threshold")),
        zeros=NO_ZERO_RULE,  # a threshold or max_value 0 is decided in graph_effect
    ),
    _same(
        "LeakyReLU",
        arguments("negative_slope", "alpha"),  # alpha: deprecated name of the slope
        ELEMENTWISE,
        _IMAGE,
        Safety(activation_arguments=("negative_slope",)),
        zeros=PRESERVES_ZERO,
    ),
    _same(
        "ELU",
        arguments("alpha"),
        ELEMENTWISE,
        _IMAGE,
        Safety(activation_arguments=("alpha",)),
        zeros=PRESERVES_ZERO,
    ),
    _same(
        "Softmax",
        arguments("axis"),
        AXIS_NORMALIZATION,
        NO_FAMILY,
        zeros=NO_ZERO_RULE,
        call_takes_mask=True,
    ),
    _same(
        "Dropout",
        arguments("rate", "noise_shape", "seed"),
        INFERENCE_IDENTITY,
        _DROPOUT,
        zeros=PRESERVES_ZERO,
    ),
    _same(
        "GaussianDropout",
        arguments("rate", "seed"),
        INFERENCE_IDENTITY,
        _DROPOUT,
        zeros=PRESERVES_ZERO,
    ),
    _same(
        "GaussianNoise",
        arguments("stddev", "seed"),
        INFERENCE_IDENTITY,
        _IMAGE,
        zeros=NO_ZERO_RULE,
    ),
    _same(
        "AlphaDropout",
        arguments("rate", "noise_shape", "seed"),
        INFERENCE_IDENTITY,
        _DROPOUT,
        zeros=NO_ZERO_RULE,
    ),
    # It passes its own activity regularizer to Layer: Keras refuses another one.
    _same(
        "ActivityRegularization",
        arguments("l1", "l2") - {"activity_regularizer"},
        ELEMENTWISE,
        _IMAGE,
        zeros=PRESERVES_ZERO,
    ),
    _same("Identity", arguments(), ELEMENTWISE, _IMAGE, zeros=PRESERVES_ZERO),
    _same("Masking", arguments("mask_value"), MASKING, NO_FAMILY, zeros=PRESERVES_ZERO),
    LayerSpec(
        "PReLU",
        _same_shape,
        _prelu_weights,
        arguments=arguments(
            "alpha_initializer", "alpha_regularizer", "alpha_constraint", "shared_axes"
        ),
        geometry=ELEMENTWISE,
        families=_IMAGE,
        safety=BUILTIN,
        zeros=NO_ZERO_RULE,
    ),
    _spatial_dropout("SpatialDropout1D", 1),
    _spatial_dropout("SpatialDropout2D", 2),
    _spatial_dropout("SpatialDropout3D", 3),
]
