"""Build a `ModelGraph` from a Keras 3 model config, without Keras.

Reads Functional configs (layers with ``inbound_nodes`` whose arguments hold ``__keras_tensor__``
entries with ``keras_history = [layer_name, node_index, tensor_index]``) and Sequential configs
(layers in order), flattens nested models (qualified names ``outer/inner``; a nested model called
twice shares its layers), and infers every node's output shape with the layer specs in
`grader.layers`.

The config is read as Keras itself rebuilds it for training (`grader.keras_config`): which
entries are one layer, their names, the shapes ``build_config`` builds them with, and which calls
the model keeps. `grader.model_reader` expands models into calls as Keras does: a Functional
config is processed like ``functional_from_config`` (every listed call, a layer's calls in
order), then only the network Keras keeps, the calls some path joins to the outputs, is returned;
the layers left out are listed in ``ModelGraph.dead_layers``. This module adds each call. Where
the grader could read a config otherwise than Keras, it refuses it, naming the entry and the key.

Nothing in a config is ever executed: layers that carry code (``Lambda``, custom classes, custom
activation functions) are refused with `UnsafeLayer`; Keras layers the analysis does not know
are refused with `UnsupportedLayer` (both in `grader.config_safety`), because a silently wrong
number is worse than no number.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from grader.config_safety import check_code, layer_spec
from grader.errors import InvalidModelConfig, UnsupportedLayer
from grader.graph import Layer, ModelGraph, Node, Shape
from grader.keras_config import (
    MODEL_CLASSES,
    build_shapes,
    check_object_keys,
    compatible,
    entry_config,
    entry_name,
    trainable_flag,
)
from grader.layers import SpecError, SpecUnsupported, WeightSpec
from grader.layers.base import format_shape
from grader.limits import MAX_SIZE, check_values
from grader.model_reader import (
    MAX_NESTING,
    MAX_NODES,
    Entry,
    Expansion,
    ModelReader,
    checked_model_name,
)

__all__ = ["MODEL_CLASSES", "build_graph", "build_graph_and_weights"]


def build_graph(config: Mapping[str, Any]) -> ModelGraph:
    """Flatten a Keras 3 model config into a `ModelGraph` with inferred shapes.

    Args:
        config: the parsed JSON of ``model.to_json()`` (or a ``.keras`` archive's
            ``config.json``): ``{"class_name": "Functional"|"Sequential", "config": {...}}``.

    Returns:
        The model's layer calls, topologically sorted, with input and output shapes
        (batch axis excluded).

    Raises:
        InvalidModelConfig: the config is not a readable Keras 3 model, or shapes do not fit.
        UnsafeLayer: a layer carries code (``Lambda``, a custom class or function).
        UnsupportedLayer: a Keras layer class the analysis does not support.
    """
    return build_graph_and_weights(config)[0]


def build_graph_and_weights(
    config: Mapping[str, Any],
) -> tuple[ModelGraph, dict[str, list[WeightSpec]]]:
    """`build_graph`, plus the weights each layer created at its first call (by layer name).

    The builder infers the weights anyway (to check shared layers); handing them on spares
    parameter counting a second pass. InputLayers have no entry; neither do dead layers.
    """
    if not isinstance(config, Mapping):
        raise InvalidModelConfig(
            f"Expected a model config object (a JSON object). Received {type(config).__name__}."
        )
    if not isinstance(config, dict):
        # The builder reads plain JSON data (dicts and lists); copy other mappings into it.
        try:
            config = json.loads(json.dumps(config))
        except (TypeError, ValueError) as exc:
            raise InvalidModelConfig(f"Expected a model config of JSON data. {exc}.") from exc
    # Sizes, NaN, text: every number below is then bounded (see grader.limits).
    check_values(config)
    class_name = _class_name(config)
    inner = config.get("config")
    label = str(inner.get("name") or class_name) if isinstance(inner, dict) else class_name
    if class_name not in MODEL_CLASSES:
        check_code(config, str(config.get("name") or label), outermost=True)
        raise InvalidModelConfig(
            f"Expected a Sequential or Functional model config. Received class_name {class_name!r}."
        )
    check_code(config, label, outermost=True)
    name = checked_model_name(config)
    check_object_keys(config, f"Model `{name}` ({class_name})", leaf=False)
    # Keras' `Sequential.from_config` drops the model's own `trainable`; a Functional model
    # passes it on, and a frozen outermost model trains nothing (`Layer.trainable_weights`).
    frozen = class_name != "Sequential" and not trainable_flag(config["config"], f"Model `{name}`")
    builder = _GraphBuilder(frozen=frozen)
    expansion = builder.expand_model(
        config, prefix="", bound=None, depth=0, build_config=config.get("build_config")
    )
    return builder.finish(expansion, name=name, class_name=class_name)


def _class_name(config: Mapping[str, Any]) -> str:
    """The ``class_name`` of a serialized object, which must be a string."""
    class_name = config.get("class_name")
    if not isinstance(class_name, str):
        raise InvalidModelConfig(
            f"Expected `class_name` to be a string such as 'Conv2D'. Received {class_name!r}."
        )
    return class_name


def _check_size(layer: Layer, shape: Shape) -> None:
    """Refuse an output whose axis or number of values (batch axis excluded) passes MAX_SIZE."""
    values = 1
    for dim in shape:
        if dim is not None:
            values *= dim
            if values > MAX_SIZE or dim > MAX_SIZE:
                # Not printed: a product of many axes can pass what Python prints (4,300 digits).
                raise InvalidModelConfig(
                    f"Layer `{layer.name}` ({layer.class_name}) outputs a tensor of more than "
                    f"{MAX_SIZE:,} values per example (or an axis that long). Expected a model "
                    "that fits in memory."
                )


def _shapes_text(shapes: Sequence[Shape]) -> str:
    return ", ".join(format_shape(s) for s in shapes)


class _GraphBuilder(ModelReader):
    """Accumulates nodes while model configs are expanded, nested models inline."""

    def __init__(self, *, frozen: bool = False) -> None:
        self.nodes: list[Node] = []
        self.layers: dict[str, Layer] = {}
        self.expansions = 0
        # Weights of each layer built so far (at its first call), by layer name.
        self.weights: dict[str, list[WeightSpec]] = {}
        # Input shapes and weights of layers whose `build_config` builds them before any call.
        self.prebuilt: dict[str, tuple[list[Shape], list[WeightSpec]]] = {}
        self.checked: set[str] = set()
        self.total_params = 0
        self.frozen = frozen

    # -- the finished graph ----------------------------------------------------------------------

    def finish(
        self, expansion: Expansion, *, name: str, class_name: str
    ) -> tuple[ModelGraph, dict[str, list[WeightSpec]]]:
        """The graph of the live network: every other node dropped, ids renumbered in order."""
        keep = sorted(expansion.keep | set(expansion.inputs))
        new_id = {old: new for new, old in enumerate(keep)}
        nodes = tuple(
            Node(
                id=new_id[old],
                layer=self.nodes[old].layer,
                inputs=tuple(new_id[i] for i in self.nodes[old].inputs),
                input_shapes=self.nodes[old].input_shapes,
                output_shape=self.nodes[old].output_shape,
            )
            for old in keep
        )
        live = {node.layer.name for node in nodes}
        graph = ModelGraph(
            name=name,
            class_name=class_name,
            nodes=nodes,
            inputs=tuple(new_id[i] for i in expansion.inputs),
            outputs=tuple(new_id[i] for i in expansion.outputs),
            dead_layers=tuple(dict.fromkeys(expansion.dead)),
        )
        return graph, {key: value for key, value in self.weights.items() if key in live}

    # -- nodes -------------------------------------------------------------------------------

    def _layer(self, entry: Entry) -> Layer:
        layer = self.layers.get(entry.qualified)
        if layer is None:
            own = trainable_flag(entry.inner, f"Layer `{entry.qualified}` ({entry.class_name})")
            layer = Layer(
                entry.qualified, entry.class_name, entry.inner, trainable=own and not self.frozen
            )
            self.layers[entry.qualified] = layer
        return layer

    def _add_node(self, layer: Layer, inputs: Sequence[int], output_shape: Shape) -> int:
        if len(self.nodes) >= MAX_NODES:
            raise InvalidModelConfig(
                f"The model has more than {MAX_NODES:,} layer calls. Expected a smaller model."
            )
        _check_size(layer, output_shape)
        node = Node(
            id=len(self.nodes),
            layer=layer,
            inputs=tuple(inputs),
            input_shapes=tuple(self.nodes[i].output_shape for i in inputs),
            output_shape=output_shape,
        )
        self.nodes.append(node)
        return node.id

    def _count_weights(self, name: str, class_name: str, weights: Sequence[WeightSpec]) -> None:
        """Add a newly built layer's weights to the model's total, both held to MAX_SIZE."""
        for weight in weights:
            size = weight.size
            if size > MAX_SIZE:
                raise InvalidModelConfig(
                    f"Layer `{name}` ({class_name}) has a weight `{weight.name}` of "
                    f"more than {MAX_SIZE:,} values. Expected a model that fits in memory."
                )
            self.total_params += size
        if self.total_params > MAX_SIZE:
            raise InvalidModelConfig(
                f"Layer `{name}` ({class_name}) brings the model past {MAX_SIZE:,} "
                "parameters. Expected a model that fits in memory."
            )

    def add_input(self, entry: Entry, shape: Shape) -> int:
        """An InputLayer node of the given shape."""
        return self._add_node(self._layer(entry), (), shape)

    def call_primitive(self, entry: Entry, inputs: Sequence[int], *, as_list: bool) -> int:
        """Add one call of a non-model layer and infer its output shape.

        ``as_list``: whether the call passes its tensors as one list (merge layers) or a single
        tensor (every other layer), as Keras would call it.
        """
        name, class_name = entry.qualified, entry.class_name
        spec = layer_spec(class_name, name)
        if spec.multi_input != as_list:
            expected = "a list of tensors ([a, b])" if spec.multi_input else "one tensor"
            received = f"a list of {len(inputs)}" if as_list else "one tensor"
            raise InvalidModelConfig(
                f"Layer `{name}` ({class_name}) is called on {received}. Expected {expected}."
            )
        layer = self._layer(entry)
        dtype = layer.config.get("dtype")
        if isinstance(dtype, dict) and "Quantized" in str(dtype.get("class_name")):
            # Quantized layers store int8/float8 kernels plus scales: other weights than these.
            raise UnsupportedLayer(
                f"Layer `{name}` ({class_name}) is quantized ({dtype.get('class_name')}). "
                "Expected a float model; quantize after grading.",
                layer_name=name,
                class_name=class_name,
            )
        input_shapes = [self.nodes[i].output_shape for i in inputs]
        if not spec.multi_input and len(inputs) != 1:
            raise InvalidModelConfig(
                f"Layer `{name}` ({class_name}) expects exactly 1 input. Received "
                f"{len(inputs)} inputs."
            )
        try:
            output_shape = spec.output_shape(layer.config, input_shapes)
            # Weight shapes are fixed by the first call; a shared layer called again must fit
            # the weights it already has (Keras raises at that call too).
            weights = spec.weights(layer.config, input_shapes)
            if name not in self.weights:
                self._check_prebuilt(entry, input_shapes, weights)
                self._count_weights(name, class_name, weights)
            built = self.weights.setdefault(name, weights)
            if weights != built:
                raise SpecError(
                    "This shared layer was built for another input shape: its weights "
                    f"{[w.shape for w in built]} do not fit this call (would be "
                    f"{[w.shape for w in weights]})."
                )
        except SpecUnsupported as exc:
            raise UnsupportedLayer(
                f"Layer `{name}` ({class_name}): {exc}", layer_name=name, class_name=class_name
            ) from exc
        except SpecError as exc:
            raise InvalidModelConfig(
                f"Layer `{name}` ({class_name}) called on input shape "
                f"{_shapes_text(input_shapes)}: {exc}"
            ) from exc
        return self._add_node(layer, inputs, output_shape)

    def _check_prebuilt(
        self, entry: Entry, input_shapes: Sequence[Shape], weights: Sequence[WeightSpec]
    ) -> None:
        """Refuse a first call that does not fit the weights ``build_config`` already built."""
        prebuilt = self.prebuilt.get(entry.qualified)
        if prebuilt is None:
            return
        shapes, built = prebuilt
        fits = len(shapes) == len(input_shapes) and all(
            compatible(s, a) for s, a in zip(shapes, input_shapes, strict=True)
        )
        if fits and list(weights) == built:
            return
        raise InvalidModelConfig(
            f"Layer `{entry.qualified}` ({entry.class_name}) has build_config input_shape "
            f"{_shapes_text(shapes)}, so Keras builds its weights for that shape "
            f"({', '.join(f'{w.name} {w.shape}' for w in built) or 'none'}) before any call, "
            f"but the model calls it on {_shapes_text(input_shapes)}. Expected the shape it is "
            "called on, as model.to_json() writes it, or no build_config."
        )

    # -- entries -----------------------------------------------------------------------------

    def read_entries(
        self, inner: Mapping[str, Any], prefix: str, model_name: str, *, functional: bool
    ) -> list[Entry]:
        """Read a model's layer entries as Keras deserializes them, before any call.

        Every entry is checked (names, honoured keys, code, class support, ``build_config``)
        whether or not the model ends up using it: Keras deserializes them all.
        """
        entries: list[Entry] = []
        names: set[str] = set()
        for position, cfg in enumerate(inner["layers"]):
            layer_inner = entry_config(cfg, position, model_name)
            name = entry_name(cfg, position, model_name, functional=functional)
            if name in names:
                raise InvalidModelConfig(
                    f"Model `{model_name}` has two layers named `{name}`. Expected unique names "
                    "(Keras refuses them, or keeps only one)."
                )
            names.add(name)
            class_name = cfg["class_name"]
            entry = Entry(
                name=name,
                qualified=prefix + name,
                class_name=class_name,
                cfg=cfg,
                inner=layer_inner,
                is_model=class_name in MODEL_CLASSES,
            )
            if entry.qualified not in self.checked:
                self._check_entry(entry)
                self.checked.add(entry.qualified)
            entries.append(entry)
        return entries

    def _check_entry(self, entry: Entry) -> None:
        what = f"Layer `{entry.qualified}` ({entry.class_name})"
        check_code(entry.cfg, entry.qualified)
        leaf = not entry.is_model and entry.class_name != "InputLayer"
        spec = layer_spec(entry.class_name, entry.qualified) if leaf else None
        check_object_keys(entry.cfg, what, leaf=not entry.is_model)
        trainable_flag(entry.inner, what)
        if entry.is_model:
            _check_model_statically(entry.cfg, entry.qualified + "/", depth=1)
            return
        if spec is None:
            return
        shapes = build_shapes(
            entry.cfg, entry.qualified, entry.class_name, multi_input=spec.multi_input
        )
        if shapes is None:
            return
        try:
            weights = spec.weights(entry.inner, shapes)
        except SpecUnsupported as exc:
            raise UnsupportedLayer(
                f"{what}: {exc}", layer_name=entry.qualified, class_name=entry.class_name
            ) from exc
        except SpecError as exc:
            raise InvalidModelConfig(
                f"{what} has build_config input_shape {_shapes_text(shapes)}, with which Keras "
                f"cannot build it: {exc}"
            ) from exc
        self.prebuilt[entry.qualified] = (shapes, weights)


def _check_model_statically(config: Mapping[str, Any], prefix: str, depth: int) -> None:
    """Check every entry of a nested model for code and honoured keys, used or not.

    Keras deserializes a nested model whole even when the outer model never calls it; the
    builder checks the entries of the models it expands in full, and this walk covers the rest.
    """
    if depth > MAX_NESTING:
        raise InvalidModelConfig(
            f"Models are nested more than {MAX_NESTING} levels deep. Expected flatter models."
        )
    inner = config.get("config")
    if not isinstance(inner, dict) or not isinstance(inner.get("layers"), list):
        raise InvalidModelConfig(
            f"Nested model `{prefix.rstrip('/')}` has no `config.layers` list. Expected a "
            "Keras 3 model config."
        )
    for position, cfg in enumerate(inner["layers"]):
        entry_config(cfg, position, prefix.rstrip("/"))
        name = str(cfg["config"].get("name") or cfg.get("name") or f"#{position + 1}")
        is_model = cfg["class_name"] in MODEL_CLASSES
        check_code(cfg, prefix + name)
        check_object_keys(cfg, f"Layer `{prefix + name}` ({cfg['class_name']})", leaf=not is_model)
        if is_model:
            _check_model_statically(cfg, prefix + name + "/", depth + 1)
