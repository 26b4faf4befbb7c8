"""How a Keras model config expands into layer calls, read as Keras rebuilds the model.

`ModelReader` holds what `keras.Sequential` and `functional_from_config` decide about a config:
the input shape a Sequential model is built with (in Keras' order of precedence), the order in
which a Functional model's calls run (every listed call, a layer's calls in order), nested
models called inline, and which calls the model keeps (those some path joins to the outputs).
What a single layer call does (its spec, its weights, the checks on its entry) is the graph
builder's (`grader.graph_builder`), which subclasses it.
"""

from __future__ import annotations

import heapq
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from grader.errors import InvalidModelConfig
from grader.graph import DeadLayer, Node, Shape
from grader.keras_config import (
    CALL_TAKES_MASK,
    Call,
    batch_dropped,
    check_name,
    compatible,
    declared_input,
    input_layer_shape,
    is_operation,
    parse_call,
    parse_refs,
    recorded_shape_agrees,
)
from grader.layers.base import format_shape

# Guards against configs built to exhaust the analysis (it runs on untrusted uploads).
MAX_NODES = 20_000
MAX_NESTING = 16


def checked_model_name(config: Mapping[str, Any]) -> str:
    """A model's ``config.name``, which Keras requires of both model classes."""
    inner = config.get("config")
    if not isinstance(inner, dict) or not isinstance(inner.get("layers"), list):
        raise InvalidModelConfig(
            f"Model {config.get('class_name')!r} has no `config.layers` list. Expected a Keras "
            "3 model config (model.to_json())."
        )
    if "name" not in inner:
        raise InvalidModelConfig(
            f"{config.get('class_name')} model config has no `config.name`, without which Keras "
            "cannot rebuild it. Expected the model's name there."
        )
    return check_name(inner["name"], f"{config.get('class_name')} model")


@dataclass(frozen=True)
class Entry:
    """One entry of a model's ``layers`` list, read as Keras deserializes it.

    Attributes:
        name: the layer's name in its model (its ``config.name``).
        qualified: the name in the flattened graph (``outer/inner`` inside nested models).
        class_name: its Keras class.
        cfg: the whole entry (``class_name``, ``config``, ``module``, ...).
        inner: its ``config``.
        is_model: a nested Sequential or Functional model.
    """

    name: str
    qualified: str
    class_name: str
    cfg: dict[str, Any]
    inner: dict[str, Any]
    is_model: bool


@dataclass
class Expansion:
    """What expanding one model call added to the graph.

    Attributes:
        inputs: node ids standing for the model's inputs (the caller's, for a nested model).
        outputs: node ids of its outputs.
        keep: ids of the nodes Keras' model holds for this call (its live network).
        dead: layers of the model (nested ones qualified) that Keras leaves out.
    """

    inputs: list[int]
    outputs: list[int]
    keep: set[int] = field(default_factory=set)
    dead: list[DeadLayer] = field(default_factory=list)


class ModelReader(ABC):
    """Expands model configs into layer calls; subclasses add the calls themselves."""

    nodes: list[Node]
    expansions: int

    @abstractmethod
    def add_input(self, entry: Entry, shape: Shape) -> int:
        """An InputLayer node of the given shape."""

    @abstractmethod
    def call_primitive(self, entry: Entry, inputs: Sequence[int], *, as_list: bool) -> int:
        """Add one call of a non-model layer; the new node's id."""

    @abstractmethod
    def read_entries(
        self, inner: Mapping[str, Any], prefix: str, model_name: str, *, functional: bool
    ) -> list[Entry]:
        """A model's layer entries, each checked, before any call."""

    def expand_model(
        self,
        config: Mapping[str, Any],
        *,
        prefix: str,
        bound: Sequence[int] | None,
        depth: int,
        build_config: Any = None,
    ) -> Expansion:
        """Add one call of a model's nodes.

        ``bound`` are the producer nodes a nested model is called on; their ids stand in for the
        nested model's own InputLayers ("wired through"). None for the outermost model.
        ``build_config`` is the model entry's own, which builds a Sequential model that has no
        other input shape.
        """
        # Nested models add no nodes of their own: count their expansions too, so a config that
        # calls empty nested models exponentially often is refused instead of spinning.
        self.expansions += 1
        if self.expansions + len(self.nodes) > MAX_NODES:
            raise InvalidModelConfig(
                f"The model has more than {MAX_NODES:,} layer and model calls. Expected a smaller "
                "model."
            )
        if depth > MAX_NESTING:
            raise InvalidModelConfig(
                f"Models are nested more than {MAX_NESTING} levels deep. Expected flatter models."
            )
        model_name = prefix.rstrip("/") or checked_model_name(config)
        inner = config["config"]
        if config.get("class_name") == "Sequential":
            return self._expand_sequential(inner, prefix, model_name, bound, depth, build_config)
        return self._expand_functional(inner, prefix, model_name, bound, depth)

    def _call(self, entry: Entry, inputs: Sequence[int], depth: int, *, as_list: bool) -> Expansion:
        if entry.is_model:
            checked_model_name(entry.cfg)
            return self.expand_model(
                entry.cfg,
                prefix=entry.qualified + "/",
                bound=inputs,
                depth=depth + 1,
                build_config=entry.cfg.get("build_config"),
            )
        node = self.call_primitive(entry, inputs, as_list=as_list)
        return Expansion(inputs=list(inputs), outputs=[node], keep={node})

    def _sequential_input(
        self,
        entries: Sequence[Entry],
        inner: Mapping[str, Any],
        model_name: str,
        build_config: Any,
    ) -> Shape | None:
        """The input shape a Sequential model is built with, in Keras' order of precedence.

        `Sequential.add` / `_maybe_rebuild`: an InputLayer first; else the first layer's
        ``input_shape``; else, with more than one layer, a first layer that is a built model;
        then `Sequential.from_config`'s ``build_input_shape``; then `deserialize_keras_object`'s
        ``build_config``. None: Keras leaves the model unbuilt until it is called.
        """
        first = entries[0]
        if first.class_name == "InputLayer":
            return input_layer_shape(first.cfg, first.qualified)
        if not first.is_model:
            declared = declared_input(first.inner, first.qualified, first=True)
            if declared is not None:
                return declared
        elif len(entries) > 1:
            declared = self._model_input(first)
            if declared is not None:
                return declared
        raw = inner.get("build_input_shape")
        if raw:
            return batch_dropped(raw, f"Sequential model `{model_name}` (build_input_shape)")
        if build_config:
            if not isinstance(build_config, dict) or set(build_config) != {"input_shape"}:
                raise InvalidModelConfig(
                    f"Sequential model `{model_name}` has build_config {build_config!r}. "
                    'Expected {"input_shape": [...]}, as model.to_json() writes it, or none.'
                )
            if build_config["input_shape"] is not None:
                return batch_dropped(
                    build_config["input_shape"], f"Sequential model `{model_name}` (build_config)"
                )
        return None

    def _model_input(self, entry: Entry) -> Shape | None:
        """The input shape of a nested model used as a Sequential model's first layer."""
        nested = entry.inner
        checked_model_name(entry.cfg)
        prefix = entry.qualified + "/"
        if entry.class_name == "Sequential":
            entries = self.read_entries(nested, prefix, entry.qualified, functional=False)
            if not entries:
                return None
            return self._sequential_input(
                entries, nested, entry.qualified, entry.cfg.get("build_config")
            )
        refs = parse_refs(nested.get("input_layers"), "input_layers", entry.qualified)
        if len(refs) != 1:
            return None  # Keras cannot build a Sequential model on several inputs
        for cfg in nested["layers"]:
            if (
                isinstance(cfg, dict)
                and cfg.get("name") == refs[0][0]
                and cfg.get("class_name") == "InputLayer"
            ):
                return input_layer_shape(cfg, prefix + refs[0][0])
        return None

    def _expand_sequential(
        self,
        inner: Mapping[str, Any],
        prefix: str,
        model_name: str,
        bound: Sequence[int] | None,
        depth: int,
        build_config: Any,
    ) -> Expansion:
        entries = self.read_entries(inner, prefix, model_name, functional=False)
        layers = entries[1:] if entries and entries[0].class_name == "InputLayer" else entries
        if not layers:
            raise InvalidModelConfig(
                f"Sequential model `{model_name}` has no layers. Expected at least one layer "
                "after its input."
            )
        for position, entry in enumerate(entries):
            if entry.cfg.get("inbound_nodes"):
                raise InvalidModelConfig(
                    f"Layer `{entry.qualified}` ({entry.class_name}) of Sequential model "
                    f"`{model_name}` lists `inbound_nodes`, which Keras ignores in a Sequential "
                    "model: it calls each layer on the previous layer's output. Expected no "
                    "`inbound_nodes`, or class_name 'Functional' for another graph."
                )
            if entry.class_name == "InputLayer" and position > 0:
                raise InvalidModelConfig(
                    f"Sequential model `{model_name}` has InputLayer `{entry.qualified}` after "
                    "other layers. Expected it first."
                )
            if not entry.is_model and entry is not entries[0]:
                declared_input(entry.inner, entry.qualified, first=False)
        declared = self._sequential_input(entries, inner, model_name, build_config)
        if bound is not None:
            if len(bound) != 1:
                raise InvalidModelConfig(
                    f"Sequential model `{model_name}` is called on {len(bound)} inputs. Expected 1."
                )
            actual = self.nodes[bound[0]].output_shape
            if declared is not None and not compatible(declared, actual):
                raise InvalidModelConfig(
                    f"Nested model `{model_name}` expects input shape {format_shape(declared)}. "
                    f"Received {format_shape(actual)}."
                )
            inputs = list(bound)
        else:
            if declared is None:
                raise InvalidModelConfig(
                    f"Sequential model `{model_name}` has no input shape. Expected an InputLayer "
                    "(keras.Input(shape=...)) as its first layer, or a built model."
                )
            if entries[0].class_name == "InputLayer":
                input_entry = entries[0]
            else:
                input_entry = synthesized_input(entries, prefix, declared)
            inputs = [self.add_input(input_entry, declared)]
        result = Expansion(inputs=inputs, outputs=inputs, keep=set())
        current = inputs
        for entry in layers:
            call = self._call(entry, current, depth, as_list=False)
            if len(call.outputs) != 1:
                raise InvalidModelConfig(
                    f"Layer `{entry.qualified}` in Sequential model `{model_name}` has "
                    f"{len(call.outputs)} outputs. Expected 1."
                )
            result.keep |= call.keep
            result.dead.extend(call.dead)
            current = call.outputs
        result.outputs = current
        return result

    def _expand_functional(
        self,
        inner: Mapping[str, Any],
        prefix: str,
        model_name: str,
        bound: Sequence[int] | None,
        depth: int,
    ) -> Expansion:
        for reserved in ("inputs", "outputs"):
            if reserved in inner:
                raise InvalidModelConfig(
                    f"Model `{model_name}` has a `{reserved}` key, which Keras cannot take beside "
                    f"`{reserved[:-1]}_layers`. Expected `input_layers` and `output_layers` only."
                )
        entries = self.read_entries(inner, prefix, model_name, functional=True)
        by_name = {entry.name: entry for entry in entries}
        input_refs = parse_refs(inner.get("input_layers"), "input_layers", model_name)
        output_refs = parse_refs(inner.get("output_layers"), "output_layers", model_name)
        if bound is not None and len(bound) != len(input_refs):
            raise InvalidModelConfig(
                f"Nested model `{model_name}` is called on {len(bound)} inputs. Expected "
                f"{len(input_refs)}."
            )
        model_inputs: dict[str, int] = {}
        for position, (name, node_index, tensor_index) in enumerate(input_refs):
            entry = by_name.get(name)
            if (
                entry is None
                or entry.class_name != "InputLayer"
                or (node_index, tensor_index) != (0, 0)
                or name in model_inputs
            ):
                raise InvalidModelConfig(
                    f"Model `{model_name}` lists {[name, node_index, tensor_index]} as input "
                    f"#{position + 1}. Expected [name, 0, 0] naming one of its InputLayers, "
                    "each once."
                )
            model_inputs[name] = position

        # (layer name, call index) -> output node ids of that call, by tensor index.
        produced: dict[tuple[str, int], list[int]] = {}
        expansions: dict[tuple[str, int], Expansion] = {}
        for entry in entries:
            if entry.class_name != "InputLayer":
                continue
            shape = input_layer_shape(entry.cfg, entry.qualified)
            slot = model_inputs.get(entry.name)
            if slot is not None and bound is not None:
                node_id = bound[slot]
                actual = self.nodes[node_id].output_shape
                if not compatible(shape, actual):
                    raise InvalidModelConfig(
                        f"Nested model `{model_name}` expects input `{entry.name}` of shape "
                        f"{format_shape(shape)}. Received {format_shape(actual)}."
                    )
            else:
                # An InputLayer that is not one of the model's inputs still exists in Keras;
                # a call that is kept and depends on it is refused below, as Keras refuses it.
                node_id = self.add_input(entry, shape)
            produced[(entry.name, 0)] = [node_id]
        input_ids = [produced[(ref[0], 0)][0] for ref in input_refs]

        # Every call of every layer, in config order (`functional_from_config` processes them
        # all, used or not, and a layer's calls strictly in order).
        pending: list[tuple[Entry, int, Call]] = []
        for entry in entries:
            if entry.class_name == "InputLayer":
                continue
            nodes_data = entry.cfg.get("inbound_nodes")
            if not isinstance(nodes_data, list):
                raise InvalidModelConfig(
                    f"Layer `{entry.qualified}` has no `inbound_nodes` list. Expected a "
                    "Functional model config written by Keras 3."
                )
            for index, node_data in enumerate(nodes_data):
                takes_mask = entry.is_model or entry.class_name in CALL_TAKES_MASK
                call = parse_call(
                    node_data,
                    entry.qualified,
                    takes_mask=takes_mask,
                    operation=is_operation(entry.cfg),
                )
                for ref_name, _, _ in call.refs:
                    if ref_name not in by_name:
                        raise InvalidModelConfig(
                            f"Layer `{entry.qualified}` is called on the output of "
                            f"`{ref_name}`, which is not a layer of model `{model_name}`."
                        )
                pending.append((entry, index, call))

        # Run each call once every call it consumes has run (Kahn's algorithm), and a layer's
        # calls in order (Keras builds a layer at its first call). Among ready calls the
        # earliest in config order goes first: Keras writes configs in topological order, so
        # this is the config order, and a shuffled config still costs O(n log n).
        missing: list[int] = []
        waiters: dict[tuple[str, int], list[int]] = {}
        ready: list[int] = []
        calls: dict[tuple[str, int], Call] = {}
        for position, (entry, index, call) in enumerate(pending):
            calls[(entry.name, index)] = call
            needed = {(ref[0], ref[1]) for ref in call.refs}
            if index > 0:
                needed.add((entry.name, index - 1))
            needed -= produced.keys()
            missing.append(len(needed))
            for wanted in needed:
                waiters.setdefault(wanted, []).append(position)
            if not needed:
                ready.append(position)
        heapq.heapify(ready)
        done = 0
        while ready:
            position = heapq.heappop(ready)
            entry, index, call = pending[position]
            args = [pick(produced, ref, prefix) for ref in call.refs]
            for arg, shape, ref in zip(args, call.shapes, call.refs, strict=True):
                inferred = self.nodes[arg].output_shape
                if not recorded_shape_agrees(shape, inferred):
                    # Either the config was edited by hand, or this analysis disagrees with
                    # Keras: both mean its numbers cannot be trusted, so refuse.
                    raise InvalidModelConfig(
                        f"Layer `{entry.qualified}` is called on the output of "
                        f"`{prefix + ref[0]}`, which Keras recorded with shape {shape!r} but "
                        f"which the analysis infers as {format_shape(inferred)}. Expected a "
                        "config written by Keras (model.to_json()) and not edited."
                    )
            expansion = self._call(entry, args, depth, as_list=call.as_list)
            produced[(entry.name, index)] = expansion.outputs
            expansions[(entry.name, index)] = expansion
            done += 1
            for waiter in waiters.pop((entry.name, index), ()):
                missing[waiter] -= 1
                if missing[waiter] == 0:
                    heapq.heappush(ready, waiter)
        if done < len(pending):
            stuck = sorted(f"`{prefix}{key[0]}` call {key[1]}" for key in waiters)
            raise InvalidModelConfig(
                f"Model `{model_name}` has layer calls whose inputs never become available "
                f"(a cycle or a missing call): {', '.join(stuck[:5])}."
            )

        outputs: list[int] = []
        output_calls: list[tuple[str, int]] = []
        for name, node_index, tensor_index in output_refs:
            entry = by_name.get(name)
            if entry is not None and entry.class_name in ("Functional", "Model"):
                # `functional_from_config.get_tensor`: a Functional layer's output reference
                # counts the node Keras creates with the model itself, so call k is k + 1.
                if node_index == 0:
                    raise InvalidModelConfig(
                        f"Model `{model_name}` lists [{name!r}, 0, {tensor_index}] as an output; "
                        f"for a nested Functional model Keras reads node 0 as its last call. "
                        f"Expected [{name!r}, k + 1, {tensor_index}] for its call k, as "
                        "model.to_json() writes it."
                    )
                node_index -= 1
            ref = (name, node_index, tensor_index)
            outputs.append(pick(produced, ref, prefix))
            output_calls.append((name, node_index))

        result = Expansion(
            inputs=list(input_ids) if bound is None else list(bound), outputs=outputs
        )
        # Keras keeps the calls some path joins to the outputs (`Functional.__init__`); a kept
        # nested model call keeps all of that model's own network.
        live: set[tuple[str, int]] = set()
        stack = list(output_calls)
        while stack:
            call_key = stack.pop()
            if call_key in live:
                continue
            live.add(call_key)
            entry = by_name[call_key[0]]
            if entry.class_name == "InputLayer":
                if entry.name not in model_inputs:
                    raise InvalidModelConfig(
                        f"Model `{model_name}` computes its outputs from InputLayer "
                        f"`{entry.qualified}`, which is not one of its inputs (Keras: graph "
                        "disconnected). Expected it in `input_layers`."
                    )
                continue
            expansion = expansions[call_key]
            result.keep |= expansion.keep
            result.dead.extend(expansion.dead)
            stack.extend((ref[0], ref[1]) for ref in calls[call_key].refs)
        live_names = {name for name, _ in live}
        for entry in entries:
            if entry.name not in live_names and entry.name not in model_inputs:
                result.dead.append(DeadLayer(entry.qualified, entry.class_name))
        return result


def synthesized_input(entries: Sequence[Entry], prefix: str, shape: Shape) -> Entry:
    """The InputLayer Keras adds to a Sequential model built without one.

    Keras does not list it among the model's layers and names it from a process-wide counter;
    the grader names it `input_layer` (or `input_layer_N`), never a name a listed layer has.
    """
    taken = {entry.name for entry in entries}
    name = "input_layer"
    suffix = 0
    while name in taken:
        suffix += 1
        name = f"input_layer_{suffix}"
    inner = {"name": name, "batch_shape": [None, *shape]}
    cfg = {"class_name": "InputLayer", "config": inner}
    return Entry(name, prefix + name, "InputLayer", cfg, inner, is_model=False)


def pick(produced: dict[tuple[str, int], list[int]], ref: tuple[str, int, int], prefix: str) -> int:
    name, node_index, tensor_index = ref
    outputs = produced.get((name, node_index))
    if outputs is None:
        raise InvalidModelConfig(
            f"Layer `{prefix + name}` has no call {node_index}; it is referenced as an input or "
            "output."
        )
    if not 0 <= tensor_index < len(outputs):
        raise InvalidModelConfig(
            f"Layer `{prefix + name}` call {node_index} has {len(outputs)} output(s); output "
            f"{tensor_index} is referenced."
        )
    return outputs[tensor_index]
