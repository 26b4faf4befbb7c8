"""Shape-preserving layers: activations, dropout, noise, regularization and identity.

Only PReLU has weights: one ``alpha`` per input position, shared along ``shared_axes``.
"""

from __future__ import annotations

from collections.abc import Sequence

from grader.graph import Shape
from grader.layers.base import (
    Config,
    LayerSpec,
    SpecError,
    WeightSpec,
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

    return LayerSpec(class_name, output_shape)


SPECS = [
    *(
        LayerSpec(name, _same_shape)
        for name in (
            "Activation",
            "ReLU",
            "LeakyReLU",
            "ELU",
            "Softmax",
            "Dropout",
            "GaussianDropout",
            "GaussianNoise",
            "AlphaDropout",
            "ActivityRegularization",
            "Identity",
            "Masking",
        )
    ),
    LayerSpec("PReLU", _same_shape, _prelu_weights),
    _spatial_dropout("SpatialDropout1D", 1),
    _spatial_dropout("SpatialDropout2D", 2),
    _spatial_dropout("SpatialDropout3D", 3),
]
