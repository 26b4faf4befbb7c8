"""A canonical fingerprint of a model's architecture, and how far apart two architectures are.

Two uploads of the same network should compare equal however the file was written: layer and
model names, the order in which parallel branches were defined, Sequential or Functional,
`Conv2D(..., activation="relu")` or `Conv2D(...)` followed by `ReLU()`, default arguments
written out or not (a Keras config always lists them all), JSON formatting. What a copy cannot
change without changing the network is kept: each call's layer class and hyperparameters, its
output shape, and which earlier calls feed it.

The canonical form is a sequence of tokens, one per layer call (an activation argument counts
as a call of its own), in an order that depends on the graph alone: a topological order whose
ties are broken by a structural hash of each call and everything before it. Each token names
its inputs by how many positions back they are. The fingerprint is a digest of the sequence;
the near-duplicate measure is the edit distance between two sequences (insert, delete or
change one call).

Framework-free: works on the `grader.graph.ModelGraph` built from the config, never on Keras.
"""

from __future__ import annotations

import hashlib
import heapq
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from grader.graph import ModelGraph, Shape

#: Config keys that do not change the network a config builds, or only its starting point.
IGNORED_KEYS = frozenset(
    {"name", "dtype", "trainable", "seed", "sparse", "ragged", "optional", "batch_shape"}
)
IGNORED_SUFFIXES = ("_initializer",)
#: Merges whose inputs commute: `Add([a, b])` is `Add([b, a])`.
COMMUTATIVE = frozenset({"Add", "Multiply", "Average", "Maximum", "Minimum"})
#: Layers that only apply an activation, and the activation they apply with default arguments.
ACTIVATION_LAYERS = {"ReLU": "relu", "Softmax": "softmax"}
#: The arguments shown in a canonical layer's one-line summary, in this order.
SUMMARY_KEYS = (
    "filters", "units", "kernel_size", "strides", "dilation_rate", "padding", "pool_size",
    "depth_multiplier", "rate", "activation",
)  # fmt: skip


@dataclass(frozen=True)
class CanonicalLayer:
    """One layer call in canonical form.

    Attributes:
        token: what identifies the call: class, hyperparameters, output shape, inputs.
        layer: the layer's name in the submission (display only; never compared).
        class_name: the Keras class (``Activation`` for an activation split off a layer).
        output_shape: the call's output shape, batch axis excluded.
        summary: its main hyperparameters in a few words, for people.
    """

    token: str
    layer: str
    class_name: str
    output_shape: Shape
    summary: str


@dataclass(frozen=True)
class Fingerprint:
    """A model's canonical layer sequence and its digest (equal digests: the same network)."""

    digest: str
    layers: tuple[CanonicalLayer, ...]

    @property
    def tokens(self) -> tuple[str, ...]:
        """The sequence compared by `edit_distance`."""
        return tuple(layer.token for layer in self.layers)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for a cache)."""
        return {
            "digest": self.digest,
            "layers": [
                {
                    "token": layer.token,
                    "layer": layer.layer,
                    "class_name": layer.class_name,
                    "output_shape": list(layer.output_shape),
                    "summary": layer.summary,
                }
                for layer in self.layers
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fingerprint:
        """The inverse of `to_dict`."""
        return cls(
            digest=str(data["digest"]),
            layers=tuple(
                CanonicalLayer(
                    token=str(row["token"]),
                    layer=str(row["layer"]),
                    class_name=str(row["class_name"]),
                    output_shape=tuple(row["output_shape"]),
                    summary=str(row["summary"]),
                )
                for row in data["layers"]
            ),
        )


@dataclass
class _Call:
    """A call before ordering: its identity without inputs, and its inputs (call indexes)."""

    local: str
    inputs: list[int]
    commutative: bool
    layer: str
    class_name: str
    output_shape: Shape
    summary: str


def _normalized(value: Any) -> Any:
    """A config value with the keys that do not shape the network removed, recursively."""
    if isinstance(value, Mapping):
        return {
            key: _normalized(item)
            for key, item in sorted(value.items())
            if key not in IGNORED_KEYS and not key.endswith(IGNORED_SUFFIXES)
        }
    if isinstance(value, list | tuple):
        return [_normalized(item) for item in value]
    return value


def _activation_name(value: Any) -> str | None:
    """The activation an `activation` argument applies (None for none or linear)."""
    if value is None:
        return None
    if isinstance(value, str):
        return None if value == "linear" else value
    return json.dumps(_normalized(value), sort_keys=True)


DEFAULT_ONE = frozenset({"strides", "dilation_rate", "depth_multiplier"})


def _summary(class_name: str, config: Mapping[str, Any]) -> str:
    parts = []
    for key in SUMMARY_KEYS:
        if key in config and config[key] not in (None, "linear"):
            value = config[key]
            if key in DEFAULT_ONE and value in ([1, 1], [1], 1):
                continue  # the default: only a value above 1 is worth a word
            if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
                value = "x".join(str(v) for v in value)
            parts.append(f"{key.replace('_', ' ')} {value}")
    return ", ".join(parts)


def _pure_activation(class_name: str, config: Mapping[str, Any]) -> str | None:
    """The activation a layer only applies (`Activation`, `ReLU()`, `Softmax()`), or None."""
    if class_name == "Activation":
        return _activation_name(config.get("activation")) or "linear"
    default = ACTIVATION_LAYERS.get(class_name)
    if default == "relu" and (
        config.get("max_value") is None
        and not config.get("negative_slope")
        and not config.get("threshold")
    ):
        return "relu"
    if default == "softmax" and config.get("axis", -1) == -1:
        return "softmax"
    return None


def _activation_call(activation: str, inputs: list[int], layer: str, shape: Shape) -> _Call:
    """An activation on its own: `ReLU()`, `Activation("relu")`, or split off `activation=`."""
    return _Call(
        local=f"Activation|{activation}|{list(shape)}",
        inputs=inputs,
        commutative=False,
        layer=layer,
        class_name="Activation",
        output_shape=shape,
        summary=activation,
    )


def _calls(graph: ModelGraph) -> tuple[list[_Call], dict[int, int]]:
    """The graph's calls with activations split off, inputs as indexes into the list; and for
    each graph node, the index of the call that produces its output."""
    calls: list[_Call] = []
    last_of: dict[int, int] = {}  # graph node id -> index of the call producing its output
    for node in graph.nodes:
        layer = node.layer
        inputs = [last_of[i] for i in node.inputs]
        if layer.class_name == "InputLayer" and inputs:
            last_of[node.id] = inputs[0]  # a nested model's input, wired through
            continue
        config = dict(layer.config)
        shape = tuple(node.output_shape)
        activation = _pure_activation(layer.class_name, config)
        if activation is not None:
            calls.append(_activation_call(activation, inputs, layer.name, shape))
            last_of[node.id] = len(calls) - 1
            continue
        split = _activation_name(config.get("activation"))
        if "activation" in config:
            config["activation"] = "linear"
        args = json.dumps(_normalized(config), sort_keys=True, separators=(",", ":"))
        frozen = "" if layer.trainable else "|frozen"
        calls.append(
            _Call(
                local=f"{layer.class_name}|{args}|{list(shape)}{frozen}",
                inputs=inputs,
                commutative=layer.class_name in COMMUTATIVE,
                layer=layer.name,
                class_name=layer.class_name,
                output_shape=shape,
                summary=_summary(layer.class_name, layer.config),
            )
        )
        if split is not None:
            calls.append(_activation_call(split, [len(calls) - 1], layer.name, shape))
        last_of[node.id] = len(calls) - 1
    return calls, last_of


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def fingerprint_graph(graph: ModelGraph) -> Fingerprint:
    """The canonical fingerprint of an analysed model (`grader.graph_builder.build_graph`)."""
    calls, last_of = _calls(graph)
    # A structural hash per call: its own token and its inputs' hashes (sorted for merges
    # whose inputs commute). Equal hashes: equal sub-networks, whatever their names.
    hashes: list[str] = []
    for call in calls:
        feeding = [hashes[i] for i in call.inputs]
        if call.commutative:
            feeding.sort()
        hashes.append(_digest(call.local + "<" + ",".join(feeding)))
    consumers: dict[int, list[int]] = {}
    waiting = [len(call.inputs) for call in calls]
    for index, call in enumerate(calls):
        for producer in call.inputs:
            consumers.setdefault(producer, []).append(index)
    ready = [(hashes[i], i) for i, call in enumerate(calls) if not call.inputs]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        _, index = heapq.heappop(ready)
        order.append(index)
        for consumer in consumers.get(index, ()):
            waiting[consumer] -= 1
            if waiting[consumer] == 0:
                heapq.heappush(ready, (hashes[consumer], consumer))
    position = {index: p for p, index in enumerate(order)}
    layers = []
    for p, index in enumerate(order):
        call = calls[index]
        back = [p - position[i] for i in call.inputs]
        if call.commutative:
            back.sort()
        token = call.local + ("<" + ",".join(map(str, back)) if back else "")
        layers.append(
            CanonicalLayer(
                token=token,
                layer=call.layer,
                class_name=call.class_name,
                output_shape=call.output_shape,
                summary=call.summary,
            )
        )
    outputs = sorted(position[last_of[o]] for o in graph.outputs)
    digest = _digest("\n".join(layer.token for layer in layers) + f"\n->{outputs}")
    return Fingerprint(digest=digest, layers=tuple(layers))


def fingerprint(config: Mapping[str, Any]) -> Fingerprint:
    """The canonical fingerprint of a Keras model config.

    Raises:
        GraderError: the config cannot be analysed (as `grader.graph_builder.build_graph`).
    """
    from grader.graph_builder import build_graph

    return fingerprint_graph(build_graph(config))


def token_difference(a: Sequence[str], b: Sequence[str]) -> int:
    """A lower bound of `edit_distance(a, b)` from the tokens' counts alone (cheap)."""
    first, second = Counter(a), Counter(b)
    return max(sum((first - second).values()), sum((second - first).values()))


def edit_distance(a: Sequence[str], b: Sequence[str], *, limit: int | None = None) -> int | None:
    """Levenshtein distance between two token sequences (insert, delete, substitute: 1 each).

    Args:
        a: one canonical sequence (`Fingerprint.tokens`).
        b: the other.
        limit: stop early and return None once the distance is certainly above it.

    Returns:
        The distance, or None when it exceeds `limit`.
    """
    if limit is not None and (abs(len(a) - len(b)) > limit or token_difference(a, b) > limit):
        return None
    previous = list(range(len(b) + 1))
    for i, token in enumerate(a, start=1):
        current = [i] + [0] * len(b)
        for j, other in enumerate(b, start=1):
            current[j] = min(
                previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (token != other)
            )
        if limit is not None and min(current) > limit:
            return None
        previous = current
    distance = previous[-1]
    return None if limit is not None and distance > limit else distance


def similarity(a: Sequence[str], b: Sequence[str]) -> float:
    """1 minus the edit distance over the longer length: 1.0 for the same network."""
    longest = max(len(a), len(b))
    if longest == 0:
        return 1.0
    distance = edit_distance(a, b)
    assert distance is not None  # no limit given
    return 1.0 - distance / longest


def near_duplicate_limit(length: int) -> int:
    """The most edits two sequences of about `length` calls may differ by and still be near
    duplicates: one per ten calls, at least one."""
    return max(1, length // 10)


def alignment(a: Sequence[str], b: Sequence[str]) -> list[tuple[str, int | None, int | None]]:
    """A minimal edit script pairing the calls of `a` and `b`, for a side-by-side view.

    Returns:
        Rows `(op, i, j)`: ``equal`` and ``change`` pair `a[i]` with `b[j]`; ``delete`` has
        only `i` (a call only `a` has), ``insert`` only `j`.
    """
    n, m = len(a), len(b)
    table = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        table[i][0] = i
    for j in range(m + 1):
        table[0][j] = j
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            table[i][j] = min(
                table[i - 1][j] + 1,
                table[i][j - 1] + 1,
                table[i - 1][j - 1] + (a[i - 1] != b[j - 1]),
            )
    rows: list[tuple[str, int | None, int | None]] = []
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0 and table[i][j] == table[i - 1][j - 1] + (a[i - 1] != b[j - 1]):
            rows.append(("equal" if a[i - 1] == b[j - 1] else "change", i - 1, j - 1))
            i, j = i - 1, j - 1
        elif i > 0 and table[i][j] == table[i - 1][j] + 1:
            rows.append(("delete", i - 1, None))
            i -= 1
        else:
            rows.append(("insert", None, j - 1))
            j -= 1
    rows.reverse()
    return rows
