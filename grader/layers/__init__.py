"""One record per supported Keras layer class (`LayerSpec`), one module per family.

A record holds the class's output-shape inference, weights, receptive-field geometry, rule
families and safety record (see `grader.layers.base`); every other table of layer classes is
built from `REGISTRY` (docs/contracts.md, "How to add a layer"). `get_spec(class_name)` returns
the record of a supported class, or None. ``InputLayer`` and nested models are handled by the
graph builder, not here.
"""

from __future__ import annotations

from grader.layers import (
    activations,
    conv,
    dense,
    merging,
    normalization,
    pooling,
    preprocessing,
    reshaping,
)
from grader.layers.base import LayerSpec, SpecError, SpecUnsupported, WeightSpec

REGISTRY: dict[str, LayerSpec] = {}
for _module in (
    activations,
    conv,
    dense,
    merging,
    normalization,
    pooling,
    preprocessing,
    reshaping,
):
    for _spec in _module.SPECS:
        if _spec.class_name in REGISTRY:  # pragma: no cover - a programming error
            raise RuntimeError(f"Duplicate layer spec for {_spec.class_name}.")
        REGISTRY[_spec.class_name] = _spec


def get_spec(class_name: str) -> LayerSpec | None:
    """The spec of a supported Keras layer class, or None if the class is not supported."""
    return REGISTRY.get(class_name)


def supported_classes() -> list[str]:
    """Names of every supported layer class, sorted."""
    return sorted(REGISTRY)


__all__ = [
    "REGISTRY",
    "LayerSpec",
    "SpecError",
    "SpecUnsupported",
    "WeightSpec",
    "get_spec",
    "supported_classes",
]
