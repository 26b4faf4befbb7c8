"""The config safety screen: which classes a model config may name, before anything is built.

A config names classes that Keras would import and rebuild. The analysis
(`grader.graph_builder`) and the sandboxes' gate (`grader.training.safe_model`) both screen each
layer entry here: a code-carrying class, a module outside Keras or a custom registered name is
`UnsafeLayer`; a built-in Keras class the analysis has no spec for is `UnsupportedLayer`; any
other class is someone's own code (`UnsafeLayer`). The nested objects inside a layer's
arguments are screened by `grader.layer_arguments`. `screen_model_config` is the whole-config
screen the sandboxes run before Keras sees a config (`grader.training.safe_model`), stricter
about where models come from. The class lists are `grader.layers.keras_classes`, built from the
layer records. Nothing here imports Keras.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from grader.errors import InvalidModelConfig, UnsafeLayer, UnsupportedLayer
from grader.keras_config import MODEL_CLASSES
from grader.layer_arguments import check_layer_arguments
from grader.layers import LayerSpec, get_spec
from grader.layers.keras_classes import CODE_CARRYING_CLASSES, KERAS_BUILTIN_LAYERS

__all__ = [
    "MODEL_MODULES",
    "check_code",
    "is_keras_module",
    "layer_spec",
    "screen_model_config",
]


def is_keras_module(module: Any) -> bool:
    """Whether a serialized object's ``module`` is Keras' own (``keras`` or ``keras.*``)."""
    return isinstance(module, str) and (module == "keras" or module.startswith("keras."))


def check_code(layer_cfg: Mapping[str, Any], name: str, *, outermost: bool = False) -> None:
    """Refuse a layer config that would need code from outside Keras to be rebuilt, or that
    holds a serialized object where none belongs (`grader.layer_arguments`)."""
    class_name = str(layer_cfg.get("class_name"))
    module = layer_cfg.get("module")
    registered = layer_cfg.get("registered_name")
    if class_name in CODE_CARRYING_CLASSES:
        raise UnsafeLayer(
            f"Layer `{name}` ({class_name}) carries Python code, which is never run here. "
            "Expected only built-in Keras layers; rewrite it with built-in layers.",
            layer_name=name,
            class_name=class_name,
        )
    if module is not None and not is_keras_module(module):
        raise UnsafeLayer(
            f"Layer `{name}` ({class_name}) comes from module `{module}`, not from Keras. "
            "Expected only built-in Keras layers.",
            layer_name=name,
            class_name=class_name,
        )
    if registered is not None and registered != class_name:
        raise UnsafeLayer(
            f"Layer `{name}` ({class_name}) is a custom registered class ({registered!r}). "
            "Expected only built-in Keras layers.",
            layer_name=name,
            class_name=class_name,
        )
    check_layer_arguments(layer_cfg, name, outermost=outermost)


def layer_spec(class_name: str, name: str) -> LayerSpec:
    """The spec of a leaf layer class, or the refusal that says why there is none."""
    spec = get_spec(class_name)
    if spec is not None:
        return spec
    if class_name in KERAS_BUILTIN_LAYERS:
        raise UnsupportedLayer(
            f"Layer `{name}` ({class_name}) is not supported by the model analysis. "
            "Expected one of the supported layer classes, listed under 'Supported "
            "layers' on the assignment's page and by `python manage.py check_model "
            "--list-layers`.",
            layer_name=name,
            class_name=class_name,
        )
    raise UnsafeLayer(
        f"Layer `{name}` ({class_name}) is not a built-in Keras layer. Expected only "
        "built-in Keras layers; custom classes carry code that is never run here.",
        layer_name=name,
        class_name=class_name,
    )


# The modules Keras writes (or reads) for its model classes: Keras 3.15 writes a Sequential
# model as module `keras` and a Functional one as `keras.src.models.functional`, also nested.
MODEL_MODULES: dict[str, frozenset[str | None]] = {
    "Sequential": frozenset({None, "keras", "keras.models", "keras.src.models.sequential"}),
    "Functional": frozenset({None, "keras", "keras.models", "keras.src.models.functional"}),
    "Model": frozenset({None, "keras", "keras.models", "keras.src.models.model"}),
}


def _layer_entries(config: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Mapping]]:
    """Every layer entry of a model config, nested models included, with qualified names."""
    for entry in (config.get("config") or {}).get("layers") or []:
        if not isinstance(entry, Mapping):
            raise InvalidModelConfig(
                f"Model config lists a layer of type {type(entry).__name__}. Expected a mapping."
            )
        name = str((entry.get("config") or {}).get("name", "?"))
        yield f"{prefix}{name}", entry
        if entry.get("class_name") in MODEL_CLASSES:
            yield from _layer_entries(entry, prefix=f"{prefix}{name}/")


def screen_model_config(config: Mapping[str, Any]) -> None:
    """Refuse a whole model config that carries code or names classes outside Keras' own.

    Checks the model's class and module, each layer's class against Keras' built-in layers
    (`KERAS_BUILTIN_LAYERS`), its module and registered name, and each layer's arguments
    against the allow-list of nested objects (`grader.layer_arguments`), nested models and
    layers no call reaches included. Keras is not imported.

    Raises:
        UnsafeLayer: a ``Lambda``, a custom class or a serialized Python function.
        InvalidModelConfig: not a Keras 3 model config, or a Keras object or data where the
            arguments allow none.
        UnsupportedLayer: a quantized dtype policy or another value the allow-list refuses.
    """
    if not isinstance(config, Mapping) or config.get("class_name") not in MODEL_CLASSES:
        found = config.get("class_name") if isinstance(config, Mapping) else type(config).__name__
        raise InvalidModelConfig(
            f"Model config has class `{found}`. Expected one of {sorted(MODEL_CLASSES)}."
        )
    outer_class, outer_module = str(config.get("class_name")), config.get("module")
    if outer_module not in MODEL_MODULES[outer_class]:
        raise UnsafeLayer(
            f"Model `{_model_name(config)}` ({outer_class}) comes from module `{outer_module}`. "
            f"Expected a built-in Keras model, as model.to_json() writes it.",
            layer_name=_model_name(config),
            class_name=outer_class,
        )
    entries = list(_layer_entries(config))
    # Code-carrying classes are refused by name in a first pass: no Keras import needed.
    for name, entry in entries:
        class_name = str(entry.get("class_name"))
        if class_name in CODE_CARRYING_CLASSES:
            raise UnsafeLayer(
                f"Layer `{name}` ({class_name}) carries Python code. Expected only built-in "
                "Keras layers; Lambda layers and custom classes are never loaded.",
                layer_name=name,
                class_name=class_name,
            )
    # Then every nested object, by where it is: the allow-list the analysis applies too.
    check_layer_arguments(config, _model_name(config), outermost=True)
    for name, entry in entries:
        check_layer_arguments(entry, name)
    for name, entry in entries:
        class_name = str(entry.get("class_name"))
        module = entry.get("module")
        registered = entry.get("registered_name")
        if class_name in MODEL_CLASSES and module in MODEL_MODULES[class_name]:
            if registered not in (None, class_name):
                raise UnsafeLayer(
                    f"Layer `{name}` ({class_name}) is registered as `{registered}`. Expected "
                    "a built-in Keras model.",
                    layer_name=name,
                    class_name=class_name,
                )
            continue
        if class_name not in KERAS_BUILTIN_LAYERS:
            raise UnsafeLayer(
                f"Layer `{name}` ({class_name}) is not a built-in Keras layer. Expected only "
                "built-in Keras layers; custom classes are never loaded.",
                layer_name=name,
                class_name=class_name,
            )
        if (module is not None and not is_keras_module(module)) or registered not in (
            None,
            class_name,
        ):
            raise UnsafeLayer(
                f"Layer `{name}` ({class_name}) is registered as `{registered}` from module "
                f"`{module}`. Expected a built-in Keras layer from `keras.layers`.",
                layer_name=name,
                class_name=class_name,
            )


def _model_name(config: Mapping[str, Any]) -> str:
    inner = config.get("config")
    name = inner.get("name") if isinstance(inner, Mapping) else None
    return str(name or config.get("class_name"))
