"""Build Keras models from untrusted configs without running untrusted code.

Two gates, in order: first a pure-Python walk of the config refuses ``Lambda`` layers, custom
classes, anything not a built-in Keras layer and any serialized object where none belongs
(`grader.layer_arguments`), then runs the same analysis as the host's check stage and lets its
every refusal stand (`check_model_config`); only then does Keras see the config, through its
safe mode and with no custom objects, so even a config that slipped past the first gate cannot
deserialize code. Models are built with fresh weights; a student's own weights are never used
for training.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from grader.analysis import analyze
from grader.errors import InvalidModelConfig, UnsafeLayer
from grader.keras_config import MODEL_CLASSES
from grader.layer_arguments import CODE_CARRYING_CLASSES, check_layer_arguments
from grader.loading import load_model_config

MAX_CONFIG_BYTES = 2 * 1024 * 1024
# The modules Keras writes (or reads) for its model classes: Keras 3.15 writes a Sequential
# model as module `keras` and a Functional one as `keras.src.models.functional`, also nested.
MODEL_MODULES: dict[str, frozenset[str | None]] = {
    "Sequential": frozenset({None, "keras", "keras.models", "keras.src.models.sequential"}),
    "Functional": frozenset({None, "keras", "keras.models", "keras.src.models.functional"}),
    "Model": frozenset({None, "keras", "keras.models", "keras.src.models.model"}),
}
# Exported by `keras.layers` yet able to run arbitrary code or load foreign graphs: the one
# list the analysis refuses too.
CODE_CARRYING_LAYERS = CODE_CARRYING_CLASSES


@lru_cache(maxsize=1)
def builtin_layer_classes() -> frozenset[str]:
    """Names of the layer classes Keras itself exports, minus those that carry code."""
    import keras

    names = set()
    for name in dir(keras.layers):
        candidate = getattr(keras.layers, name)
        if isinstance(candidate, type) and issubclass(candidate, keras.layers.Layer):
            names.add(candidate.__name__)
            names.add(name)
    return frozenset(names - CODE_CARRYING_LAYERS)


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


def check_model_config(config: Mapping[str, Any]) -> None:
    """Refuse configs that carry code, use classes outside Keras' built-in layers, or that the
    host's analysis refuses.

    Checks each layer's class against the layers Keras exports and each layer's arguments
    against the allow-list of nested objects (`grader.layer_arguments`, nested models and
    layers no call reaches included), then runs the project's pure-Python analysis
    (`grader.analysis`): whatever it refuses is refused here too, so Keras only ever builds a
    model the check stage could analyse.

    Raises:
        UnsafeLayer: a ``Lambda``, a custom class or a serialized Python function.
        InvalidModelConfig: not a Keras 3 model config the analysis can read, or a Keras object
            or data where the arguments allow none.
        UnsupportedLayer: a layer the analysis does not support.
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
        if class_name in CODE_CARRYING_LAYERS:
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
        if class_name not in builtin_layer_classes():
            raise UnsafeLayer(
                f"Layer `{name}` ({class_name}) is not a built-in Keras layer. Expected only "
                "built-in Keras layers; custom classes are never loaded.",
                layer_name=name,
                class_name=class_name,
            )
        if (module is not None and not str(module).startswith("keras")) or registered not in (
            None,
            class_name,
        ):
            raise UnsafeLayer(
                f"Layer `{name}` ({class_name}) is registered as `{registered}` from module "
                f"`{module}`. Expected a built-in Keras layer from `keras.layers`.",
                layer_name=name,
                class_name=class_name,
            )
    # The host's own analysis, every refusal standing: a config the check stage would refuse
    # (an unsupported layer, shapes that do not fit, an object where none belongs) never
    # reaches Keras, here or in any other sandbox.
    analyze(dict(config))


def _model_name(config: Mapping[str, Any]) -> str:
    inner = config.get("config")
    name = inner.get("name") if isinstance(inner, Mapping) else None
    return str(name or config.get("class_name"))


def parse_model_json(text: str) -> dict[str, Any]:
    """Parse and size-check a model config JSON string, then `check_model_config` it."""
    if len(text.encode("utf-8")) > MAX_CONFIG_BYTES:
        raise InvalidModelConfig(
            f"Model config is {len(text.encode('utf-8')):,} bytes. Expected at most "
            f"{MAX_CONFIG_BYTES:,} bytes."
        )
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidModelConfig(f"Model config is not valid JSON: {exc}.") from exc
    check_model_config(config)
    return config


def build_model(config: Mapping[str, Any]) -> Any:
    """A `keras.Model` with fresh weights from a checked config (safe mode, no custom objects).

    Raises:
        UnsafeLayer: see `check_model_config`.
        InvalidModelConfig: Keras cannot build the model from this config.
    """
    check_model_config(config)
    import keras

    plain = json.loads(json.dumps(config))
    # The grader compiles every model itself: a student's optimizer, loss and metrics are never
    # rebuilt (`grader.layer_arguments` leaves the outermost compile config unchecked for that).
    plain.pop("compile_config", None)
    try:
        model = keras.saving.deserialize_keras_object(plain, custom_objects=None, safe_mode=True)
    except Exception as exc:  # Keras raises many types for a bad config; all mean the same here.
        raise InvalidModelConfig(f"Keras cannot build the model from its config: {exc}") from exc
    if not isinstance(model, keras.Model):
        raise InvalidModelConfig(
            f"Model config built a `{type(model).__name__}`. Expected a keras.Model."
        )
    return model


def read_keras_archive_config(path: Path) -> dict[str, Any]:
    """The model config inside a ``.keras`` archive, read by `grader.loading` without Keras.

    Raises:
        ArchiveRejected: the archive is unsafe (zip bomb, traversal) or malformed.
        InvalidModelConfig: no model config inside.
    """
    return load_model_config(path)


def load_keras_file(path: Path) -> Any:
    """Open a student's ``.keras`` upload: config checked without Keras, then safe-mode load.

    Raises:
        UnsafeLayer: the archive's config holds a Lambda or a custom class.
        InvalidModelConfig: not a readable Keras 3 archive.
    """
    config = read_keras_archive_config(Path(path))
    check_model_config(config)
    import keras

    try:
        model = keras.saving.load_model(path, custom_objects=None, compile=False, safe_mode=True)
    except Exception as exc:  # see build_model
        raise InvalidModelConfig(f"Keras cannot load `{Path(path).name}`: {exc}") from exc
    if not isinstance(model, keras.Model):
        raise InvalidModelConfig(
            f"`{Path(path).name}` holds a `{type(model).__name__}`. Expected a keras.Model."
        )
    return model


def check_io_shapes(model: Any, input_shape: tuple[int, ...], num_classes: int) -> None:
    """Check that a built model takes the dataset's images and outputs one score per class.

    Raises:
        InvalidModelConfig: naming the model, the shape received and the shape expected.
    """
    expected_input = (None, *input_shape)
    got_input = tuple(model.input_shape) if not isinstance(model.input_shape, list) else None
    if (
        got_input is None
        or len(got_input) != len(expected_input)
        or any(
            g is not None and g != e for g, e in zip(got_input[1:], expected_input[1:], strict=True)
        )
    ):
        raise InvalidModelConfig(
            f"Model `{model.name}` takes inputs of shape {model.input_shape}. Expected "
            f"{expected_input} for this dataset."
        )
    got_output = tuple(model.output_shape) if not isinstance(model.output_shape, list) else None
    if got_output != (None, num_classes):
        raise InvalidModelConfig(
            f"Model `{model.name}` has output shape {model.output_shape}. Expected "
            f"(None, {num_classes}): one score per class."
        )
