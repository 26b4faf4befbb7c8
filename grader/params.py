"""Parameter counts, equal to Keras' ``count_params()`` and trainable / non-trainable weights.

Weights are created when a layer is first called, so a layer's weight shapes come from its
first node's input shapes; a shared layer's weights are counted once. A layer frozen with
``trainable: false`` (or in a frozen outermost Functional model) has only non-trainable weights,
and statistics such as BatchNormalization's moving mean are never trainable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from grader.errors import UnsupportedLayer
from grader.graph import Layer, ModelGraph
from grader.layers import WeightSpec, get_spec


@dataclass(frozen=True)
class LayerParams:
    """Parameter counts of one layer (or of a whole model).

    Attributes:
        total: every scalar in the layer's weights.
        trainable: scalars updated by the optimizer.
        non_trainable: frozen weights and statistics (``moving_mean``, ``count``, ...).
    """

    total: int
    trainable: int
    non_trainable: int

    def to_dict(self) -> dict[str, int]:
        """JSON-ready counts."""
        return {
            "total": self.total,
            "trainable": self.trainable,
            "non_trainable": self.non_trainable,
        }

    def __add__(self, other: LayerParams) -> LayerParams:
        return LayerParams(
            self.total + other.total,
            self.trainable + other.trainable,
            self.non_trainable + other.non_trainable,
        )


NO_PARAMS = LayerParams(0, 0, 0)


def layer_weights(graph: ModelGraph, layer: Layer) -> list[WeightSpec]:
    """The weights `layer` creates at its first call in `graph`.

    Raises:
        UnsupportedLayer: the layer's class has no spec (only InputLayer needs none).
    """
    if layer.class_name == "InputLayer":
        return []
    spec = get_spec(layer.class_name)
    if spec is None:
        raise UnsupportedLayer(
            f"Layer `{layer.name}` ({layer.class_name}) is not supported by the model analysis.",
            layer_name=layer.name,
            class_name=layer.class_name,
        )
    first = next(n for n in graph.nodes if n.layer.name == layer.name)
    return spec.weights(layer.config, first.input_shapes)


def params_of(layer: Layer, weights: list[WeightSpec]) -> LayerParams:
    """Counts of `weights` for `layer`, honouring its ``trainable`` flag."""
    trainable = sum(w.size for w in weights if w.trainable) if layer.trainable else 0
    total = sum(w.size for w in weights)
    return LayerParams(total, trainable, total - trainable)


def count_params(
    graph: ModelGraph, weights: Mapping[str, list[WeightSpec]] | None = None
) -> dict[str, LayerParams]:
    """Per-layer parameter counts of every layer in `graph`, in order of first call.

    Args:
        graph: the model graph.
        weights: each layer's weights if already known (`build_graph_and_weights`); inferred
            from the first call's input shapes otherwise.
    """
    counts: dict[str, LayerParams] = {}
    for node in graph.nodes:
        layer = node.layer
        if layer.name in counts:
            continue  # a shared layer: built once, at its first call
        if layer.class_name == "InputLayer":
            counts[layer.name] = NO_PARAMS
            continue
        if weights is not None and layer.name in weights:
            counts[layer.name] = params_of(layer, weights[layer.name])
            continue
        spec = get_spec(layer.class_name)
        if spec is None:
            raise UnsupportedLayer(
                f"Layer `{layer.name}` ({layer.class_name}) is not supported by the model "
                "analysis.",
                layer_name=layer.name,
                class_name=layer.class_name,
            )
        counts[layer.name] = params_of(layer, spec.weights(layer.config, node.input_shapes))
    return counts


def total_params(graph: ModelGraph) -> LayerParams:
    """Whole-model counts: the sum over unique layers."""
    total = NO_PARAMS
    for params in count_params(graph).values():
        total = total + params
    return total
