"""Model analysis: shapes and parameter counts of a Keras 3 model config, without Keras.

`analyze(config)` is the entry point used by the rules, the reports and the site: it builds the
flattened graph (`grader.graph_builder`), then counts parameters per layer (`grader.params`)
exactly as Keras' ``count_params()``, ``trainable_weights`` and ``non_trainable_weights`` do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from grader.graph import DeadLayer, ModelGraph, Shape
from grader.graph_builder import build_graph_and_weights
from grader.params import LayerParams, count_params

__all__ = ["DeadLayer", "LayerParams", "LayerSummary", "ModelAnalysis", "analyze"]


@dataclass(frozen=True)
class LayerSummary:
    """One layer of the analysed model (input layers included, with no parameters).

    Attributes:
        name: the layer's (qualified) name.
        class_name: its Keras class.
        output_shape: output of its first call, batch axis excluded.
        params: its parameter counts (a shared layer's weights counted once).
        config: its Keras config.
        calls: how many times the model calls it (more than 1 for a shared layer).
    """

    name: str
    class_name: str
    output_shape: Shape
    params: LayerParams
    config: Mapping[str, Any] = field(hash=False, compare=False, repr=False)
    calls: int = 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (config omitted: it is in the model config)."""
        return {
            "name": self.name,
            "class_name": self.class_name,
            "output_shape": list(self.output_shape),
            "params": self.params.to_dict(),
            "calls": self.calls,
        }


@dataclass(frozen=True)
class ModelAnalysis:
    """Shapes and parameter counts of a whole model.

    Attributes:
        name: the model's name.
        graph: the flattened graph the analysis was computed on.
        input_shapes: shapes of the model inputs, batch axis excluded.
        output_shapes: shapes of the model outputs, batch axis excluded.
        layers: per-layer summaries, in order of first call.
        total_params / trainable_params / non_trainable_params: whole-model counts.
        dead_layers: layers the config lists but Keras leaves out of the model (no path joins
            them to the outputs); counted nowhere.
    """

    name: str
    graph: ModelGraph = field(repr=False)
    input_shapes: tuple[Shape, ...]
    output_shapes: tuple[Shape, ...]
    layers: tuple[LayerSummary, ...]
    total_params: int
    trainable_params: int
    non_trainable_params: int
    dead_layers: tuple[DeadLayer, ...] = ()

    def layer(self, name: str) -> LayerSummary:
        """The summary of the named layer.

        Raises:
            KeyError: no layer has that name.
        """
        for summary in self.layers:
            if summary.name == name:
                return summary
        raise KeyError(f"The model has no layer named `{name}`.")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready analysis (exact integers; shapes as lists with null for unknown)."""
        return {
            "name": self.name,
            "class_name": self.graph.class_name,
            "input_shapes": [list(s) for s in self.input_shapes],
            "output_shapes": [list(s) for s in self.output_shapes],
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "non_trainable_params": self.non_trainable_params,
            "layers": [summary.to_dict() for summary in self.layers],
            "dead_layers": [dead.to_dict() for dead in self.dead_layers],
        }


def analyze(config: Mapping[str, Any]) -> ModelAnalysis:
    """Analyse a Keras 3 model config: shapes and parameter counts, without running Keras.

    Args:
        config: the parsed model config (``model.to_json()``, or ``config.json`` of a ``.keras``
            archive; see `grader.loading`).

    Returns:
        The model's `ModelAnalysis`.

    Raises:
        InvalidModelConfig: the config is malformed or its shapes do not fit together.
        UnsafeLayer: a layer carries code.
        UnsupportedLayer: a Keras layer class the analysis does not support.
    """
    graph, weights = build_graph_and_weights(config)
    params = count_params(graph, weights)
    calls: dict[str, int] = {}
    first_output: dict[str, Shape] = {}
    for node in graph.nodes:
        name = node.layer.name
        calls[name] = calls.get(name, 0) + 1
        first_output.setdefault(name, node.output_shape)
    layers = tuple(
        LayerSummary(
            name=name,
            class_name=layer.class_name,
            output_shape=first_output[name],
            params=params[name],
            config=layer.config,
            calls=calls[name],
        )
        for name, layer in graph.layers.items()
    )
    trainable = sum(p.trainable for p in params.values())
    non_trainable = sum(p.non_trainable for p in params.values())
    return ModelAnalysis(
        name=graph.name,
        graph=graph,
        input_shapes=tuple(graph.nodes[i].output_shape for i in graph.inputs),
        output_shapes=tuple(graph.nodes[i].output_shape for i in graph.outputs),
        layers=layers,
        total_params=trainable + non_trainable,
        trainable_params=trainable,
        non_trainable_params=non_trainable,
        dead_layers=graph.dead_layers,
    )
