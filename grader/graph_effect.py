"""Which layer calls can change a model's output, and which sit on paths that cannot.

A call *influences the output* when its output depends on the model's input (the image) and some
path from it to a model output lets that dependence through. Some configurations make a tensor
constant, whatever the image:

- from the architecture alone (provably, the answer is ``NO``): ``Rescaling(scale=0)``,
  ``ReLU(max_value=0)`` without a negative slope, a softmax over an axis of size 1, a
  ``LayerNormalization`` over axes of size 1, an empty tensor, ``Subtract`` of a tensor and
  itself, a ``Multiply`` with a constant zero;
- from weights the training will (or a stored archive may not) set to zero (``MAYBE``: the
  architecture cannot tell): a data-path weight constrained to norm 0 (``MaxNorm``/``MinMaxNorm``
  with ``max_value <= 0``), a frozen layer whose data-path weight is initialized to zero, a
  ``Multiply``/``Maximum``/``Minimum`` with a constant whose value is a weight.

Everything reachable only through such a path cannot change the output: a rule counts it for
nothing (``NO``), or cannot count it as computing (``MAYBE``); see `grader.rules`. Values that
make a path inert only in practice (a ReLU whose bias keeps it below zero, a huge
``Maximum`` constant learnt by training) are not detected: they depend on trained values.

    influence = output_influence(graph)
    influence.state(node_id)        # Effect.YES / MAYBE / NO
    influence.reason(node_id)       # why not YES, naming the layer responsible
    influence.live_nodes()          # the calls proven to influence the output
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from grader.config_zeros import (
    is_zero,
    numbers_in,
    show_value,
    zero_initializer,
    zeroing_constraint,
)
from grader.graph import ModelGraph, Node
from grader.layers import get_spec
from grader.layers.base import NO_ZERO_RULE, Zeros


class Effect(enum.IntEnum):
    """Whether something holds: provably not, cannot tell from the architecture, or yes.

    Ordered so that ``min`` is "and" and ``max`` is "or" along paths.
    """

    NO = 0
    MAYBE = 1
    YES = 2


@dataclass(frozen=True)
class CallEffect:
    """Whether one call influences the model's output.

    Attributes:
        state: ``YES`` (some path lets its dependence on the image through), ``NO`` (provably
            not) or ``MAYBE`` (only if weights the architecture does not fix are non-zero).
        reason: for ``NO`` and ``MAYBE``, a clause naming the layer responsible, e.g.
            "`mul` (Multiply) multiplies it by a constant zero (...)"; None for ``YES``.
    """

    state: Effect
    reason: str | None = None


@dataclass(frozen=True)
class OutputInfluence:
    """The `CallEffect` of every call of a graph, by node id."""

    calls: Mapping[int, CallEffect]

    def state(self, node_id: int) -> Effect:
        """Whether the call `node_id` influences the output."""
        return self.calls[node_id].state

    def reason(self, node_id: int) -> str | None:
        """Why the call `node_id` does not (or may not) influence the output; None when it does."""
        return self.calls[node_id].reason

    def live_nodes(self) -> frozenset[int]:
        """Calls proven to influence the output (``YES``)."""
        return frozenset(i for i, c in self.calls.items() if c.state is Effect.YES)

    def dead_nodes(self) -> frozenset[int]:
        """Calls proven unable to change the output (``NO``)."""
        return frozenset(i for i, c in self.calls.items() if c.state is Effect.NO)

    def undecided_nodes(self) -> frozenset[int]:
        """Calls that influence the output only if some weight is non-zero (``MAYBE``)."""
        return frozenset(i for i, c in self.calls.items() if c.state is Effect.MAYBE)


class _Value(enum.Enum):
    """What is known of a constant tensor's value: zero everywhere, or some constant."""

    ZERO = "zero"
    CONSTANT = "constant"


@dataclass(frozen=True)
class _Gate:
    """How a layer lets its inputs through, from its own config alone."""

    passes: Effect
    value: _Value | None = None  # for passes == NO: the constant it outputs
    why: str | None = None  # for passes != YES: a sentence about the layer


def output_influence(graph: ModelGraph) -> OutputInfluence:
    """Decide, for every call of `graph`, whether it can change the model's output.

    A call influences the output when its output depends on a model input and some path from it
    to a model output lets that dependence through. Input calls count as depending on the input.

    Args:
        graph: the flattened model graph (`grader.graph_builder.build_graph`).

    Returns:
        The `OutputInfluence` of every node, with a reason for each one that is not ``YES``.
    """
    nodes = graph.nodes
    depends: dict[int, Effect] = {}
    depends_why: dict[int, str | None] = {}
    value: dict[int, _Value] = {}
    passes: dict[int, list[tuple[Effect, str | None]]] = {}  # per input slot
    input_ids = set(graph.inputs)

    for node in nodes:
        if node.id in input_ids or not node.inputs:
            depends[node.id] = Effect.YES if node.id in input_ids else Effect.NO
            depends_why[node.id] = None if node.id in input_ids else _label(node) + " has no input"
            value.setdefault(node.id, _Value.CONSTANT)
            passes[node.id] = []
            continue
        gate = _gate(node)
        slots = _merge_passes(node, depends, value, depends_why)
        slot_passes = [_weaker((gate.passes, gate.why), slot) for slot in slots]
        passes[node.id] = slot_passes
        best: tuple[Effect, str | None] | None = None
        for producer, (passing, why) in zip(node.inputs, slot_passes, strict=True):
            state = min(depends[producer], passing)
            # The reason is whichever is weaker: the path into this call, or the call itself.
            reason = why if passing < depends[producer] else depends_why[producer]
            if best is None or state > best[0]:
                best = (state, reason)
        assert best is not None  # the node has inputs
        depends[node.id] = best[0]
        depends_why[node.id] = None if best[0] is Effect.YES else best[1]
        if best[0] is Effect.NO:
            value[node.id] = _constant_value(node, gate, value)

    influences: dict[int, Effect] = {}
    influences_why: dict[int, str | None] = {}
    output_ids = set(graph.outputs)
    for node in reversed(nodes):
        if node.id in output_ids:
            influences[node.id], influences_why[node.id] = Effect.YES, None
            continue
        strongest: Effect | None = None
        reasons: list[str] = []  # why each path at the strongest state falls short of YES
        for consumer in graph.consumers(node.id):
            for slot, producer in enumerate(consumer.inputs):
                if producer != node.id:
                    continue
                passing, why = passes[consumer.id][slot]
                onward = influences[consumer.id]
                state = min(passing, onward)
                reason = why if passing < onward else influences_why[consumer.id]
                if strongest is None or state > strongest:
                    strongest, reasons = state, []
                if state == strongest and reason is not None:
                    reasons.append(reason)
        if strongest is None:
            strongest, reasons = Effect.NO, ["it is not connected to the model's output"]
        influences[node.id] = strongest
        influences_why[node.id] = None if strongest is Effect.YES else _join(reasons)

    calls: dict[int, CallEffect] = {}
    for node in nodes:
        dep, inf = depends[node.id], influences[node.id]
        if dep is Effect.YES and inf is Effect.YES:
            calls[node.id] = CallEffect(Effect.YES)
        elif dep <= inf:
            calls[node.id] = CallEffect(dep, _as_clause(node, dep, depends_why[node.id]))
        else:
            calls[node.id] = CallEffect(inf, influences_why[node.id])
    return OutputInfluence(calls)


def _as_clause(node: Node, state: Effect, why: str | None) -> str:
    """Why a call's output does not (or may not) depend on the image, as a clause."""
    if why is None:  # pragma: no cover - every NO/MAYBE dependence records a reason
        why = "the grader found no path from the image"
    if why.startswith(_label(node)):
        return why  # the call itself makes its output constant
    may = "may not depend" if state is Effect.MAYBE else "does not depend"
    return f"its input {may} on the image: {why}"


def _join(reasons: list[str]) -> str:
    """Distinct reasons, leaving out one that another already quotes."""
    unique = list(dict.fromkeys(reasons))
    kept = [r for r in unique if not any(r != other and r in other for other in unique)]
    return "; ".join(kept)


def _weaker(
    a: tuple[Effect, str | None], b: tuple[Effect, str | None]
) -> tuple[Effect, str | None]:
    return a if a[0] < b[0] else b


def _label(node: Node) -> str:
    return f"`{node.layer.name}` ({node.layer.class_name})"


# --- merges ----------------------------------------------------------------------------------


def _merge_passes(
    node: Node,
    depends: Mapping[int, Effect],
    value: Mapping[int, _Value],
    depends_why: Mapping[int, str | None],
) -> list[tuple[Effect, str | None]]:
    """How a merge lets each of its inputs through, given what its other inputs are."""
    cls = node.layer.class_name
    n = len(node.inputs)
    if cls == "Subtract" and n == 2 and node.inputs[0] == node.inputs[1]:
        why = f"{_label(node)} subtracts a tensor from itself: it outputs 0 whatever its input"
        return [(Effect.NO, why)] * n
    if cls not in ("Multiply", "Maximum", "Minimum"):
        return [(Effect.YES, None)] * n
    out: list[tuple[Effect, str | None]] = []
    for slot in range(n):
        result: tuple[Effect, str | None] = (Effect.YES, None)
        for other_slot, other in enumerate(node.inputs):
            if other_slot == slot or other == node.inputs[slot]:
                continue
            result = _weaker(result, _kill(node, cls, other, depends, value, depends_why))
        out.append(result)
    return out


def _kill(
    node: Node,
    cls: str,
    other: int,
    depends: Mapping[int, Effect],
    value: Mapping[int, _Value],
    depends_why: Mapping[int, str | None],
) -> tuple[Effect, str | None]:
    """Whether merging with input `other` still lets another input through."""
    state = depends[other]
    if state is Effect.YES:
        return Effect.YES, None
    source = depends_why[other] or "it does not depend on the image"
    if state is Effect.NO and value.get(other) is _Value.ZERO:
        if cls == "Multiply":
            return Effect.NO, f"{_label(node)} multiplies it by a constant zero ({source})"
        return Effect.YES, None  # max(x, 0), min(x, 0): x still shows through
    what = "multiplies it by" if cls == "Multiply" else "compares it with"
    constant = "a constant" if state is Effect.NO else "what may be a constant"
    return (
        Effect.MAYBE,
        f"{_label(node)} {what} {constant} whose value the grader cannot tell ({source})",
    )


# --- layers that output constants ------------------------------------------------------------


def _gate(node: Node) -> _Gate:
    """How `node`'s layer lets its input through, from its config alone."""
    layer, label = node.layer, _label(node)
    config = layer.config
    cls = layer.class_name
    if any(d == 0 for d in node.output_shape):
        return _Gate(Effect.NO, _Value.ZERO, f"{label} outputs an empty tensor")
    if cls == "Rescaling":
        scale = numbers_in(config.get("scale", 1.0))
        if scale is not None and scale and all(s == 0 for s in scale):
            offset = numbers_in(config.get("offset", 0.0))
            zero = offset is not None and all(o == 0 for o in offset)
            shown = show_value(config.get("offset", 0.0))
            return _Gate(
                Effect.NO,
                _Value.ZERO if zero else _Value.CONSTANT,
                f"{label} has scale {show_value(config.get('scale'))}: it outputs {shown} whatever "
                "its input",
            )
    if (
        cls == "ReLU"
        and is_zero(config.get("max_value"))
        and is_zero(config.get("negative_slope", 0.0))
    ):
        return _Gate(
            Effect.NO, _Value.ZERO, f"{label} has max_value 0: it outputs 0 whatever its input"
        )
    softmax = _softmax_constant(node)
    if softmax is not None:
        return softmax
    if cls == "LayerNormalization" and not config.get("rms_scaling", False):
        sizes = _axis_sizes(node, config.get("axis", -1))
        if sizes is not None and math.prod(sizes) == 1:
            center = config.get("center", True) is not False
            return _Gate(
                Effect.NO,
                _Value.CONSTANT if center else _Value.ZERO,
                f"{label} normalizes over axes of size 1: it outputs "
                f"{'its `beta`' if center else '0'} whatever its input",
            )
    return _weight_gate(node)


def _zeros(class_name: str) -> Zeros:
    """What calls of `class_name` do with zeros: its layer record (`grader.layers`)."""
    spec = get_spec(class_name)
    return spec.zeros if spec is not None and spec.zeros is not None else NO_ZERO_RULE


def _weight_gate(node: Node) -> _Gate:
    layer, label = node.layer, _label(node)
    config = layer.config
    for weight in _zeros(layer.class_name).data_weights:
        if weight == "gamma" and config.get("scale", True) is False:
            continue  # no gamma: nothing to zero
        constraint = config.get(f"{weight}_constraint")
        described = zeroing_constraint(constraint)
        if described is not None:
            return _Gate(
                Effect.MAYBE,
                why=f"{label} has `{weight}_constraint` {described}: training sets its "
                f"{weight} weights to zero, and then it outputs a constant whatever its input",
            )
        if not layer.trainable and zero_initializer(config.get(f"{weight}_initializer")):
            return _Gate(
                Effect.MAYBE,
                why=f"{label} is frozen (trainable=False) with a zero `{weight}_initializer`: "
                f"unless trained weights are loaded, its {weight} weights stay zero and it "
                "outputs a constant whatever its input",
            )
    return _Gate(Effect.YES)


def _softmax_constant(node: Node) -> _Gate | None:
    """A softmax over an axis of size 1 outputs 1 (log-softmax 0), whatever its input."""
    layer, label = node.layer, _label(node)
    config = layer.config
    if layer.class_name == "Softmax":
        sizes = _axis_sizes(node, config.get("axis", -1))
        if sizes is not None and math.prod(sizes) == 1:
            return _Gate(
                Effect.NO,
                _Value.CONSTANT,
                f"{label} applies softmax over an axis of size 1: it outputs 1 whatever its input",
            )
        return None
    activation = _activation(config)
    if activation in ("softmax", "log_softmax") and node.output_shape[-1:] == (1,):
        one = activation == "softmax"
        return _Gate(
            Effect.NO,
            _Value.CONSTANT if one else _Value.ZERO,
            f"{label} applies {activation} over its last axis, of size 1: it outputs "
            f"{1 if one else 0} whatever its input",
        )
    return None


def _axis_sizes(node: Node, axis: Any) -> list[int] | None:
    """Sizes of `axis` (Keras' axes: 0 is the batch) of the node's first input, when known."""
    if not node.input_shapes:
        return None
    shape = node.input_shapes[0]
    full = len(shape) + 1
    axes = axis if isinstance(axis, list | tuple) else [axis]
    sizes = []
    for a in axes:
        if not isinstance(a, int) or isinstance(a, bool) or not -full <= a < full or a % full == 0:
            return None
        size = shape[a % full - 1]
        if size is None:
            return None
        sizes.append(size)
    return sizes


def _constant_value(node: Node, gate: _Gate, value: Mapping[int, _Value]) -> _Value:
    """The value of a call whose output does not depend on the image."""
    if gate.passes is Effect.NO and gate.value is not None:
        return gate.value
    inputs = [value.get(i, _Value.CONSTANT) for i in node.inputs]
    cls = node.layer.class_name
    if cls == "Multiply" and _Value.ZERO in inputs:
        return _Value.ZERO
    if cls == "Subtract" and len(node.inputs) == 2 and node.inputs[0] == node.inputs[1]:
        return _Value.ZERO
    if inputs and all(v is _Value.ZERO for v in inputs) and _zero_preserving(node):
        return _Value.ZERO
    return _Value.CONSTANT


# Activations with f(0) = 0.
_ZERO_ACTIVATIONS = frozenset(
    {
        None,
        "linear",
        "relu",
        "relu6",
        "leaky_relu",
        "elu",
        "selu",
        "gelu",
        "silu",
        "swish",
        "tanh",
        "mish",
        "softsign",
        "hard_silu",
        "hard_swish",
        "celu",
        "hard_tanh",
    }
)


def _activation(config: Mapping[str, Any]) -> str | None:
    """The name of a layer's activation: a name, or a serialized built-in function's name.

    Anything else is returned as ``"?"``, an activation the grader does not know.
    """
    value = config.get("activation")
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Mapping) and isinstance(value.get("config"), str):
        return str(value["config"])
    return "?"


def _zero_preserving(node: Node) -> bool:
    config, cls = node.layer.config, node.layer.class_name
    if _activation(config) not in _ZERO_ACTIVATIONS:
        return False
    if _zeros(cls).preserves_zero or cls == "Activation":
        return True
    if cls == "ReLU":
        return is_zero(config.get("threshold", 0.0)) or is_zero(config.get("negative_slope", 0.0))
    return _zeros(cls).linear and config.get("use_bias", True) is False
