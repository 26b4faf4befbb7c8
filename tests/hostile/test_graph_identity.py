"""Attack: make the grader read another network than the one Keras builds and trains.

A model config can be written so that the grader's static analysis and Keras' own rebuilding
(what the trainer runs) disagree on which entries are one layer, what a layer is called, which
layers exist at all, or with which shape a layer is built. Each test below is one such attack,
on the `smoke` preset (at most 20,000 parameters, at least 2 SeparableConv2D layers, dropout at
most 0.2): the grader must refuse it, naming the entry, or count exactly what Keras builds.
Numbers are checked against Keras itself (tests marked ``tf``) or by hand.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from grader.errors import InvalidModelConfig
from grader.presets import load_preset
from grader.report import check_model, format_text
from tests.support.dataset_key import TEST_DATASET_KEY

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "models"
# Keras-written: a Sequential model of 4 SeparableConv2D layers, 2,671 parameters.
SMOKE = json.loads((FIXTURES / "smoke_separable.json").read_text())
BUDGET = 20_000


def _smoke() -> dict[str, Any]:
    return copy.deepcopy(SMOKE)


def _entry(config: dict[str, Any], name: str) -> dict[str, Any]:
    return next(e for e in config["config"]["layers"] if e["config"]["name"] == name)


def _keras(config: dict[str, Any]) -> Any:
    """The model the trainer rebuilds from `config`."""
    import keras

    return keras.saving.deserialize_keras_object(copy.deepcopy(config), safe_mode=True)


# -- one layer under two names --------------------------------------------------------------------


def alias_config() -> dict[str, Any]:
    """A large SeparableConv2D `big` listed under the top-level name of the layer before it.

    Keras reads a Sequential model's entries by ``config.name`` only: `big` is a new layer of
    29,216 parameters. The grader used to read the top-level name first, so `big` was a second
    call of `separable_conv2d_3` and added nothing: 2,671 parameters, under the budget.
    """
    config = _smoke()
    big = copy.deepcopy(_entry(config, "separable_conv2d_3"))
    big["config"].update(name="big", kernel_size=[5, 5], depth_multiplier=16)
    big["name"] = "separable_conv2d_3"
    layers = config["config"]["layers"]
    layers.insert(layers.index(_entry(config, "separable_conv2d_3")) + 1, big)
    return config


def test_a_layer_listed_under_an_earlier_layers_name_is_refused() -> None:
    with pytest.raises(InvalidModelConfig) as info:
        check_model(alias_config(), load_preset("smoke"))
    message = info.value.message
    assert "Layer `big` (SeparableConv2D)" in message
    assert "top-level name 'separable_conv2d_3'" in message
    assert "Expected both names to be the same" in message


@pytest.mark.tf
def test_the_alias_attack_is_over_budget_in_the_model_keras_trains() -> None:
    model = _keras(alias_config())
    # By hand: depthwise 5*5*32*16 + pointwise 512*32 + bias 32 = 29,216 more.
    assert model.get_layer("big").count_params() == 5 * 5 * 32 * 16 + 32 * 16 * 32 + 32
    assert model.count_params() == 2_671 + 29_216 > BUDGET


@pytest.mark.bwrap
def test_the_alias_submission_ends_invalid_before_any_training(
    tmp_path: Path, bwrap_available: None
) -> None:
    from grader.datasets import prepare_dataset

    prepared_data_dir = tmp_path / "data"
    prepare_dataset("synthetic", prepared_data_dir, key=TEST_DATASET_KEY)
    upload = tmp_path / "alias.json"
    upload.write_text(json.dumps(alias_config()))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "GRADER_ENV_FILE": "",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite3'}",
        "GRADER_VAR_DIR": str(tmp_path / "var"),
        "GRADER_DATA_DIR": str(prepared_data_dir),
        "GRADER_JOBS_DIR": str(tmp_path / "jobs"),
    }
    completed = subprocess.run(
        [sys.executable, "manage.py", "grade", str(upload), "--assignment", "smoke",
         "--sandbox", "bwrap", "--format", "json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip

    assert completed.returncode == 1, completed.stdout + completed.stderr
    report = json.loads(completed.stdout)
    assert (report["status"], report["reason"]) == ("failed", "invalid_submission")
    assert "Layer `big` (SeparableConv2D)" in report["message"]
    assert report["score"] is None
    assert report["training"] is None and report["evaluation"] is None


# -- a name the grader invents --------------------------------------------------------------------


def collision_config() -> dict[str, Any]:
    """No InputLayer (the input shape comes from ``build_input_shape``), and a first layer
    named `input`, the name the grader gave the input it adds: Dropout(0.5) became that input."""
    config = _smoke()
    layers = config["config"]["layers"]
    layers.pop(0)
    layers.insert(0, {
        "module": "keras.layers", "class_name": "Dropout", "registered_name": None,
        "config": {"name": "input", "trainable": True, "dtype": "float32", "rate": 0.5,
                   "seed": None, "noise_shape": None},
    })  # fmt: skip
    return config


def test_a_layer_named_like_the_added_input_is_counted_as_itself() -> None:
    report = check_model(collision_config(), load_preset("smoke"))
    rows = {row["name"]: row["class_name"] for row in report["layers"]}
    assert rows["input"] == "Dropout"
    assert rows["input_layer"] == "InputLayer"  # the added input takes a name nobody has
    [dropout] = [r for r in report["rules"] if r["id"] == "max_dropout"]
    assert (dropout["passed"], dropout["measured"]) == (False, 0.5)
    assert report["params"]["total"] == 2_671


@pytest.mark.tf
def test_the_collision_config_is_the_model_keras_trains() -> None:
    model = _keras(collision_config())
    assert type(model.get_layer("input")).__name__ == "Dropout"
    assert model.get_layer("input").rate == 0.5
    assert model.count_params() == 2_671


# -- dead layers ----------------------------------------------------------------------------------


def _dead_branch_config(dead: str) -> tuple[dict[str, Any], int]:
    """A Functional model of plain convolutions, plus a branch no output uses (`dead`:
    'separable' for two SeparableConv2D layers, 'dense' for a 30,000-parameter Dense layer).
    Returns the config and the parameters Keras counts (the live network)."""
    import keras
    from keras import layers

    inputs = keras.Input((16, 16, 3), name="image")
    x = layers.Conv2D(8, 3, padding="same", name="conv_a")(inputs)
    x = layers.Conv2D(8, 3, padding="same", name="conv_b")(x)
    head = layers.Dense(4, name="classifier")(layers.GlobalAveragePooling2D(name="gap")(x))
    if dead == "separable":
        y = layers.SeparableConv2D(16, 3, padding="same", name="left_sep")(x)
        y = layers.SeparableConv2D(16, 3, padding="same", name="left_sep_2")(y)
        extra = layers.GlobalAveragePooling2D(name="left_gap")(y)
    else:
        extra = layers.Dense(14, name="leftover")(layers.Flatten(name="flat")(x))
    model = keras.Model(inputs, [head, extra], name="experiment")
    config = json.loads(model.to_json())
    config["config"]["output_layers"] = [["classifier", 0, 0]]  # the branch is left dangling
    return config, _keras(config).count_params()


@pytest.mark.tf
def test_a_dead_branch_of_separable_convolutions_counts_for_nothing() -> None:
    config, keras_total = _dead_branch_config("separable")
    report = check_model(config, load_preset("smoke"))
    [separable] = [r for r in report["rules"] if r["id"] == "separable_conv_used"]
    assert (separable["passed"], separable["measured"]) == (False, 0)
    assert report["params"]["total"] == keras_total
    assert report["dead_layers"] == [
        {"name": "left_sep", "class_name": "SeparableConv2D"},
        {"name": "left_sep_2", "class_name": "SeparableConv2D"},
        {"name": "left_gap", "class_name": "GlobalAveragePooling2D"},
    ]
    assert {row["name"] for row in report["layers"]}.isdisjoint({"left_sep", "left_sep_2"})


@pytest.mark.tf
def test_a_leftover_layer_is_left_out_of_the_budget_and_the_report_says_so() -> None:
    config, keras_total = _dead_branch_config("dense")
    report = check_model(config, load_preset("smoke"))
    [budget] = [r for r in report["rules"] if r["id"] == "max_params"]
    # By hand: conv_a 3*3*3*8+8 = 224, conv_b 3*3*8*8+8 = 584, classifier 8*4+4 = 36.
    assert budget["measured"] == report["params"]["total"] == keras_total == 224 + 584 + 36
    assert budget["passed"] is True
    text = format_text(report)
    assert "Not counted: layer `leftover` (Dense)" in text
    assert "not connected to the model's outputs" in text


# -- build_config ---------------------------------------------------------------------------------


def build_config_config() -> dict[str, Any]:
    """A PReLU after a 16-channel convolution, whose build_config says 1 channel: Keras builds
    alpha for (16, 16, 1), 256 parameters, and broadcasts it; the call needs 4,096."""
    config = _smoke()
    prelu = {
        "module": "keras.layers", "class_name": "PReLU", "registered_name": None,
        "config": {"name": "prelu", "trainable": True, "dtype": "float32",
                   "alpha_initializer": {"module": "keras.initializers", "class_name": "Zeros",
                                         "config": {}, "registered_name": None},
                   "alpha_regularizer": None, "alpha_constraint": None, "shared_axes": None},
        "build_config": {"input_shape": [None, 16, 16, 1]},
    }  # fmt: skip
    layers = config["config"]["layers"]
    layers.insert(layers.index(_entry(config, "separable_conv2d_1")) + 1, prelu)
    return config


def test_a_build_config_for_another_shape_is_refused() -> None:
    with pytest.raises(InvalidModelConfig) as info:
        check_model(build_config_config(), load_preset("smoke"))
    message = info.value.message
    assert "Layer `prelu` (PReLU) has build_config input_shape (None, 16, 16, 1)" in message
    assert "calls it on (None, 16, 16, 16)" in message


@pytest.mark.tf
def test_keras_builds_the_weights_the_build_config_says() -> None:
    model = _keras(build_config_config())
    assert model.get_layer("prelu").count_params() == 16 * 16 * 1  # not 16 * 16 * 16


# -- keys Keras honours ---------------------------------------------------------------------------


def _separable_reference() -> dict[str, Any]:
    return json.loads((FIXTURES / "cifar10_separable_reference.json").read_text())


def _share_ids(config: dict[str, Any]) -> None:
    for name in ("separable_conv2d_1", "separable_conv2d_2"):
        _entry(config, name)["shared_object_id"] = 140_000_000_001


def _no_module(config: dict[str, Any]) -> None:
    del _entry(config, "separable_conv2d_2")["module"]


def _sequential_wiring(config: dict[str, Any]) -> None:
    _entry(config, "separable_conv2d_2")["inbound_nodes"] = [{"args": [], "kwargs": {}}]


def _two_input_shapes(config: dict[str, Any]) -> None:
    config["config"]["layers"][0]["config"]["input_shape"] = [32, 32, 3]


def _call_keyword(config: dict[str, Any]) -> None:
    _entry(config, "separable_conv2d")["inbound_nodes"][0]["kwargs"] = {"scale": 2.0}


@pytest.mark.parametrize(
    ("base", "edit", "message"),
    [
        pytest.param(_smoke, _share_ids,
                     r"Layer `separable_conv2d_1` \(SeparableConv2D\) has `shared_object_id`",
                     id="shared_object_id"),
        pytest.param(_smoke, _no_module,
                     r"Layer `separable_conv2d_2` \(SeparableConv2D\) has no `module` key",
                     id="legacy_entry"),
        pytest.param(_smoke, _sequential_wiring,
                     r"`separable_conv2d_2` .* lists `inbound_nodes`, which Keras ignores",
                     id="inbound_nodes_in_sequential"),
        pytest.param(_smoke, _two_input_shapes,
                     r"InputLayer `input_layer` gives `batch_shape` and `input_shape`",
                     id="two_input_shapes"),
        pytest.param(_separable_reference, _call_keyword,
                     r"Layer `separable_conv2d` is called with scale=2.0",
                     id="call_keyword"),
    ],
)  # fmt: skip
def test_keys_keras_honours_but_the_grader_does_not_model_are_refused(base, edit, message):
    config = base()
    edit(config)
    with pytest.raises(InvalidModelConfig, match=message):
        check_model(config, load_preset("smoke"))


# -- trainable flags Keras drops ------------------------------------------------------------------


@pytest.mark.tf
def test_a_sequential_models_own_trainable_flag_is_counted_as_keras_trains_it() -> None:
    """Keras' `Sequential.from_config` drops the model's own ``trainable``: a model marked
    frozen whose layers are not frozen trains all of them, and the report says so."""
    config = _smoke()
    config["config"]["trainable"] = False
    report = check_model(config)
    model = _keras(config)
    trained = sum(int(v.numpy().size) for v in model.trainable_weights)
    assert report["params"]["trainable"] == trained == 2_671
