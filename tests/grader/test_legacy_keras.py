"""Keras 2 `model.to_json()` files read as the Keras 3 models they describe.

The fixtures in `tests/fixtures/models/legacy/` are written in the formats Keras 2 wrote (2.0's
bare-list Sequential, 2.2's "Model" with list inbound nodes, tf.keras 2.4's InputLayer with
`batch_input_shape`, 2.15's module keys with BatchNormalization `axis: [3]`, a nested model whose
calls Keras 2 numbered from 1). Each is checked against the same architecture written in
Keras 3 code and built by Keras 3: every layer's class, parameter count and output shape, as
the grader's analysis reads the translation and as Keras 3 builds the translation.
"""

from __future__ import annotations

import contextlib
import json
import random
from pathlib import Path
from typing import Any

import pytest

from grader.analysis import analyze
from grader.errors import GraderError
from grader.legacy_keras import LegacyConfigError, is_legacy_config
from grader.loading import load_model_config, load_model_config_bytes

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "models"
LEGACY = FIXTURES / "legacy"
KERAS2 = [
    "keras2_0_sequential_list",
    "keras2_2_functional",
    "keras2_4_smoke_sequential",
    "keras2_4_nested",
    "keras2_15_sequential",
]


def keras3_equivalent(name: str) -> Any:
    """The fixture's architecture, written for Keras 3."""
    import keras
    from keras import layers

    if name == "keras2_0_sequential_list":
        return keras.Sequential(
            [
                keras.Input((32, 32, 3)),
                layers.Conv2D(32, (3, 3), padding="same", activation="relu"),
                layers.Conv2D(32, (3, 3), activation="relu"),
                layers.MaxPooling2D((2, 2)),
                layers.Dropout(0.25),
                layers.BatchNormalization(),
                layers.Flatten(),
                layers.Dense(64, activation="relu", kernel_regularizer=keras.regularizers.L2(5e-4)),
                layers.Dropout(0.5),
                layers.Dense(10, activation="softmax"),
            ]
        )
    if name == "keras2_2_functional":
        inputs = keras.Input((32, 32, 3))
        x = layers.Conv2D(16, 3, padding="same", use_bias=False)(inputs)
        x = layers.BatchNormalization()(x)
        x = layers.LeakyReLU(negative_slope=0.1)(x)
        x = layers.SeparableConv2D(16, 3, padding="same", dilation_rate=2, activation="relu")(x)
        shortcut = layers.Conv2D(16, 1, padding="same")(inputs)
        x = layers.Add()([x, shortcut])
        x = layers.MaxPooling2D()(x)
        x = layers.DepthwiseConv2D(
            3, strides=2, padding="same", depth_multiplier=2, activation="relu"
        )(x)
        x = layers.GlobalAveragePooling2D()(x)
        return keras.Model(inputs, layers.Dense(10, activation="softmax")(x))
    if name == "keras2_4_smoke_sequential":
        return keras.Sequential(
            [
                keras.Input((16, 16, 3)),
                layers.SeparableConv2D(16, 3, padding="same", activation="relu"),
                layers.SeparableConv2D(16, 3, padding="same", activation="relu"),
                layers.MaxPooling2D(),
                layers.SeparableConv2D(32, 3, padding="same", activation="relu"),
                layers.SeparableConv2D(32, 3, padding="same", activation="relu"),
                layers.GlobalAveragePooling2D(),
                layers.Dense(4, activation="softmax"),
            ]
        )
    if name == "keras2_4_nested":
        features = keras.Sequential(
            [
                keras.Input((16, 16, 3)),
                layers.Conv2D(8, 3, padding="same", activation="relu"),
                layers.MaxPooling2D(),
            ],
            name="features",
        )
        inputs = keras.Input((16, 16, 3))
        x = layers.GlobalAveragePooling2D()(features(inputs))
        return keras.Model(inputs, layers.Dense(4, activation="softmax")(x))
    if name == "keras2_15_sequential":
        return keras.Sequential(
            [
                keras.Input((32, 32, 3)),
                layers.Conv2D(8, 3, padding="same", use_bias=False),
                layers.BatchNormalization(),
                layers.ReLU(),
                layers.SeparableConv2D(16, 3, strides=2, padding="same", activation="relu"),
                layers.DepthwiseConv2D(3),
                layers.GlobalAveragePooling2D(),
                layers.Dropout(0.1),
                layers.Dense(10, activation="softmax"),
            ]
        )
    raise KeyError(name)


def keras_rows(model: Any) -> list[tuple[str, int, tuple]]:
    """(class, parameters, output shape without the batch axis) of every layer, nested ones
    flattened, InputLayers left out."""
    import keras

    rows = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            rows.extend(keras_rows(layer))
        elif type(layer).__name__ != "InputLayer":
            rows.append((type(layer).__name__, layer.count_params(), tuple(layer.output.shape[1:])))
    return rows


def analysis_rows(config: dict) -> list[tuple[str, int, tuple]]:
    return [
        (layer.class_name, layer.params.total, tuple(layer.output_shape))
        for layer in analyze(config).layers
        if layer.class_name != "InputLayer"
    ]


@pytest.mark.parametrize("name", KERAS2)
def test_keras_2_configs_are_recognised(name):
    raw = json.loads((LEGACY / f"{name}.json").read_text())
    assert is_legacy_config(raw)
    config = load_model_config(LEGACY / f"{name}.json")
    assert not is_legacy_config(config)
    assert config["module"] in {"keras", "keras.src.models.functional"}


@pytest.mark.tf
@pytest.mark.parametrize("name", KERAS2)
def test_the_analysis_of_a_keras_2_json_equals_keras_3_building_the_same_model(name):
    expected = keras_rows(keras3_equivalent(name))
    config = load_model_config(LEGACY / f"{name}.json")
    assert analysis_rows(config) == expected


@pytest.mark.tf
@pytest.mark.parametrize("name", KERAS2)
def test_keras_3_builds_the_translation_layer_for_layer(name):
    import keras

    from grader.training.safe_model import build_model

    config = load_model_config(LEGACY / f"{name}.json")
    expected = keras_rows(keras3_equivalent(name))
    assert keras_rows(keras.models.model_from_json(json.dumps(config))) == expected
    # The trainer's own gate (no Lambda, no custom class, Keras safe mode) accepts it too.
    assert keras_rows(build_model(config)) == expected


@pytest.mark.tf
def test_keras_3_alone_cannot_read_a_keras_2_json():
    """Why the translation exists: Keras 3 refuses the raw file."""
    import keras

    raw = (LEGACY / "keras2_4_smoke_sequential.json").read_text()
    with pytest.raises(Exception, match="Could not locate class 'Sequential'"):
        keras.models.model_from_json(raw)


def test_a_keras_2_sequential_with_the_input_on_its_first_layer_has_an_input_shape():
    # Keras 2.0 put `batch_input_shape` on the first Conv2D: not "has no input shape".
    analysis = analyze(load_model_config(LEGACY / "keras2_0_sequential_list.json"))
    assert analysis.input_shapes == ((32, 32, 3),)
    assert analysis.layers[0].class_name == "InputLayer"
    assert analysis.layers[0].name == "conv2d_1_input"


def test_keras_3_configs_pass_through_unchanged():
    for path in sorted(FIXTURES.glob("*.json")):
        if path.name == "expected.json":
            continue
        raw = json.loads(path.read_text())
        assert not is_legacy_config(raw), path.name
        assert load_model_config(path) == raw, path.name


def test_a_keras_1_config_is_refused_naming_keras_1_and_how_to_re_export():
    with pytest.raises(LegacyConfigError) as info:
        load_model_config(LEGACY / "keras1_sequential.json")
    message = info.value.message
    assert "written by Keras 1.2.2" in message
    assert "`Conv2D(32, (3, 3), padding='same')`" in message
    assert "upload `model.to_json()`" in message
    assert info.value.error_code == "invalid_model"


def test_an_untranslatable_keras_2_option_is_refused_naming_it():
    raw = json.loads((LEGACY / "keras2_0_sequential_list.json").read_text())
    raw["config"][4]["config"]["virtual_batch_size"] = 8
    with pytest.raises(LegacyConfigError) as info:
        load_model_config_bytes(json.dumps(raw).encode(), "model.json")
    assert "`batch_normalization_1` (BatchNormalization)" in info.value.message
    assert "`virtual_batch_size` to 8" in info.value.message
    assert "Keras 2.0.8" in info.value.message


def _mutate(value: Any, rng: random.Random) -> Any:
    """`value` with one node somewhere inside replaced by junk."""
    junk = [None, [], {}, "x", -1, 2**40, [[["a", 9, 9, {}]]], {"class_name": 3}, [None]]
    if isinstance(value, dict) and value and rng.random() < 0.8:
        key = rng.choice(list(value))
        return {**value, key: _mutate(value[key], rng)}
    if isinstance(value, list) and value and rng.random() < 0.8:
        index = rng.randrange(len(value))
        return [*value[:index], _mutate(value[index], rng), *value[index + 1 :]]
    return rng.choice(junk)


@pytest.mark.parametrize("name", KERAS2)
def test_damaged_keras_2_configs_fail_only_with_grader_errors(name):
    raw = json.loads((LEGACY / f"{name}.json").read_text())
    rng = random.Random(f"legacy-{name}")
    for _ in range(400):
        data = json.dumps(_mutate(raw, rng)).encode()
        with contextlib.suppress(GraderError):
            analyze(load_model_config_bytes(data, "model.json"))
