"""The model graph: a Keras 3 model config flattened into calls of primitive layers.

Contract shared by shape inference, parameter counting and receptive fields:

- Nested models (Sequential or Functional used as a layer) are flattened: their layers appear
  with qualified names (``"outer/inner"``) and their own ``InputLayer`` nodes are wired through.
- A layer called several times (a shared layer) is one `Layer` and several `Node`s; its weights
  are counted once.
- Shapes exclude the batch axis; ``None`` marks an unknown size.
- ``nodes`` are topologically sorted: a node's inputs always have smaller ids.
- Only the network Keras builds is here: layers and calls of a Functional config that no path
  joins to the model's outputs are left out (Keras does not include them in the model), and
  listed in ``dead_layers``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

Shape = tuple[int | None, ...]


@dataclass(frozen=True)
class Layer:
    """One layer object: what owns weights.

    Attributes:
        name: unique name; layers of nested models are qualified ``"outer/inner"``.
        class_name: the Keras class, e.g. ``"SeparableConv2D"``.
        config: the layer's Keras config (``kernel_size``, ``strides``, ``rate``, ...).
        trainable: False when the layer's own config freezes it, or the outermost model is a
            frozen Functional model. As in the model Keras rebuilds from a config, a nested
            model's own ``trainable`` flag and a Sequential model's change nothing.
    """

    name: str
    class_name: str
    config: Mapping[str, Any] = field(hash=False, compare=False)
    trainable: bool = True


@dataclass(frozen=True)
class Node:
    """One call of a layer on its inputs.

    Attributes:
        id: index in `ModelGraph.nodes`.
        layer: the layer called.
        inputs: ids of the producer nodes, in call order (empty for an ``InputLayer``).
        input_shapes: shapes of those inputs, batch axis excluded.
        output_shape: shape of this call's output, batch axis excluded.
    """

    id: int
    layer: Layer
    inputs: tuple[int, ...]
    input_shapes: tuple[Shape, ...]
    output_shape: Shape


@dataclass(frozen=True)
class DeadLayer:
    """A layer listed in a Functional config that Keras leaves out of the model it builds.

    Attributes:
        name: its (qualified) name.
        class_name: its Keras class (a nested model's own class for a whole nested model).
    """

    name: str
    class_name: str

    def to_dict(self) -> dict[str, str]:
        """JSON-ready description."""
        return {"name": self.name, "class_name": self.class_name}


@dataclass(frozen=True)
class ModelGraph:
    """A whole model as a DAG of layer calls.

    Attributes:
        name: the model's name.
        class_name: ``"Sequential"`` or ``"Functional"``.
        nodes: every layer call, topologically sorted.
        inputs: ids of the model's input nodes.
        outputs: ids of the nodes producing the model's outputs.
        dead_layers: layers listed in the config but not connected to the outputs, left out
            (a whole dead nested model is one entry).
    """

    name: str
    class_name: str
    nodes: tuple[Node, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    dead_layers: tuple[DeadLayer, ...] = ()

    @property
    def layers(self) -> dict[str, Layer]:
        """Unique layers by name, in the order of their first call."""
        return {name: calls[0].layer for name, calls in self._calls_by_layer.items()}

    def nodes_of(self, layer_name: str) -> list[Node]:
        """Every call of the named layer (more than one for a shared layer)."""
        return list(self._calls_by_layer.get(layer_name, ()))

    def consumers(self, node_id: int) -> list[Node]:
        """The nodes that take `node_id`'s output as an input."""
        return list(self._consumers.get(node_id, ()))

    # Indexes built once on first use: callers ask per layer or per node, which would make
    # whole-graph passes O(n^2) on 300-layer models. (cached_property writes the instance
    # __dict__ directly, so it works on a frozen dataclass without touching its fields.)

    @cached_property
    def _calls_by_layer(self) -> dict[str, list[Node]]:
        calls: dict[str, list[Node]] = {}
        for node in self.nodes:
            calls.setdefault(node.layer.name, []).append(node)
        return calls

    @cached_property
    def _consumers(self) -> dict[int, list[Node]]:
        consumers: dict[int, list[Node]] = {}
        for node in self.nodes:
            for producer in dict.fromkeys(node.inputs):  # a node fed twice is one consumer
                consumers.setdefault(producer, []).append(node)
        return consumers
