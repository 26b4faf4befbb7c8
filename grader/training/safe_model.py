"""Build Keras models from untrusted configs without running untrusted code.

Two gates, in order: first a pure-Python walk of the config (`grader.config_safety`, the screen
the analysis shares) refuses ``Lambda`` layers, custom classes, anything not a built-in Keras
layer and any serialized object where none belongs (`grader.layer_arguments`), then runs the
same analysis as the host's check stage and lets its every refusal stand
(`check_model_config`); only then does Keras see the config, through its safe mode and with no
custom objects, so even a config that slipped past the first gate cannot deserialize code.
Models are built with fresh weights; a student's own weights are never used
for training.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from grader.analysis import analyze
from grader.config_safety import screen_model_config
from grader.errors import InvalidModelConfig
from grader.loading import load_model_config

MAX_CONFIG_BYTES = 2 * 1024 * 1024


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
    screen_model_config(config)
    # The host's own analysis, every refusal standing: a config the check stage would refuse
    # (an unsupported layer, shapes that do not fit, an object where none belongs) never
    # reaches Keras, here or in any other sandbox.
    analyze(dict(config))


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
