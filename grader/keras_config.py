"""How Keras 3 reads a model config: the keys it honours, layer names, references and calls.

The trainer rebuilds a submission with ``keras.saving.deserialize_keras_object(config,
safe_mode=True)``; the grader must read the same config by the same rules, or it describes
another network than the one trained. Those rules differ between the two model classes
(``keras/src/models/sequential.py`` ``Sequential.from_config``, ``keras/src/models/functional.py``
``functional_from_config``, ``keras/src/saving/serialization_lib.py``
``deserialize_keras_object``):

- A Functional model refers to its layers by each entry's top-level ``name``; the layer itself is
  named by ``config.name``. A Sequential model ignores the top-level ``name`` and
  ``inbound_nodes``: every entry is a new layer, called on the previous one's output.
- ``build_config`` builds a layer with its ``input_shape`` before any call; an entry without
  ``module`` is read by Keras' legacy (Keras 2) rules; ``shared_object_id`` makes two entries one
  layer when a ``.keras`` archive is loaded.

The functions here read those keys and refuse (`InvalidModelConfig`, naming the entry and the
key) every config on which the grader and Keras could disagree, before any sandbox time. Keys
Keras itself ignores are ignored here too. Nothing here imports Keras.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from grader.errors import InvalidModelConfig, UnsupportedLayer
from grader.graph import Shape
from grader.layers import REGISTRY

#: The model classes Keras rebuilds from a config (nested ones included).
MODEL_CLASSES = frozenset({"Functional", "Sequential", "Model"})

# What `model.to_json()` writes, offered to students in refusals.
WRITE_WITH_KERAS = "Expected a config written by Keras 3 (`model.to_json()` or `model.save()`)"

# Call arguments Keras records and overrides when the model runs: `{"training": false}` (on any
# layer) and `{"mask": null}` (on models and the layers whose `call` takes a mask; the others
# make Keras fail). Any other keyword changes what the call computes, or makes Keras fail.
# From the layer records (`LayerSpec.call_takes_mask`).
CALL_TAKES_MASK = frozenset(name for name, spec in REGISTRY.items() if spec.call_takes_mask)

# Keys of an InputLayer config that give its shape (`InputLayer.__init__`: `input_shape` and
# `batch_input_shape` silently override `shape` and `batch_shape`, so only one may be given).
_INPUT_SHAPE_KEYS = ("batch_shape", "shape", "batch_input_shape", "input_shape")

# Keys of a non-input layer's config that declare an input: `Layer.__init__` keeps `input_shape`
# and `input_dim` for `Sequential.add` (first layer only) and refuses the two batch spellings.
_LAYER_INPUT_KEYS = ("input_shape", "input_dim", "batch_input_shape", "batch_shape")

Ref = tuple[str, int, int]


def where(name: str | None, class_name: Any, position: int, model_name: str) -> str:
    """How a message names an entry: by name when it has one, else by position."""
    if name:
        return f"Layer `{name}` ({class_name})"
    return f"Layer #{position + 1} ({class_name}) of model `{model_name}`"


# -- objects and entries ---------------------------------------------------------------------------


def check_object_keys(obj: Mapping[str, Any], what: str, *, leaf: bool) -> None:
    """Refuse the object-level keys whose effect Keras honours but the grader does not model.

    `deserialize_keras_object` reads ``module`` (an object without it goes through Keras 2's
    legacy reader, with its own rewriting of keys), ``shared_object_id`` (when a ``.keras``
    archive is loaded, an entry carrying the id of an earlier one *is* that earlier layer) and
    ``compile_config`` (compiles the object; a plain layer cannot be compiled, so Keras fails).

    Args:
        obj: a model config or a layer entry.
        what: how messages name it ("Layer `conv` (Conv2D)").
        leaf: True for a layer that is not a model.
    """
    module = obj.get("module")
    if module is None:
        raise InvalidModelConfig(
            f"{what} has no `module` key, so Keras would read it with its legacy (Keras 2) "
            f"rules, or not at all. {WRITE_WITH_KERAS}, whose every object has `module`, e.g. "
            "'keras.layers'."
        )
    if "shared_object_id" in obj:
        raise InvalidModelConfig(
            f"{what} has `shared_object_id`: when Keras loads a `.keras` archive, entries with the "
            "same id are one layer, whatever their names. Expected each layer listed once, "
            "without `shared_object_id`; call a layer several times to share it."
        )
    if leaf and obj.get("compile_config"):
        raise leaf_compile_config_refusal(what)


def leaf_compile_config_refusal(what: str) -> InvalidModelConfig:
    """The refusal of a non-empty ``compile_config`` on a layer that is not a model.

    Args:
        what: how the message names the layer ("Layer `conv` (Conv2D)").

    Returns:
        The error to raise (the allow-list of `grader.layer_arguments` raises it too).
    """
    return InvalidModelConfig(
        f"{what} has a `compile_config`; Keras compiles models only and fails on a layer. "
        "Expected no `compile_config` on a layer."
    )


def entry_config(entry: Any, position: int, model_name: str) -> dict[str, Any]:
    """The ``config`` object of a layer entry, checked to be one."""
    if not isinstance(entry, dict):
        raise InvalidModelConfig(
            f"Model `{model_name}` lists {entry!r} as layer #{position + 1}. Expected a layer "
            "config object."
        )
    class_name = entry.get("class_name")
    if not isinstance(class_name, str):
        raise InvalidModelConfig(
            f"Layer #{position + 1} of model `{model_name}` has class_name {class_name!r}. "
            "Expected a string such as 'Conv2D'."
        )
    inner = entry.get("config")
    if not isinstance(inner, dict):
        raise InvalidModelConfig(
            f"{where(None, class_name, position, model_name)} has config {inner!r}. Expected "
            "an object."
        )
    return inner


def check_name(name: Any, what: str) -> str:
    """A layer or model name as Keras accepts it (`Operation.__init__`), non-empty."""
    if not isinstance(name, str) or not name:
        raise InvalidModelConfig(f"{what} has name {name!r}. Expected a non-empty string.")
    if "/" in name:
        # Keras refuses it too; the grader also uses `outer/inner` for nested layers.
        raise InvalidModelConfig(
            f"{what} has name {name!r}. Expected a name without `/` (Keras refuses it)."
        )
    return name


def entry_name(
    entry: Mapping[str, Any], position: int, model_name: str, *, functional: bool
) -> str:
    """The name of a layer entry, refusing entries whose two names could disagree.

    Keras names the layer by ``config.name`` (a missing one is generated, differently in every
    process). A Functional model also indexes its entries by the top-level ``name``, which every
    reference uses, so the two must be the same; a Sequential model ignores the top-level
    ``name``, which is refused unless it is the same too.
    """
    class_name = entry.get("class_name")
    inner = entry["config"]
    config_name = inner.get("name")
    label = where(None, class_name, position, model_name)
    if config_name is None:
        raise InvalidModelConfig(
            f"{label} has no `config.name`; Keras would invent one. Expected every layer named, "
            "as model.to_json() writes it."
        )
    name = check_name(config_name, label)
    if "name" not in entry:
        if functional:
            raise InvalidModelConfig(
                f"Layer `{name}` ({class_name}) of Functional model `{model_name}` has no "
                f"top-level `name`, by which Keras finds the layers a model's calls refer to. "
                f'Expected `"name": "{name}"` beside `config`.'
            )
        return name
    if entry["name"] != name:
        how = (
            "refers to it by the top-level name and names it by `config.name`"
            if functional
            else "ignores the top-level name in a Sequential model: it is a new layer named "
            f"`{name}`"
        )
        raise InvalidModelConfig(
            f"Layer `{name}` ({class_name}) of model `{model_name}` is listed under the "
            f"top-level name {entry['name']!r}: Keras {how}. Expected both names to be the "
            "same, as model.to_json() writes them."
        )
    return name


def trainable_flag(inner: Mapping[str, Any], what: str) -> bool:
    """A ``trainable`` value: true or false (Keras refuses anything else on a layer)."""
    value = inner.get("trainable", True)
    if value is None:
        return True
    if type(value) is not bool:
        raise InvalidModelConfig(f"{what} has trainable={value!r}. Expected true or false.")
    return value


def as_shape(raw: Any, what: str) -> Shape:
    """A shape (batch axis excluded) as a tuple of non-negative ints or None."""
    if not isinstance(raw, (list, tuple)) or not all(
        d is None or (type(d) is int and d >= 0) for d in raw
    ):
        raise InvalidModelConfig(
            f"Expected the shape of {what} as a list of non-negative ints or nulls. Received "
            f"{raw!r}."
        )
    return tuple(raw)


def batch_dropped(raw: Any, what: str) -> Shape:
    """A shape with its batch axis (``[null, 32, 32, 3]``), returned without it."""
    if not isinstance(raw, (list, tuple)) or not raw:
        raise InvalidModelConfig(
            f"Expected the shape of {what} with its batch axis, such as [null, 32, 32, 3]. "
            f"Received {raw!r}."
        )
    as_shape(raw[:1], what)
    return as_shape(raw[1:], what)


def input_layer_shape(entry: Mapping[str, Any], name: str) -> Shape:
    """The shape an InputLayer entry declares, read as `InputLayer.__init__` does.

    Refuses two shape keys at once (Keras lets ``input_shape`` and ``batch_input_shape`` win
    silently, or fails), an ``input_tensor``, and sparse, ragged or optional inputs.
    """
    inner = entry.get("config") or {}
    what = f"InputLayer `{name}`"
    given = [key for key in _INPUT_SHAPE_KEYS if key in inner]
    if len(given) != 1:
        listed = " and ".join(f"`{key}`" for key in given) or "none of them"
        raise InvalidModelConfig(
            f"{what} gives {listed}. Expected exactly one of `batch_shape` or `shape`, as "
            "keras.Input(shape=...) writes it."
        )
    key = given[0]
    raw = inner[key]
    if key.startswith("batch"):
        if inner.get("batch_size") is not None:
            raise InvalidModelConfig(
                f"{what} gives both `{key}` and `batch_size`, which Keras refuses. Expected "
                "`batch_shape` only."
            )
        shape = batch_dropped(raw, what)
    else:
        shape = as_shape(raw, what)
    for flag in ("sparse", "ragged", "optional"):
        if inner.get(flag):
            raise InvalidModelConfig(
                f"{what} has {flag}={inner[flag]!r}. Expected a dense image input ({flag}=false)."
            )
    if inner.get("input_tensor") is not None:
        raise InvalidModelConfig(
            f"{what} has an `input_tensor`. Expected keras.Input(shape=...) without one."
        )
    if entry.get("inbound_nodes"):
        raise InvalidModelConfig(
            f"{what} has calls in `inbound_nodes`; an input layer is never called. Expected "
            "`inbound_nodes: []`."
        )
    return shape


def declared_input(inner: Mapping[str, Any], name: str, *, first: bool) -> Shape | None:
    """The input shape a non-input layer's config declares (``input_shape`` or ``input_dim``).

    `Sequential.add` turns it into an InputLayer for the first layer of a Sequential model and
    Keras ignores it anywhere else, so it is refused anywhere else (``batch_input_shape`` and
    ``batch_shape`` make Keras fail everywhere).
    """
    # `Layer.__init__` pops `input_dim`, and `input_shape` only when `input_dim` is None; any
    # key left over (even a null one) makes it fail, as do both batch spellings.
    given = [
        key
        for key in _LAYER_INPUT_KEYS
        if inner.get(key) is not None or (key.startswith("batch") and key in inner)
    ]
    if not given:
        return None
    what = f"Layer `{name}`"
    both = inner.get("input_dim") is not None and "input_shape" in inner
    if not first or both or any(key.startswith("batch") for key in given):
        raise InvalidModelConfig(
            f"{what} has `{'`, `'.join(given)}`, which Keras ignores or refuses here. Expected "
            "the input shape on an InputLayer first in the model (keras.Input(shape=...))."
        )
    if inner.get("input_dim") is not None:
        return as_shape([inner["input_dim"]], what)
    return as_shape(inner["input_shape"], what)


def build_shapes(
    entry: Mapping[str, Any], name: str, class_name: str, *, multi_input: bool
) -> list[Shape] | None:
    """The input shapes a leaf layer's ``build_config`` builds it with, before any call.

    `deserialize_keras_object` calls ``build_from_config`` when ``build_config`` is truthy, then
    marks the layer built whatever that did: a config without ``input_shape`` leaves a layer
    "built" without weights. So only an absent or empty one, or ``{"input_shape": ...}``, is read.

    Returns:
        None when the entry has no build config; else the input shapes, batch axes dropped.
    """
    build_config = entry.get("build_config")
    if not build_config:
        return None
    what = f"Layer `{name}` ({class_name})"
    if not isinstance(build_config, dict) or set(build_config) != {"input_shape"}:
        raise InvalidModelConfig(
            f'{what} has build_config {build_config!r}. Expected {{"input_shape": [...]}}, '
            "as model.to_json() writes it, or none."
        )
    raw = build_config["input_shape"]
    where_ = f"the build_config of `{name}`"
    if multi_input:
        if not isinstance(raw, list) or not raw or not all(isinstance(s, list) for s in raw):
            raise InvalidModelConfig(
                f"{what} has build_config input_shape {raw!r}. Expected a list of shapes, one "
                "per input."
            )
        return [batch_dropped(s, where_) for s in raw]
    return [batch_dropped(raw, where_)]


# -- references and calls --------------------------------------------------------------------------


def parse_ref(item: Any, where_: str) -> Ref:
    """One ``[layer_name, node_index, tensor_index]`` reference."""
    if (
        isinstance(item, (list, tuple))
        and len(item) == 3
        and isinstance(item[0], str)
        and type(item[1]) is int
        and type(item[2]) is int
        and item[1] >= 0
        and item[2] >= 0
    ):
        return (item[0], item[1], item[2])
    raise InvalidModelConfig(
        f"Expected [layer_name, node_index, tensor_index] (indexes from 0) in {where_}. "
        f"Received {item!r}."
    )


def parse_refs(raw: Any, key: str, model_name: str) -> list[Ref]:
    """``input_layers`` / ``output_layers``: one reference or a flat list of them."""
    if isinstance(raw, list) and len(raw) == 3 and isinstance(raw[0], str):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise InvalidModelConfig(
            f"Model `{model_name}` has `{key}` {raw!r}. Expected a list of "
            "[layer_name, node_index, tensor_index]."
        )
    return [parse_ref(item, f"`{key}` of model `{model_name}`") for item in raw]


@dataclass(frozen=True)
class Call:
    """One recorded call of a layer: the tensors it consumes, as Keras passes them.

    Attributes:
        refs: the consumed tensors, in order.
        shapes: the shape Keras recorded for each (batch axis first), or None.
        as_list: True when the tensors are passed as one list (``Add()([a, b])``), False for
            a single tensor.
    """

    refs: tuple[Ref, ...]
    shapes: tuple[Any, ...]
    as_list: bool


def is_operation(entry: Mapping[str, Any]) -> bool:
    """Whether an entry is a Keras operation (``x + y`` writes ``keras.src.ops.numpy.Add``),
    which takes its tensors as separate arguments, rather than a layer."""
    module = entry.get("module")
    return isinstance(module, str) and module.startswith("keras.src.ops.")


def parse_call(node_data: Any, layer_name: str, *, takes_mask: bool, operation: bool) -> Call:
    """Read one entry of ``inbound_nodes`` as `functional.deserialize_node` does.

    Keras 3 writes ``{"args": [tensor or [tensors]], "kwargs": {...}}`` (an operation such as
    ``x + y``: ``{"args": [x, y], ...}``); Keras 2 wrote ``[[name, node, tensor, kwargs], ...]``.
    A call with other positional arguments, or with keyword arguments other than the
    ``training`` (and, where the call takes one, ``mask``) Keras records, is refused.
    """
    what = f"a call of `{layer_name}`"
    if isinstance(node_data, list) and node_data:
        refs: list[Ref] = []
        for item in node_data:
            if not isinstance(item, (list, tuple)) or len(item) not in (3, 4):
                raise InvalidModelConfig(
                    f"Expected [layer_name, node_index, tensor_index] in {what}. Received {item!r}."
                )
            refs.append(parse_ref(item[:3], what))
            if len(item) == 4:
                _check_kwargs(item[3], layer_name, takes_mask=takes_mask)
        # `deserialize_node`: a single tensor is passed alone, several as a list.
        return Call(tuple(refs), (None,) * len(refs), as_list=len(refs) > 1)
    if not isinstance(node_data, dict) or "args" not in node_data or "kwargs" not in node_data:
        raise InvalidModelConfig(
            f"Layer `{layer_name}` has an inbound node {node_data!r}. Expected an object with "
            "`args` and `kwargs`."
        )
    args = node_data["args"]
    _check_kwargs(node_data["kwargs"], layer_name, takes_mask=takes_mask)
    if not isinstance(args, list) or not args or (len(args) > 1 and not operation):
        raise InvalidModelConfig(
            f"Layer `{layer_name}` is called with positional arguments {args!r}. Expected one "
            "argument: a tensor, or a list of tensors for a merge layer."
        )
    if operation and len(args) > 1:
        # `ops.add(x, y)` and the like: the tensors as separate arguments, read as one list.
        tensors = [_tensor(item, layer_name) for item in args]
        return Call(tuple(t[0] for t in tensors), tuple(t[1] for t in tensors), as_list=True)
    (arg,) = args
    if isinstance(arg, list):
        tensors = [_tensor(item, layer_name) for item in arg]
        if not tensors:
            raise InvalidModelConfig(f"Layer `{layer_name}` has a call without input tensors.")
        return Call(tuple(t[0] for t in tensors), tuple(t[1] for t in tensors), as_list=True)
    ref, shape = _tensor(arg, layer_name)
    return Call((ref,), (shape,), as_list=False)


def _tensor(value: Any, layer_name: str) -> tuple[Ref, Any]:
    if not isinstance(value, dict) or value.get("class_name") != "__keras_tensor__":
        raise InvalidModelConfig(
            f"Layer `{layer_name}` is called on {value!r}. Expected a tensor "
            '({"class_name": "__keras_tensor__", ...}).'
        )
    cfg = value.get("config")
    if not isinstance(cfg, dict) or not {"shape", "dtype", "keras_history"} <= cfg.keys():
        # `deserialize_keras_object` reads all three.
        raise InvalidModelConfig(
            f"An input tensor of `{layer_name}` has config {cfg!r}. Expected `shape`, `dtype` "
            "and `keras_history`."
        )
    shape = cfg["shape"]
    if not isinstance(shape, list) or not isinstance(cfg["dtype"], str):
        raise InvalidModelConfig(
            f"An input tensor of `{layer_name}` has shape {shape!r} and dtype {cfg['dtype']!r}. "
            "Expected a shape list such as [null, 32, 32, 3] and a dtype such as 'float32'."
        )
    return parse_ref(cfg["keras_history"], f"an input of `{layer_name}`"), shape


def _check_kwargs(kwargs: Any, layer_name: str, *, takes_mask: bool) -> None:
    if not isinstance(kwargs, dict):
        raise InvalidModelConfig(
            f"Layer `{layer_name}` has call keyword arguments {kwargs!r}. Expected an object."
        )
    for key, value in kwargs.items():
        if _holds_tensor(value):
            raise UnsupportedLayer(
                f"Layer `{layer_name}` is called with a tensor as keyword argument `{key}`. "
                "Expected tensors as positional arguments only.",
                layer_name=layer_name,
            )
        if key == "training" and (value is None or type(value) is bool):
            continue
        if key == "mask" and value is None and takes_mask:
            continue
        raise InvalidModelConfig(
            f"Layer `{layer_name}` is called with {key}={value!r}, which changes what the "
            "call computes. Expected a plain call, layer(x)."
        )


def _holds_tensor(value: Any) -> bool:
    if isinstance(value, dict):
        return value.get("class_name") == "__keras_tensor__" or any(
            _holds_tensor(v) for v in value.values()
        )
    if isinstance(value, list):
        return any(_holds_tensor(v) for v in value)
    return False


def recorded_shape_agrees(recorded: Any, inferred: Shape) -> bool:
    """Whether a shape Keras recorded (batch axis first) agrees with the inferred one."""
    if recorded is None:
        return True  # Keras 2 node lists record none
    if not isinstance(recorded, list) or not recorded:
        return False
    dims = recorded[1:]
    if len(dims) != len(inferred):
        return False
    return all(r is None or i is None or r == i for r, i in zip(dims, inferred, strict=True))


def compatible(declared: Sequence[int | None], actual: Sequence[int | None]) -> bool:
    """Same rank, and equal sizes wherever both are known."""
    return len(declared) == len(actual) and all(
        d is None or a is None or d == a for d, a in zip(declared, actual, strict=True)
    )
