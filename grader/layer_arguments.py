"""What a layer config's arguments may hold: the allow-list of serialized Keras objects.

A layer config can hold serialized Keras objects (``{"class_name", "config", "module"}``) inside
its arguments, and Keras rebuilds whatever class such a dict names: a ``Sequential`` written as
a Dense layer's ``activation`` is rebuilt, trained and saved with weights of its own that the
analysis would never count, and a ``Constant`` initializer holding an array carries trained
weights into a training that is meant to start from scratch. So each argument position accepts
only the built-in objects that belong there, and every other serialized object is refused:

- ``activation`` (and any ``*_activation``): a built-in activation by name (``'relu'``), the
  same function serialized (``{"class_name": "function", "config": "relu"}``), or one of the
  weight-free activation layers ReLU, LeakyReLU, ELU with number arguments.
- ``*_initializer``: a built-in initializer (`INITIALIZERS`) whose arguments are hyperparameters
  (numbers, a few keywords, an integer seed); never data such as ``Constant`` of an array.
- ``*_regularizer`` (``activity_regularizer`` too): L1, L2, L1L2, OrthogonalRegularizer.
- ``*_constraint``: MaxNorm, MinMaxNorm, NonNeg, UnitNorm.
- ``dtype``: a dtype name or the ``DTypePolicy`` naming one (quantized policies: unsupported).
- Rescaling's ``scale`` and ``offset``: numbers, or a one-dimensional array.
- ``inbound_nodes``: references to input tensors (``__keras_tensor__``) only.
- The outermost model's ``compile_config`` (optimizer, loss, metrics) is never given to Keras:
  `grader.training.safe_model.build_model` drops it, and ``.keras`` files are opened with
  ``compile=False``. A nested model may not carry one.
- Anything else: plain JSON values; a serialized object there is refused.

`check_layer_arguments` is the one implementation: the analysis (`grader.graph_builder`, hence
the host's check stage) and the sandboxes' gate (`grader.training.safe_model`) both call it. The
tables of built-in objects are `grader.keras_objects` (`accepted_objects`, which the "Supported
layers" page shows, is re-exported here). Nothing here imports Keras.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NoReturn

from grader.errors import InvalidModelConfig, UnsafeLayer, UnsupportedLayer
from grader.keras_config import MODEL_CLASSES, leaf_compile_config_refusal
from grader.keras_objects import (
    ACTIVATION_LAYERS,
    ACTIVATION_PROBLEMS,
    ACTIVATIONS,
    AXES,
    CONSTRAINT_NAMES,
    CONSTRAINTS,
    DTYPE_POLICIES,
    EXPECTED,
    FLOAT_DTYPES,
    FUNCTION_NAMES,
    INITIALIZER_NAMES,
    INITIALIZERS,
    INPUT_DTYPES,
    KEYWORDS,
    MAX_AXES,
    NON_NEGATIVE,
    OBJECT_KEYS,
    POSITIVE,
    QUANTIZATION_MODES,
    QUANTIZED_POLICIES,
    REGULARIZER_NAMES,
    REGULARIZERS,
    accepted_objects,
)
from grader.layers import get_spec
from grader.layers.keras_classes import CODE_CARRYING_CLASSES, KERAS_BUILTIN_LAYERS

__all__ = ["accepted_objects", "check_layer_arguments"]


@dataclass(frozen=True)
class _Where:
    """The layer whose arguments are checked, as messages name it."""

    name: str
    class_name: str

    def __str__(self) -> str:
        return f"Layer `{self.name}` ({self.class_name})"


def check_layer_arguments(
    layer_cfg: Mapping[str, Any], name: str, *, outermost: bool = False
) -> None:
    """Refuse a serialized object that does not belong where one layer config holds it.

    Args:
        layer_cfg: one layer entry of a model config (``{"class_name", "config", ...}``); for a
            nested model, its own arguments are checked, not its layers (each is checked on
            its own).
        name: the layer's (qualified) name, for messages.
        outermost: whether `layer_cfg` is the whole model, whose ``compile_config`` is never
            given to Keras (an outermost entry that is not a model is only checked for code:
            the caller refuses it anyway).

    Raises:
        UnsafeLayer: an object that would be code: a Python lambda, a custom function, a class
            from outside Keras or a custom registered one, a code-carrying Keras class
            (``Lambda``, ``TFSMLayer``, ...), wherever it is nested.
        InvalidModelConfig: a Keras object where it does not belong (a model as an activation,
            a layer as a constraint), or data where a hyperparameter belongs (``Constant`` of
            an array); the message names the layer, the argument, what was found and what to
            write instead.
        UnsupportedLayer: a quantized dtype policy, or the activation ``glu``.
    """
    class_name = str(layer_cfg.get("class_name"))
    where = _Where(name, class_name)
    is_model = class_name in MODEL_CLASSES
    # A class the analysis refuses next (unsupported, or not a model at the top): code first.
    checked = is_model or (
        not outermost and (class_name == "InputLayer" or _is_supported(class_name))
    )
    for key, value in layer_cfg.items():
        if key == "config":
            if type(value) is dict:
                if checked:
                    _check_arguments(value, where, class_name, is_model)
                else:
                    for arg, item in value.items():
                        _refuse_code(item, where, arg)
            else:
                _check_plain(value, where, key)
        elif key == "inbound_nodes":
            _check_plain(value, where, key, tensors=True)
        elif key == "compile_config":
            # Keras writes `{}` for a model never compiled, and compiles only from a non-empty
            # one (`deserialize_keras_object`).
            if outermost or not value:
                continue
            _refuse_code(value, where, key)
            if not is_model:
                raise leaf_compile_config_refusal(str(where))
            raise InvalidModelConfig(
                f"{where} is a nested model that carries a compile config (optimizer, loss, "
                "metrics). Expected an uncompiled nested model: the grader compiles the whole "
                "model itself."
            )
        elif type(value) is dict or type(value) is list:
            _check_plain(value, where, key)


def _is_supported(class_name: str) -> bool:
    return get_spec(class_name) is not None


@lru_cache(maxsize=1024)  # keys come from uploads: bounded
def _position(key: str) -> str:
    """Which kind of object an argument of a (non-model) layer holds; "" for none."""
    if key == "activation" or key.endswith("_activation"):
        return "activation"
    for suffix in ("initializer", "regularizer", "constraint"):
        if key.endswith("_" + suffix):
            return suffix
    if key in ("dtype", "weights", "quantization_config"):
        return key
    return ""


_BUILTINS = {
    "initializer": (INITIALIZER_NAMES, INITIALIZERS),
    "regularizer": (REGULARIZER_NAMES, REGULARIZERS),
    "constraint": (CONSTRAINT_NAMES, CONSTRAINTS),
}


def _check_arguments(
    inner: Mapping[str, Any], where: _Where, class_name: str, is_model: bool
) -> None:
    spec = get_spec(class_name)
    arrays = spec.safety.array_arguments if spec is not None and spec.safety is not None else ()
    for key, value in inner.items():
        if value is None:
            continue
        position = "dtype" if key == "dtype" else "" if is_model else _position(key)
        if not position:
            # The common case: a plain argument (name, filters, kernel_size, padding, ...).
            if key in arrays:
                _check_array(value, where, key)
            elif (type(value) is dict or type(value) is list) and not (
                is_model and key == "layers"  # each nested layer is checked on its own
            ):
                _check_plain(value, where, key)
        elif position == "activation":
            _check_activation(value, where, key)
        elif position in _BUILTINS:
            names, classes = _BUILTINS[position]
            _check_builtin(value, where, key, position, names, classes)
        elif position == "dtype":
            _check_dtype(value, where, key, inputs=class_name == "InputLayer")
        elif position == "weights":
            raise InvalidModelConfig(
                f"{where} has `{key}` set to {_describe(value)}: initial weights, data. "
                "Expected no `weights` argument: the grader trains every model from fresh "
                "weights; choose an initializer instead."
            )
        elif _is_object(value):  # quantization_config: a plain mapping is the spec's to judge
            _refuse_code(value, where, key)
            _quantized(value, where, key)
        else:
            _check_plain(value, where, key)


# --- positions -----------------------------------------------------------------------------


def _check_activation(value: Any, where: _Where, key: str) -> None:
    if type(value) is str:
        _check_activation_name(value, where, key)
        return
    if not _is_object(value):
        _refuse(value, where, key, "activation")
    class_name = value.get("class_name")
    if class_name == "function":
        fn = value.get("config")
        if (
            type(fn) is str
            and fn in FUNCTION_NAMES
            and value.get("module") in ("keras.activations", "builtins")
            and value.get("registered_name") in (None, "function", fn)
            and set(value) <= OBJECT_KEYS - {"shared_object_id"}
        ):
            _check_activation_name(fn, where, key)
            return
        _refuse(value, where, key, "activation")
    args = ACTIVATION_LAYERS.get(str(class_name))
    # A layer object is rebuilt by its module's path; one shared with another position
    # (`shared_object_id`) would be replaced by that object when a `.keras` file is loaded.
    if (
        args is None
        or value.get("module") != "keras.layers"
        or value.get("registered_name") not in (None, class_name)
        or not set(value) <= (OBJECT_KEYS - {"shared_object_id"}) | {"build_config"}
    ):
        _refuse(value, where, key, "activation")
    config = value.get("config")
    if type(config) is not dict:
        _refuse(value, where, key, "activation")
    for arg, item in config.items():
        if arg == "dtype":
            _check_dtype(item, where, key)
        elif arg == "name":
            if type(item) is not str:
                _refuse(value, where, key, "activation")
        elif arg == "trainable":
            if type(item) is not bool:
                _refuse(value, where, key, "activation")
        elif arg not in args or not (item is None or _is_number(item)):
            _refuse(value, where, key, "activation", detail=_argument(class_name, arg, item))
    _check_plain(value.get("build_config"), where, key)


def _check_activation_name(fn: str, where: _Where, key: str) -> None:
    if fn not in ACTIVATIONS:
        raise InvalidModelConfig(
            f"{where} has `{key}` set to {fn!r}, which is not a built-in activation. Expected "
            f"one of: {', '.join(sorted(ACTIVATIONS - set(ACTIVATION_PROBLEMS)))}."
        )
    problem = ACTIVATION_PROBLEMS.get(fn)
    if problem is None:
        return
    error, why = problem
    message = f"{where} has `{key}` set to {fn!r}, which {why}."
    if error is UnsupportedLayer:
        raise UnsupportedLayer(message, layer_name=where.name, class_name=where.class_name)
    raise error(message)


def _check_builtin(
    value: Any,
    where: _Where,
    key: str,
    position: str,
    names: Mapping[str, str],
    classes: Mapping[str, tuple[str, ...]],
) -> None:
    """An initializer, regularizer or constraint: a name, or a built-in object of scalars."""
    if type(value) is str:
        if value not in names:
            raise InvalidModelConfig(
                f"{where} has `{key}` set to {value!r}, which is not a built-in {position}. "
                f"Expected one of: {', '.join(classes)}."
            )
        return
    if not _is_object(value):
        _refuse(value, where, key, position)
    canonical = names.get(str(value.get("class_name")))
    module = value.get("module", "")
    if (
        canonical is None
        or module not in ("", f"keras.{position}s")
        or value.get("registered_name") not in (None, value.get("class_name"))
        or not set(value) <= OBJECT_KEYS
    ):
        _refuse(value, where, key, position)
    config = value.get("config")
    if config is None:
        return
    if type(config) is not dict:
        _refuse(value, where, key, position)
    allowed = classes[canonical]
    for arg, item in config.items():
        if arg not in allowed or not _is_hyperparameter(canonical, arg, item):
            detail = _argument(canonical, arg, item)
            if arg in allowed and not _is_scalar_like(item):
                # Data where a hyperparameter belongs: the one way to smuggle weights in.
                raise InvalidModelConfig(
                    f"{where} has `{key}` {detail}: data, not a hyperparameter. Expected "
                    f"{EXPECTED[position]}; the grader trains every model from fresh weights."
                )
            _refuse(value, where, key, position, detail=detail)


def _check_dtype(value: Any, where: _Where, key: str, *, inputs: bool = False) -> None:
    allowed = INPUT_DTYPES if inputs else FLOAT_DTYPES
    if value is None:
        return
    if type(value) is str:
        if value.startswith(QUANTIZATION_MODES) and "_from_" in value:
            _quantized(value, where, key)
        if value not in allowed:
            raise InvalidModelConfig(
                f"{where} has `{key}` set to {value!r}. Expected {EXPECTED['dtype']}."
            )
        return
    if not _is_object(value):
        _refuse(value, where, key, "dtype")
    class_name = str(value.get("class_name"))
    config = value.get("config")
    if class_name in QUANTIZED_POLICIES:
        _refuse_code(value, where, key)
        _quantized(value, where, key)
    if (
        class_name not in ("DTypePolicy", "FloatDTypePolicy")
        or value.get("module", "keras") not in ("keras", "keras.dtype_policies")
        or value.get("registered_name") not in (None, class_name)
        or not set(value) <= OBJECT_KEYS
        or type(config) is not dict
        or set(config) != {"name"}
        or type(config["name"]) is not str
        or config["name"] not in allowed
    ):
        _refuse(value, where, key, "dtype")


def _quantized(found: Any, where: _Where, key: str) -> NoReturn:
    raise UnsupportedLayer(
        f"{where} is quantized: `{key}` is {_describe(found)}. Expected a float model; quantize "
        "after grading.",
        layer_name=where.name,
        class_name=where.class_name,
    )


def _check_array(value: Any, where: _Where, key: str) -> None:
    """Rescaling's scale or offset: a number, a list, or a 1-D array Keras wrote."""
    if _is_number(value):
        return
    if type(value) is list:
        _check_plain(value, where, key)
        return
    if (
        _is_object(value)
        and value.get("class_name") == "__numpy__"
        and set(value) == {"class_name", "config"}
        and type(value["config"]) is dict
        and set(value["config"]) == {"value", "dtype"}
        and type(value["config"]["dtype"]) is str
        and (
            _is_number(value["config"]["value"])
            or (
                type(value["config"]["value"]) is list
                and all(_is_number(v) for v in value["config"]["value"])
            )
        )
    ):
        return
    _refuse(value, where, key, "array")


def _check_plain(value: Any, where: _Where, key: str, *, tensors: bool = False) -> None:
    """Plain JSON only: refuse any serialized object inside `value` (input tensors if allowed)."""
    # Iterative, with exact type checks: it walks every layer's lists and plain mappings on
    # every upload, so it is kept tight.
    value_type = type(value)
    if value_type is not dict and value_type is not list:
        return
    stack = [value]
    pop, push = stack.pop, stack.append
    while stack:
        item = pop()
        if type(item) is dict:
            if "class_name" in item or "module" in item:
                if tensors and item.get("class_name") == "__keras_tensor__":
                    continue  # its shape and history are read by the graph builder
                _refuse(item, where, key, None)
            children: Any = item.values()
        else:
            children = item
        for child in children:
            child_kind = type(child)
            if child_kind is dict or child_kind is list:
                push(child)


# --- refusals ------------------------------------------------------------------------------


def _refuse(
    found: Any, where: _Where, key: str, position: str | None, *, detail: str = ""
) -> NoReturn:
    """Raise for `found` at `key`: `UnsafeLayer` if it holds code, else `InvalidModelConfig`."""
    _refuse_code(found, where, key)
    described = detail or _describe(found)
    if position is None:
        expected = f"plain values in `{key}` (numbers, strings, lists): no object belongs there"
    else:
        expected = EXPECTED[position]
    raise InvalidModelConfig(f"{where} has `{key}` set to {described}. Expected {expected}.")


def _refuse_code(value: Any, where: _Where, key: str) -> None:
    code = _find_code(value)
    if code is not None:
        raise UnsafeLayer(
            f"{where} has `{key}` set to custom code ({code}). Expected only built-in Keras "
            "objects, e.g. activation='relu'.",
            layer_name=where.name,
            class_name=where.class_name,
        )


def _find_code(value: Any) -> str | None:
    """Describe the first serialized object inside `value` that would need code to rebuild."""
    known = (
        KERAS_BUILTIN_LAYERS
        | MODEL_CLASSES
        | DTYPE_POLICIES
        | set(INITIALIZER_NAMES)
        | set(REGULARIZER_NAMES)
        | set(CONSTRAINT_NAMES)
        | {"SeedGenerator"}
    )
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) is dict:
            module = item.get("module")
            class_name = item.get("class_name")
            if type(class_name) is not str:
                class_name = None
            registered = item.get("registered_name")
            if module is not None and not (
                type(module) is str and (module == "keras" or module.startswith("keras."))
            ):
                if class_name == "function" and module == "builtins":
                    fn = item.get("config")
                    if not (type(fn) is str and fn in ACTIVATIONS):
                        return f"{fn!s} from module `builtins`, not a Keras activation"
                else:
                    return f"{item.get('config') or class_name!s} from module `{module}`"
            if class_name == "__lambda__":
                return "a Python lambda"
            if class_name in CODE_CARRYING_CLASSES:
                return f"a `{class_name}` layer, which runs or loads code"
            if type(registered) is str and ">" in registered:
                return f"custom registered object {registered!r}"
            if (
                class_name is not None
                and module is None
                and not class_name.startswith("__")
                and class_name not in known
                and class_name != "function"
            ):
                return f"`{class_name}`, not a Keras class"
            stack.extend(item.values())
        elif type(item) is list:
            stack.extend(item)
    return None


# --- words ---------------------------------------------------------------------------------


def _is_object(value: Any) -> bool:
    return type(value) is dict and ("class_name" in value or "module" in value)


def _is_number(value: Any) -> bool:
    return type(value) in (int, float)


def _is_scalar_like(value: Any) -> bool:
    return value is None or type(value) in (bool, int, float, str)


def _is_hyperparameter(class_name: str, arg: str, value: Any) -> bool:
    if arg == "seed":
        return value is None or type(value) is int
    keywords = KEYWORDS.get((class_name, arg))
    if keywords is not None:
        return type(value) is str and value in keywords
    if (class_name, arg) in NON_NEGATIVE:
        return _is_number(value) and value >= 0
    if (class_name, arg) in POSITIVE:
        return _is_number(value) and value > 0
    if arg in AXES:
        if value is None or type(value) is int:
            return True
        return (
            type(value) is list
            and len(value) <= MAX_AXES
            and all(type(axis) is int for axis in value)
        )
    return _is_number(value)


def _size(value: Any) -> int:
    """How many numbers a (nested) list or serialized array holds, counted iteratively."""
    count, stack = 0, [value]
    while stack:
        item = stack.pop()
        if type(item) is list:
            stack.extend(item)
        elif type(item) is dict:
            config = item.get("config")
            if type(config) is dict:
                stack.append(config.get("value"))
        elif item is not None:
            count += 1
    return count


def _describe(value: Any) -> str:
    """What was found, in a few words (never the data itself: it may be megabytes)."""
    if type(value) is list:
        return f"a list of {_size(value):,} values"
    if type(value) is dict:
        class_name = value.get("class_name")
        if class_name in ("__numpy__", "__tensor__"):
            config = value.get("config")
            inner = config.get("value") if type(config) is dict else None
            return f"an array of {_size(inner):,} values"
        if class_name is None:
            return "a mapping"
        module = value.get("module")
        where = f" from `{module}`" if type(module) is str else ""
        text = str(class_name)
        if len(text) > 60:
            text = text[:57] + "..."
        if text in MODEL_CLASSES:
            return f"a serialized `{text}` model{where}"
        if text == "function":
            return f"a serialized function {_describe(value.get('config'))}{where}"
        return f"a serialized `{text}`{where}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _argument(class_name: Any, arg: str, value: Any) -> str:
    return f"{class_name} with `{arg}` = {_describe(value)}"
