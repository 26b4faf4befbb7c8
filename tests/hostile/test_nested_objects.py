"""Serialized objects nested in layer arguments: models, layers, code and data Keras would rebuild.

Each attack is a model config a student could upload (hand-edited JSON, or what a crafted
``build_model`` serializes). Each must be refused by the host's check (`grader.report.
check_model`, before any sandbox or GPU time) and by the sandboxes' gate (`grader.training.
safe_model.check_model_config`, which the build runner, the trainer and the evaluator call
before Keras reads a config), with a message naming the layer and the argument. The ``tf``
tests show that Keras really does what the attack needs, so the refusals guard something.
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

from grader.errors import GraderError, InvalidModelConfig, UnsafeLayer
from grader.report import check_model
from grader.training.safe_model import check_model_config

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "models"


def _object(module: str, class_name: str, config: Any) -> dict[str, Any]:
    return {"module": module, "class_name": class_name, "config": config, "registered_name": None}


def _dense(name: str, units: int, **changes: Any) -> dict[str, Any]:
    config = {
        "name": name,
        "trainable": True,
        "dtype": _object("keras", "DTypePolicy", {"name": "float32"}),
        "units": units,
        "activation": "linear",
        "use_bias": True,
        "kernel_initializer": _object("keras.initializers", "GlorotUniform", {"seed": None}),
        "bias_initializer": _object("keras.initializers", "Zeros", {}),
        "kernel_regularizer": None,
        "bias_regularizer": None,
        "kernel_constraint": None,
        "bias_constraint": None,
        "quantization_config": None,
    }
    config.update(changes)
    return _object("keras.layers", "Dense", config)


def _sequential(name: str, *layers: dict[str, Any], inputs: int = 8) -> dict[str, Any]:
    input_layer = _object(
        "keras.layers", "InputLayer", {"batch_shape": [None, inputs], "dtype": "float32",
                                       "name": f"{name}_input"}
    )  # fmt: skip
    return {
        "module": "keras",
        "class_name": "Sequential",
        "config": {"name": name, "trainable": True, "layers": [input_layer, *layers]},
        "registered_name": None,
        "build_config": {"input_shape": [None, inputs]},
    }


def _model(**dense_changes: Any) -> dict[str, Any]:
    """``Input((8,)) -> Dense(8) as `dense` -> Dense(2)``, the first Dense's arguments changed."""
    return _sequential("student", _dense("dense", 8, **dense_changes), _dense("out", 2))


def assert_refused(config: dict[str, Any], error: type[GraderError], argument: str) -> None:
    """Refused by the host's check and by the sandboxes' gate, naming layer and argument."""
    named = rf"Layer `dense` \(Dense\) has `{argument}`"
    with pytest.raises(error, match=named):
        check_model(copy.deepcopy(config))
    with pytest.raises(error, match=named):
        check_model_config(copy.deepcopy(config))


# --- the attacks -------------------------------------------------------------------------------


def test_a_model_hidden_as_an_activation_is_refused() -> None:
    hidden = _sequential("hidden", _dense("inner", 8))
    assert_refused(_model(activation=hidden), InvalidModelConfig, "activation")


@pytest.mark.parametrize("argument", ["kernel_constraint", "kernel_regularizer"])
def test_a_layer_with_weights_as_a_constraint_or_regularizer_is_refused(argument: str) -> None:
    assert_refused(_model(**{argument: _dense("hidden", 8)}), InvalidModelConfig, argument)


def test_a_savedmodel_loader_hidden_as_a_regularizer_is_unsafe() -> None:
    loader = _object(
        "keras.layers", "TFSMLayer", {"filepath": "/job/in/trained", "call_endpoint": "serve"}
    )
    assert_refused(_model(kernel_regularizer=loader), UnsafeLayer, "kernel_regularizer")


def test_weights_smuggled_in_a_constant_initializer_of_a_frozen_layer_are_refused() -> None:
    trained = {"class_name": "__numpy__",
               "config": {"value": [[0.25] * 8] * 8, "dtype": "float32"}}  # fmt: skip
    config = _model(
        trainable=False,
        kernel_initializer=_object("keras.initializers", "Constant", {"value": trained}),
    )
    assert_refused(config, InvalidModelConfig, "kernel_initializer")
    with pytest.raises(
        InvalidModelConfig, match=r"data, not a hyperparameter\. Expected .*Constant"
    ):
        check_model(config)


def test_a_huge_list_as_an_initializer_argument_is_refused() -> None:
    stddev = [0.01] * 200_000
    config = _model(
        kernel_initializer=_object("keras.initializers", "RandomNormal", {"stddev": stddev})
    )
    assert_refused(config, InvalidModelConfig, "kernel_initializer")


def test_a_non_keras_module_nested_deep_is_unsafe() -> None:
    inner = _dense("inner", 8)
    inner["config"]["kernel_initializer"] = {
        "class_name": "Wrapper",
        "config": {"factory": [{"deep": _object("student.payload", "Initializer", {})}]},
    }
    hidden = _sequential("hidden", inner)
    with pytest.raises(UnsafeLayer, match=r"from module `student.payload`"):
        check_model(_model(activation=hidden))
    assert_refused(_model(activation=hidden), UnsafeLayer, "activation")


def test_initial_weights_given_as_an_argument_are_refused() -> None:
    assert_refused(_model(weights=[[0.5] * 8] * 8), InvalidModelConfig, "weights")


def test_a_compiled_nested_model_carrying_a_loader_is_refused() -> None:
    # Keras compiles a nested model from its compile config while rebuilding it.
    block = _sequential("block", _dense("inner", 8))
    block["compile_config"] = {"loss": _object("keras.layers", "TFSMLayer", {"filepath": "/x"})}
    config = _sequential("student", block, _dense("out", 2))
    for check in (check_model, check_model_config):
        with pytest.raises(UnsafeLayer, match=r"Layer `block` \(Sequential\) has `compile_config`"):
            check(copy.deepcopy(config))


def test_an_object_passed_as_a_call_argument_is_refused() -> None:
    tensor = {
        "class_name": "__keras_tensor__",
        "config": {"shape": [None, 8], "dtype": "float32", "keras_history": ["x", 0, 0]},
    }
    x = _object("keras.layers", "InputLayer", {"batch_shape": [None, 8], "name": "x"})
    x.update(name="x", inbound_nodes=[])
    dense = _dense("dense", 2)
    dense.update(
        name="dense",
        inbound_nodes=[{"args": [tensor], "kwargs": {"training": _dense("hidden", 8)}}],
    )
    config = {
        "module": "keras",
        "class_name": "Functional",
        "config": {"name": "student", "trainable": True, "layers": [x, dense],
                   "input_layers": [["x", 0, 0]], "output_layers": [["dense", 0, 0]]},
        "registered_name": None,
    }  # fmt: skip
    assert_refused(config, InvalidModelConfig, "inbound_nodes")


# --- Keras really does what the attacks need ---------------------------------------------------


@pytest.mark.tf
def test_keras_rebuilds_a_model_hidden_as_an_activation_with_weights_of_its_own() -> None:
    import keras

    model = keras.saving.deserialize_keras_object(
        _model(activation=_sequential("hidden", _dense("inner", 8))), safe_mode=True
    )
    model.build((None, 8))
    visible = (8 * 8 + 8) + (8 * 2 + 2)  # the two Dense layers the model lists
    assert model.count_params() == visible + (8 * 8 + 8)  # the hidden Dense trains too


@pytest.mark.tf
def test_keras_keeps_weights_smuggled_in_a_constant_initializer_of_a_frozen_layer() -> None:
    import keras
    import numpy as np

    trained = np.arange(64, dtype="float32").reshape(8, 8) / 64
    value = {"class_name": "__numpy__", "config": {"value": trained.tolist(), "dtype": "float32"}}
    config = _model(
        trainable=False,
        kernel_initializer=_object("keras.initializers", "Constant", {"value": value}),
    )
    model = keras.saving.deserialize_keras_object(config, safe_mode=True)
    model.build((None, 8))
    dense = model.get_layer("dense")
    assert np.array_equal(dense.kernel.numpy(), trained)
    assert dense.trainable_weights == []


# --- the whole local pipeline ------------------------------------------------------------------


@pytest.mark.bwrap
def test_grade_refuses_a_hidden_model_before_any_sandbox(tmp_path, bwrap_available) -> None:
    config = json.loads((FIXTURES / "smoke_separable.json").read_text())
    last = config["config"]["layers"][-1]
    last["config"]["activation"] = _sequential(
        "hidden", _dense("inner", last["config"]["units"]), inputs=last["config"]["units"]
    )
    upload = tmp_path / "hidden_activation.json"
    upload.write_text(json.dumps(config))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "GRADER_ENV_FILE": "",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite3'}",
        "GRADER_VAR_DIR": str(tmp_path / "var"),
        "GRADER_DATA_DIR": str(tmp_path / "no-data"),  # never needed: nothing trains
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
    assert f"Layer `{last['config']['name']}` (Dense) has `activation`" in report["message"]
    assert "Expected a built-in activation by name" in report["message"]
    assert (report["checks"], report["training"], report["evaluation"]) == (None, None, None)
    assert not (tmp_path / "no-data").exists()  # no dataset was even prepared
