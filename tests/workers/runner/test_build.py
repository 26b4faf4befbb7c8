"""Stage ``build`` as a real subprocess: good modules, failing modules, unsafe models."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tests.workers.runner import SMOKE_SUBMISSION, make_job, run_runner

BUILD_SPEC = {
    "stage": "build",
    "submission": "submission.py",
    "input_shape": [16, 16, 3],
    "num_classes": 4,
}


def _build(tmp_path: Path, source: str) -> object:
    job = make_job(tmp_path / "job", BUILD_SPEC, files={"submission.py": source})
    run = run_runner("build", job)
    assert run.returncode == 0, run.stderr
    assert run.result is not None
    return run


@pytest.mark.tf
def test_builds_a_good_module_into_its_keras_config(tmp_path: Path) -> None:
    # The module also prints a forged progress line: it must land on stderr, not the protocol.
    run = _build(tmp_path, "print('GRADER-PROGRESS {\"epoch\": 99}')\n" + SMOKE_SUBMISSION)
    result = run.result
    assert result["ok"] is True, result
    config = result["model_config"]
    assert config["class_name"] == "Sequential"
    classes = [layer["class_name"] for layer in config["config"]["layers"]]
    assert classes.count("SeparableConv2D") == 4 and classes[-1] == "Dense"
    assert result["training_config"] == {
        "optimizer": "adam",
        "learning_rate": 0.003,
        "batch_size": 64,
        "epochs": 4,
    }
    assert result["custom_training"] is False
    # The config is Keras' own: Keras rebuilds it and counts the same parameters as the
    # reference fixture built from the same layers.
    expected = json.loads(
        (Path(__file__).parents[2] / "fixtures/models/expected.json").read_text()
    )["smoke_separable"]
    total = sum(expected["layer_params"].values())
    import keras

    assert keras.models.model_from_json(json.dumps(config)).count_params() == total
    assert run.progress == []
    assert 'GRADER-PROGRESS {"epoch": 99}' in run.stderr


def test_a_module_that_raises_reports_only_its_own_frames(tmp_path: Path) -> None:
    source = (
        "def helper(n):\n"
        "    raise ValueError(f'no model for {n} classes')\n"
        "\n"
        "def build_model(input_shape, num_classes):\n"
        "    return helper(num_classes)\n"
    )
    result = _build(tmp_path, source).result
    assert result["ok"] is False
    assert result["error"]["kind"] == "build_failed"
    message = result["error"]["message"]
    assert message.startswith("Calling `build_model((16, 16, 3), 4)` raised an exception.")
    assert 'File "submission.py", line 5, in build_model' in message
    assert 'File "submission.py", line 2, in helper' in message
    assert "ValueError: no model for 4 classes" in message
    # Nothing about the runner, the libraries or the job's paths.
    assert "workers" not in message and str(tmp_path) not in message


def test_a_module_that_fails_to_import_is_a_build_failure(tmp_path: Path) -> None:
    result = _build(tmp_path, "import numpy\nnumpy.this_does_not_exist\n").result
    assert result["error"]["kind"] == "build_failed"
    assert "Importing `submission.py` raised an exception." in result["error"]["message"]
    assert "AttributeError" in result["error"]["message"]


def test_build_model_returning_garbage_is_refused(tmp_path: Path) -> None:
    result = _build(
        tmp_path, "def build_model(input_shape, num_classes):\n    return [1, 2]\n"
    ).result
    assert result == {
        "ok": False,
        "error": {
            "kind": "invalid_model",
            "message": "`build_model` returned a `list`. Expected a keras.Model.",
        },
    }


def test_missing_build_model_is_named(tmp_path: Path) -> None:
    result = _build(tmp_path, "x = 1\n").result
    assert result["error"] == {
        "kind": "invalid_submission",
        "message": "`submission.py` defines no `build_model(input_shape, num_classes)` function.",
    }


@pytest.mark.tf
def test_lambda_layers_are_refused(tmp_path: Path) -> None:
    source = SMOKE_SUBMISSION.replace(
        "keras.Input(shape=input_shape),",
        "keras.Input(shape=input_shape), layers.Lambda(lambda t: t * 2.0, name='double'),",
    )
    result = _build(tmp_path, source).result
    assert result["error"]["kind"] == "unsafe_layer"
    assert result["error"]["message"].startswith("Layer `double` (Lambda) carries Python code.")


@pytest.mark.tf
def test_a_model_hidden_as_an_activation_is_refused_before_keras_rebuilds_it(
    tmp_path: Path,
) -> None:
    # The student's own Keras serializes it; the build stage refuses it as the check stage
    # would (`invalid_model`, which the host reports as `invalid_submission`, message kept).
    source = SMOKE_SUBMISSION.replace(
        'layers.Dense(num_classes, activation="softmax"),',
        "layers.Dense(num_classes, name='head', activation=keras.Sequential(\n"
        "    [keras.Input((num_classes,)), layers.Dense(num_classes)])),",
    )
    result = _build(tmp_path, source).result
    assert result["error"]["kind"] == "invalid_model"
    assert result["error"]["message"].startswith(
        "Layer `head` (Dense) has `activation` set to a serialized `Sequential` model"
    )


@pytest.mark.tf
def test_a_layer_the_analysis_does_not_support_fails_the_build_with_its_message(
    tmp_path: Path,
) -> None:
    # Once refused only by the later check stage: now nothing the analysis refuses is built.
    source = SMOKE_SUBMISSION.replace(
        "layers.GlobalAveragePooling2D(),",
        "layers.GlobalAveragePooling2D(), layers.Reshape((1, 32)),"
        " layers.LSTM(8, name='recurrent'),",
    )
    result = _build(tmp_path, source).result
    assert result["error"]["kind"] == "unsupported_layer"
    assert result["error"]["message"].startswith("Layer `recurrent` (LSTM) is not supported")


@pytest.mark.tf
def test_training_config_must_be_json(tmp_path: Path) -> None:
    source = SMOKE_SUBMISSION.replace(
        'return {"optimizer": "adam"', 'return {"callback": object(), "optimizer": "adam"'
    )
    result = _build(tmp_path, source).result
    assert result["error"]["kind"] == "invalid_training_config"
    assert "not JSON-serialisable" in result["error"]["message"]


def test_a_spec_for_another_stage_is_a_runner_error(tmp_path: Path) -> None:
    job = make_job(tmp_path / "job", {**BUILD_SPEC, "stage": "train"})
    run = run_runner("build", job)
    assert run.returncode == 2
    assert "is for stage 'train'; this runner was started for 'build'" in run.stderr
    assert run.result is None


def test_a_missing_framework_says_which_ones_the_sandbox_has(tmp_path: Path) -> None:
    source = "import torch\n\ndef build_model(input_shape, num_classes):\n    pass\n"
    message = _build(tmp_path, source).result["error"]["message"]
    assert "ModuleNotFoundError: No module named 'torch'" in message
    from tests.workers.runner.test_error_hints import installed_versions

    # The sandbox runs this environment (JAX: where the light build backend is installed).
    v = installed_versions("keras", "tensorflow", "numpy")
    jax = importlib.util.find_spec("jax") is not None
    has = f"JAX {installed_versions('jax')['jax']}, " if jax else ""
    assert message.endswith(
        f"`torch` is not installed in the grader's sandbox. It has Keras {v['keras']}, "
        f"TensorFlow {v['tensorflow']}, {has}NumPy {v['numpy']}: build the model with Keras "
        "(`import keras`)."
    )


@pytest.mark.tf
def test_a_misspelt_keras_layer_gets_the_closest_name(tmp_path: Path) -> None:
    source = (
        "import keras\n"
        "from keras import layers\n\n"
        "def build_model(input_shape, num_classes):\n"
        "    x = keras.Input(input_shape)\n"
        "    y = layers.SeperableConv2D(8, 3)(x)\n"
        "    return keras.Model(x, y)\n"
    )
    message = _build(tmp_path, source).result["error"]["message"]
    assert 'File "submission.py", line 6, in build_model' in message
    assert message.endswith("Did you mean `keras.layers.SeparableConv2D`?")
