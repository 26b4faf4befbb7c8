"""Read a Keras 2 `model.to_json()` as the Keras 3 config it describes: JSON in, JSON out.

Keras 3 cannot read what Keras 2 (2017-2023, multi-backend Keras 2.0-2.3 and ``tf.keras``
2.4-2.15) wrote: its top level has no ``module`` key ("Could not locate class 'Sequential'"),
the input shape sits on the first layer as ``batch_input_shape``, a Keras 2.0-2.1 Sequential
config is a bare list of layers, a built BatchNormalization records ``axis`` as a list, and
``LeakyReLU`` says ``alpha``. Everything else a course model holds (Conv2D, SeparableConv2D,
Dense, pooling, dropout, their initializers and regularizers) kept its name and arguments, so
the architecture can be read exactly. `translate_legacy_config` rewrites the legacy spellings
into the ones Keras 3 writes: the analysis then reads it like any Keras 3 config, and the
sandboxed trainer builds it with Keras 3.

Nothing is executed: this is a walk over dicts and lists. Layers the translation does not know
keep their class and arguments; the analysis (and Keras 3) then accept or refuse them as usual,
and code-carrying layers (``Lambda``) are refused there. A Keras 1 config (``keras_version``
1.x: ``Convolution2D`` with ``nb_row``, ``border_mode``, Theano's channel order) is refused with
how to re-export it: its arguments would need guessing.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from grader.errors import GraderError, InvalidModelConfig
from grader.keras_config import MODEL_CLASSES

#: What Keras 3 writes as a model's ``module``/``registered_name`` (checked by the tests).
SEQUENTIAL_IDENTITY: dict[str, str | None] = {"module": "keras", "registered_name": None}
FUNCTIONAL_IDENTITY: dict[str, str | None] = {
    "module": "keras.src.models.functional",
    "registered_name": "Functional",
}

# Sub-objects of a layer config and the Keras 3 module of each, by the config key's suffix.
_OBJECT_MODULES = (
    ("_initializer", "keras.initializers"),
    ("_regularizer", "keras.regularizers"),
    ("_constraint", "keras.constraints"),
)
# Keys Keras 2 wrote that Keras 3 does not take, with the values that leave the layer as
# Keras 3 builds it (any other value cannot be translated exactly: refused).
_BATCHNORM_DEFAULTS = {
    "fused": (None, True, False),  # an implementation choice, same numbers
    "virtual_batch_size": (None,),
    "adjustment": (None,),
}
# tf.keras' separable and depthwise convolutions inherited `Conv.get_config`, so their JSON
# also lists a `kernel_*` (and `groups`, `filters` for depthwise) that the layer never used: it
# has no `kernel` weight. Dropping them changes nothing.
_UNUSED_CONV_KEYS = {
    "kernel_initializer": None,
    "kernel_regularizer": None,
    "kernel_constraint": None,
    "groups": (1, None),
}
_SEPARABLE_OR_DEPTHWISE = frozenset(
    {
        "SeparableConv1D",
        "SeparableConv2D",
        "SeparableConvolution1D",
        "SeparableConvolution2D",
        "DepthwiseConv1D",
        "DepthwiseConv2D",
    }
)

RE_EXPORT = (
    "Re-export it from Keras 3: rebuild the model with Keras 3 code and upload "
    "`model.to_json()` (or upload the `.py`/`.ipynb` that builds it); a Keras 2 `.h5` file "
    "opens in Keras 3 with `keras.models.load_model('model.h5', compile=False)`."
)


class LegacyConfigError(InvalidModelConfig):
    """A Keras 1/2 config the translation cannot read exactly."""


def _is_model(entry: Mapping[str, Any]) -> bool:
    class_name = entry.get("class_name")
    return isinstance(class_name, str) and class_name in MODEL_CLASSES


def keras_version_of(config: Mapping[str, Any]) -> str | None:
    """The ``keras_version`` a Keras 1/2 ``to_json()`` records at its top level, if any."""
    version = config.get("keras_version")
    return version if isinstance(version, str) else None


def is_legacy_config(config: Any) -> bool:
    """Whether `config` was written by Keras 1 or 2 rather than Keras 3.

    Keras 1/2 write ``keras_version`` (``"2.4.0"``) at the top level; Keras 3 does not, and
    never writes ``batch_input_shape``, a list as a Sequential config, or ``inbound_nodes``
    entries as lists. A config with a top-level ``module`` key is Keras 3's.
    """
    if not isinstance(config, dict) or not _is_model(config):
        return False
    version = keras_version_of(config)
    if version is not None:
        return version.startswith(("1.", "2."))
    if "module" in config:
        return False
    return _has_legacy_marker(config)


def _has_legacy_marker(model: Mapping[str, Any]) -> bool:
    inner = model.get("config")
    if isinstance(inner, list):
        return True
    if not isinstance(inner, dict):
        return False
    layers = inner.get("layers")
    if not isinstance(layers, list):
        return False
    for entry in layers:
        if not isinstance(entry, dict):
            continue
        cfg = entry.get("config")
        if isinstance(cfg, dict) and "batch_input_shape" in cfg:
            return True
        nodes = entry.get("inbound_nodes")
        if isinstance(nodes, list) and any(isinstance(node, list) for node in nodes):
            return True
    return False


def translate_legacy_config(config: dict[str, Any], *, where: str = "the model config") -> dict:
    """The Keras 3 form of a Keras 2 ``model.to_json()`` config.

    Args:
        config: the parsed JSON (`is_legacy_config` is true for it).
        where: how messages name the file (```model.json```).

    Returns:
        A new config in the form Keras 3 writes (``module`` keys, an ``InputLayer`` with
        ``batch_shape``); Functional ``inbound_nodes`` keep Keras 2's list form, which Keras 3
        and the analysis both read.

    Raises:
        LegacyConfigError: a Keras 1 config, or one whose legacy parts cannot be read exactly;
            the message names Keras 1/2 and how to re-export.
    """
    version = keras_version_of(config) or "2.x"
    if version.startswith("1."):
        raise LegacyConfigError(
            f"{where} was written by Keras {version} (`keras_version`). Expected a Keras 3 "
            "config: Keras 1 layers take other arguments (`Convolution2D(32, 3, 3, "
            "border_mode='same')` is `Conv2D(32, (3, 3), padding='same')` in Keras 3). " + RE_EXPORT
        )
    try:
        # A copy: the translation rewrites nested lists (node indices) in place.
        return _translate_model(copy.deepcopy(config), version=version, where=where, top=True)
    except GraderError:
        raise
    except (RecursionError, MemoryError) as exc:
        raise LegacyConfigError(
            f"{where} (Keras {version}) nests models too deeply to read ({type(exc).__name__})."
        ) from None
    except (AttributeError, KeyError, TypeError, ValueError, IndexError) as exc:
        # Any other malformed part: the message still says what it is and what to do.
        raise LegacyConfigError(
            f"{where} looks like a Keras {version} config, but part of it cannot be read "
            f"({type(exc).__name__}: {exc}). " + RE_EXPORT
        ) from None


def _translate_model(
    entry: Mapping[str, Any], *, version: str, where: str, top: bool
) -> dict[str, Any]:
    class_name = entry["class_name"]
    inner = entry.get("config")
    if class_name == "Sequential":
        if isinstance(inner, list):  # Keras 2.0/2.1: the config is the list of layers
            inner = {"name": entry.get("name") or "sequential", "layers": inner}
        if not isinstance(inner, dict) or not isinstance(inner.get("layers"), list):
            raise LegacyConfigError(
                f"Sequential model in {where} (Keras {version}) has no list of layers. " + RE_EXPORT
            )
        layers = _sequential_layers(inner["layers"], version=version, where=where)
        new_inner = {key: value for key, value in inner.items() if key != "layers"}
        new_inner["layers"] = layers
        identity = SEQUENTIAL_IDENTITY
    else:
        if not isinstance(inner, dict) or not isinstance(inner.get("layers"), list):
            raise LegacyConfigError(
                f"Model in {where} (Keras {version}) has no list of layers. " + RE_EXPORT
            )
        new_inner = dict(inner)
        new_inner["layers"] = [
            _translate_entry(layer, version=version, where=where) for layer in inner["layers"]
        ]
        _renumber_nested_calls(new_inner)
        class_name = "Functional"
        identity = FUNCTIONAL_IDENTITY
    result: dict[str, Any] = {**identity, "class_name": class_name, "config": new_inner}
    for key in ("name", "inbound_nodes"):  # a nested model's place in its outer model
        if key in entry and not top:
            result[key] = entry[key]
    return result


def _renumber_nested_calls(inner: dict[str, Any]) -> None:
    """Number the calls of nested models from 0, as Keras 3 does.

    In Keras 2 a nested model (a Network) already had a node when it was built, linking its
    own inputs to its outputs; its calls inside the outer model were nodes 1, 2, ... and the
    config refers to them so (``[["features", 1, 0, {}]]``). tf.keras 2.4+ skipped that node
    only for models starting with an InputLayer, so the version does not tell: the numbers do.
    A model called n times is referred to as 1..n when shifted, 0..n-1 when not.
    """
    layers = inner["layers"]
    calls = {
        entry.get("name"): len(entry.get("inbound_nodes") or [])
        for entry in layers
        if isinstance(entry, dict) and _is_model(entry)
    }
    if not calls:
        return
    refs: list[list[Any]] = []
    for entry in layers:
        if isinstance(entry, dict) and isinstance(entry.get("inbound_nodes"), list):
            for node in entry["inbound_nodes"]:
                if isinstance(node, list):
                    refs.extend(ref for ref in node if isinstance(ref, list))
    for key in ("input_layers", "output_layers"):
        raw = inner.get(key)
        if isinstance(raw, list) and len(raw) == 3 and isinstance(raw[0], str):
            raw = [raw]
            inner[key] = raw
        if isinstance(raw, list):
            refs.extend(ref for ref in raw if isinstance(ref, list))
    for name, count in calls.items():
        mine = [ref for ref in refs if len(ref) >= 3 and ref[0] == name and type(ref[1]) is int]
        if count and any(ref[1] == count for ref in mine) and all(ref[1] >= 1 for ref in mine):
            for ref in mine:
                ref[1] -= 1


def _sequential_layers(layers: list[Any], *, version: str, where: str) -> list[Any]:
    translated = [_translate_entry(layer, version=version, where=where) for layer in layers]
    if not translated or not isinstance(layers[0], dict):
        return translated
    first, original = translated[0], layers[0]
    if first.get("class_name") == "InputLayer":
        return translated
    shape = (original.get("config") or {}).get("batch_input_shape")
    if shape is None:
        return translated
    # Keras 2 put the input on the first layer; Keras 3 writes an InputLayer before it, named
    # as tf.keras named the one it created (`conv2d_input`).
    first_name = (first.get("config") or {}).get("name") or "layer"
    taken = {
        (entry.get("config") or {}).get("name") for entry in translated if isinstance(entry, dict)
    }
    name = f"{first_name}_input"
    while name in taken:
        name += "_"
    dtype = (original.get("config") or {}).get("dtype")
    input_layer = {
        "module": "keras.layers",
        "class_name": "InputLayer",
        "config": {
            "batch_shape": shape,
            "dtype": dtype if isinstance(dtype, str) else "float32",
            "sparse": False,
            "name": name,
        },
        "registered_name": None,
    }
    return [input_layer, *translated]


def _translate_entry(entry: Any, *, version: str, where: str) -> Any:
    """One layer entry (``class_name``, ``config``, maybe ``name``/``inbound_nodes``)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
        return entry  # malformed: the analysis says so with its own message
    class_name = entry.get("class_name")
    if not isinstance(class_name, str):
        return entry  # the analysis refuses it with its own message
    if class_name in MODEL_CLASSES:
        return _translate_model(entry, version=version, where=where, top=False)
    config = dict(entry["config"])
    shape = config.pop("batch_input_shape", None)
    if class_name == "InputLayer":
        if shape is not None:
            config["batch_shape"] = shape
        config.pop("input_shape", None)
    axis = config.get("axis")
    if isinstance(axis, list) and len(axis) == 1 and isinstance(axis[0], int):
        # A built Keras 2 BatchNormalization records [3] for axis=-1 on NHWC: Keras 3 takes int.
        config["axis"] = axis[0]
    if class_name == "LeakyReLU" and "alpha" in config:
        config["negative_slope"] = config.pop("alpha")
    if class_name == "BatchNormalization":
        name = config.get("name", "?")
        for key, defaults in _BATCHNORM_DEFAULTS.items():
            if key in config:
                value = config.pop(key)
                if value not in defaults:
                    raise LegacyConfigError(
                        f"Layer `{name}` (BatchNormalization) in {where} (Keras {version}) "
                        f"sets `{key}` to {value!r}, which Keras 3 does not have. " + RE_EXPORT
                    )
    if class_name in _SEPARABLE_OR_DEPTHWISE:
        name = config.get("name", "?")
        for key, allowed in _UNUSED_CONV_KEYS.items():
            if key in config:
                value = config.pop(key)
                if allowed is not None and value not in allowed:
                    raise LegacyConfigError(
                        f"Layer `{name}` ({class_name}) in {where} (Keras {version}) sets "
                        f"`{key}` to {value!r}, which Keras 3's {class_name} does not have. "
                        + RE_EXPORT
                    )
        if class_name.startswith("Depthwise"):
            config.pop("filters", None)
    dtype = config.get("dtype")
    if isinstance(dtype, dict) and dtype.get("class_name") == "Policy":
        policy = (dtype.get("config") or {}).get("name")
        config["dtype"] = {
            "module": "keras",
            "class_name": "DTypePolicy",
            "config": {"name": policy},
            "registered_name": None,
        }
    for key, value in list(config.items()):
        module = _object_module(key)
        if module is not None and isinstance(value, dict) and "class_name" in value:
            config[key] = _translate_object(value, module)
    result = dict(entry)
    result["config"] = config
    result.setdefault("module", "keras.layers")
    result.setdefault("registered_name", None)
    return result


def _object_module(key: str) -> str | None:
    for suffix, module in _OBJECT_MODULES:
        if key.endswith(suffix):
            return module
    return None


def _translate_object(value: dict[str, Any], module: str) -> dict[str, Any]:
    """An initializer, regularizer or constraint in the form Keras 3 writes."""
    result = dict(value)
    config = result.get("config")
    if isinstance(config, dict):
        config = dict(config)
        if module == "keras.initializers":
            config.pop("dtype", None)  # tf.keras 2.0-2.2 recorded it; Keras 3 refuses it
            if result.get("class_name") == "VarianceScaling" and config.get("distribution") == (
                "normal"
            ):
                # Keras 2.0-2.2's "normal" was a truncated normal; Keras 3 spells it so.
                config["distribution"] = "truncated_normal"
        result["config"] = config
    result.setdefault("module", module)
    result.setdefault("registered_name", None)
    return result
