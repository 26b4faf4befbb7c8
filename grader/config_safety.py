"""The config safety screen: which classes a model config may name, before anything is built.

A config names classes that Keras would import and rebuild. The analysis
(`grader.graph_builder`) and the sandboxes' gate (`grader.training.safe_model`) both screen each
layer entry here: a code-carrying class, a module outside Keras or a custom registered name is
`UnsafeLayer`; a built-in Keras class the analysis has no spec for is `UnsupportedLayer`; any
other class is someone's own code (`UnsafeLayer`). The nested objects inside a layer's
arguments are screened by `grader.layer_arguments`. Nothing here imports Keras.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from grader.errors import UnsafeLayer, UnsupportedLayer
from grader.layer_arguments import check_layer_arguments
from grader.layers import LayerSpec, get_spec
from grader.layers.keras_classes import CODE_CARRYING_CLASSES, KERAS_BUILTIN_LAYERS

__all__ = ["check_code", "is_keras_module", "layer_spec"]


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
