"""The static fit of a model to its dataset, and layer names TensorFlow accepts.

The name rule is checked against Keras 3 / TensorFlow themselves (`tf` marker): every name the
grader accepts trains and predicts, every name it refuses fails in Keras.
"""

from __future__ import annotations

import copy
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from grader.datasets import get_source
from grader.errors import DatasetMismatch, InvalidModelConfig
from grader.fit import check_dataset_fit, check_names, invalid_name_message
from grader.report import check_model
from tests.support.fixture_models import model_path

SYNTHETIC = get_source("synthetic")
REAL = Path(__file__).resolve().parents[1] / "fixtures" / "real"


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    # TensorFlow refuses some names only once a layer is built inside Keras' name scope, and the
    # refusal leaves that scope on Keras' global stack: every later model's variable names would
    # carry it (and fail). Clear Keras' global state after each test that imported it.
    yield
    keras = sys.modules.get("keras")
    if keras is not None:
        keras.backend.clear_session(free_memory=False)


def _smoke() -> dict[str, Any]:
    return json.loads(model_path("smoke_separable").read_text())


@pytest.mark.parametrize(
    ("inputs", "outputs"),
    [([(16, 16, 3)], [(4,)]), ([(None, None, 3)], [(4,)]), ([(16, None, 3)], [(4,)])],
)
def test_a_model_taking_the_dataset_images_and_giving_one_score_per_class_fits(inputs, outputs):
    check_dataset_fit(inputs, outputs, SYNTHETIC)


@pytest.mark.parametrize(
    ("inputs", "outputs", "message"),
    [
        (
            [(32, 32, 3)],
            [(4,)],
            "Model input shape is (32, 32, 3). Expected (16, 16, 3), the images of dataset "
            "`synthetic`.",
        ),
        (
            [(16, 16)],
            [(4,)],
            "Model input shape is (16, 16). Expected (16, 16, 3), the images of dataset "
            "`synthetic`.",
        ),
        (
            [(16, 16, 3), (16, 16, 3)],
            [(4,)],
            "Model has 2 inputs. Expected one input of shape (16, 16, 3), the images of "
            "dataset `synthetic`.",
        ),
        (
            [(16, 16, 3)],
            [(10,)],
            "Model output shape is (10,). Expected (4,), one score for each of the 4 classes "
            "of dataset `synthetic`.",
        ),
        (
            [(16, 16, 3)],
            [(4, 4, 4)],
            "Model output shape is (4, 4, 4). Expected (4,), one score for each of the 4 "
            "classes of dataset `synthetic`. The output keeps the spatial axes (4, 4): its last "
            "layers score every position. End the model with `GlobalAveragePooling2D()` or "
            "`Flatten()` before `Dense(4)`.",
        ),
    ],
)
def test_a_model_that_does_not_fit_the_dataset_is_refused(inputs, outputs, message):
    with pytest.raises(DatasetMismatch) as info:
        check_dataset_fit(inputs, outputs, SYNTHETIC)
    assert info.value.message == message
    assert info.value.error_code == "dataset_mismatch"


@pytest.mark.parametrize(
    ("slug", "axes"),
    [
        ("mnist-kbigstar-dense-on-feature-map", "(12, 12)"),
        ("mnist-timeseries-no-input-dense-on-map", "(7, 7)"),
        ("ece285-niallodowd-conv-autoencoder", "(32, 32)"),
    ],
)
def test_a_model_scoring_every_position_is_told_to_pool_or_flatten(slug, axes):
    # Real course models (tests/fixtures/real): Dense layers on a feature map without Flatten,
    # and an autoencoder handed in as a classifier.
    config = json.loads((REAL / slug / "model.json").read_text())
    with pytest.raises(DatasetMismatch) as info:
        check_model(config, dataset="mnist")
    assert f"The output keeps the spatial axes {axes}" in info.value.message
    assert "End the model with `GlobalAveragePooling2D()` or `Flatten()` before `Dense(10)`." in (
        info.value.message
    )


def test_a_flat_output_of_the_wrong_size_gets_no_pooling_hint():
    with pytest.raises(DatasetMismatch) as info:
        check_dataset_fit([(16, 16, 3)], [(10,)], SYNTHETIC)
    assert "spatial axes" not in info.value.message


def test_check_model_refuses_a_dataset_mismatch_before_any_rule():
    # The smoke model (16x16x3 -> 4) against CIFAR-10 (32x32x3, 10 classes) and the smoke rules.
    with pytest.raises(DatasetMismatch, match=r"Expected \(32, 32, 3\), the images of dataset"):
        check_model(_smoke(), "rules: [{id: max_params, limit: 10}]", dataset="cifar10")
    report = check_model(_smoke(), "rules: [{id: max_params, limit: 10}]", dataset=SYNTHETIC)
    assert report["rules"][0]["passed"] is False  # fits: the rules are evaluated


# Names as Keras 3.15 / TensorFlow 2.21 treat them (checked by the `tf` test below).
LAYER_NAMES_OK = ["dense", "_d", "-d", ".d", "d>e", "d-e", "d.e", "1d", ">d", "Conv2D_3"]
LAYER_NAMES_REFUSED = ["d<e", "d e", "d:e", "é", "d\\e", "\\d", "d(1)"]
MODEL_NAMES_OK = ["m", "1m", ".m", "m>x", "m.-x", "m_1"]
MODEL_NAMES_REFUSED = ["_m", "-m", ">m", "m<", "m e", "m\\x"]


def _with_last_layer_name(name: str) -> dict[str, Any]:
    config = copy.deepcopy(_smoke())
    config["config"]["layers"][-1]["config"]["name"] = name
    return config


@pytest.mark.parametrize("name", LAYER_NAMES_OK)
def test_layer_names_tensorflow_accepts_pass(name):
    check_names(_with_last_layer_name(name))


@pytest.mark.parametrize("name", LAYER_NAMES_REFUSED)
def test_layer_names_tensorflow_refuses_are_invalid_models(name):
    with pytest.raises(InvalidModelConfig, match="has a name TensorFlow refuses"):
        check_model(_with_last_layer_name(name))


def test_the_name_message_says_which_layer_what_it_contains_and_what_is_expected():
    with pytest.raises(InvalidModelConfig) as info:
        check_model(_with_last_layer_name("scores<1>"))
    assert info.value.message == (
        "Layer `scores<1>` (Dense) has a name TensorFlow refuses as a name scope: it contains "
        "`<`. Expected a layer name of letters A-Z and a-z, digits, `_`, `.`, `-` and `>` only."
    )


@pytest.mark.parametrize("name", MODEL_NAMES_REFUSED)
def test_model_names_tensorflow_refuses_as_a_root_scope_are_invalid(name):
    assert invalid_name_message(name, what="Model", root=True) is not None
    config = _smoke()
    config["config"]["name"] = name
    with pytest.raises(InvalidModelConfig, match=re.escape(f"Model `{name}`")):
        check_names(config)


@pytest.mark.parametrize("name", MODEL_NAMES_OK)
def test_model_names_tensorflow_accepts_pass(name):
    assert invalid_name_message(name, what="Model", root=True) is None


def test_an_input_layer_name_is_not_a_scope_and_is_not_checked():
    config = _smoke()
    [first] = [c for c in config["config"]["layers"] if c["class_name"] == "InputLayer"] or [None]
    if first is None:  # a Sequential config may carry its input in `build_input_shape`
        pytest.skip("fixture has no InputLayer entry")
    first["config"]["name"] = "in put<"
    check_names(config)


@pytest.mark.tf
@pytest.mark.timeout(600)
def test_the_name_rule_matches_keras_and_tensorflow():
    """Each name trains and predicts in Keras exactly when the grader accepts it."""
    import os

    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras
    import numpy as np

    x = np.random.default_rng(0).random((4, 4, 4, 1), dtype=np.float32)
    y = np.array([0, 1, 0, 1])

    def trains(model_name: str, layer_name: str) -> bool:
        try:
            model = keras.Sequential(
                [
                    keras.Input((4, 4, 1)),
                    keras.layers.Flatten(name="flat"),
                    keras.layers.Dense(2, name=layer_name),
                ],
                name=model_name,
            )
            rebuilt = keras.models.model_from_json(model.to_json())
            rebuilt.compile("sgd", "sparse_categorical_crossentropy")
            rebuilt.fit(x, y, epochs=1, verbose=0)
            rebuilt.predict(x, verbose=0)
        except ValueError:
            return False
        return True

    for name in LAYER_NAMES_OK + LAYER_NAMES_REFUSED:
        assert trains("m", name) is (invalid_name_message(name, what="L") is None), name
    for name in MODEL_NAMES_OK + MODEL_NAMES_REFUSED:
        accepted = invalid_name_message(name, what="M", root=True) is None
        assert trains(name, "dense") is accepted, name


def test_the_unsupported_layer_message_points_to_the_list():
    from grader.errors import UnsupportedLayer
    from grader.layers import supported_classes

    config = _smoke()
    dense = config["config"]["layers"][-1]
    dense["class_name"] = "MultiHeadAttention"  # built into Keras, not analysed
    assert "MultiHeadAttention" not in supported_classes()
    with pytest.raises(UnsupportedLayer) as info:
        check_model(config)
    assert "'Supported layers' on the assignment's page" in info.value.message
    assert "`python manage.py check_model --list-layers`" in info.value.message
