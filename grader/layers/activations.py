"""Shape-preserving layers: activations, dropout, noise, regularization and identity.

Only PReLU has weights: one ``alpha`` per input position, shared along ``shared_axes`` (its
initializer, regularizer and constraint change values only). No other argument of these classes
creates a weight.
"""

from __future__ import annotations

from collections.abc import Sequence

from grader.graph import Shape
from grader.layers.base import (
    Config,
    LayerSpec,
    SpecError,
    WeightSpec,
    arguments,
    require_known,
    require_rank,
    single_input,
)


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
    return LayerSpec(class_name, output_shape, arguments=frozenset(own))


# Each class's own arguments, besides those every layer accepts.
_SHAPE_PRESERVING: dict[str, frozenset[str]] = {
    "Activation": arguments("activation"),
    "ReLU": arguments("max_value", "negative_slope", "threshold"),
    "LeakyReLU": arguments("negative_slope", "alpha"),  # alpha: deprecated name of the slope
    "ELU": arguments("alpha"),
    "Softmax": arguments("axis"),
    "Dropout": arguments("rate", "noise_shape", "seed"),
    "GaussianDropout": arguments("rate", "seed"),
    "GaussianNoise": arguments("stddev", "seed"),
    "AlphaDropout": arguments("rate", "noise_shape", "seed"),
    # It passes its own activity regularizer to Layer: Keras refuses another one.
    "ActivityRegularization": arguments("l1", "l2") - {"activity_regularizer"},
    "Identity": arguments(),
    "Masking": arguments("mask_value"),
}

SPECS = [
    *(LayerSpec(name, _same_shape, arguments=own) for name, own in _SHAPE_PRESERVING.items()),
    LayerSpec(
        "PReLU",
        _same_shape,
        _prelu_weights,
        arguments=arguments(
            "alpha_initializer", "alpha_regularizer", "alpha_constraint", "shared_axes"
        ),
    ),
    _spatial_dropout("SpatialDropout1D", 1),
    _spatial_dropout("SpatialDropout2D", 2),
    _spatial_dropout("SpatialDropout3D", 3),
]
