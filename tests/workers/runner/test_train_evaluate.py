"""Stages ``train`` and ``evaluate`` as real subprocesses on the synthetic dataset.

Checks against independent truth: the smoke target (validation accuracy >= 0.8) is measured by
Keras during training; the evaluate stage's metrics are recomputed here from the same model's
predictions with NumPy and scikit-learn; resumption is proven by killing the process with
SIGKILL mid-training.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from grader.datasets import PreparedDataset, load_split, prepare_dataset
from tests.support.dataset_key import TEST_DATASET_KEY
from tests.workers.runner import (
    PROGRESS_PREFIX,
    REPO_ROOT,
    RunnerRun,
    make_job,
    run_runner,
    runner_command,
    runner_env,
)

pytestmark = pytest.mark.tf

MODELS = REPO_ROOT / "tests" / "fixtures" / "models"
SMOKE_TARGET = 0.8
PROGRESS_KEYS = {
    "epoch",
    "loss",
    "accuracy",
    "val_loss",
    "val_accuracy",
    "learning_rate",
    "seconds",
}
TRAINING_CONFIG = {"optimizer": "adam", "learning_rate": 0.003, "batch_size": 64, "epochs": 4}


def _train_spec(**overrides: Any) -> dict[str, Any]:
    return {
        "stage": "train",
        "model_config": "model.json",
        "training_config": TRAINING_CONFIG,
        "policy": {"max_epochs": 10, "allow_custom_training": False},
        "validation_split": 0.1,
        "seed": 0,
        "submission": None,
        **overrides,
    }


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> PreparedDataset:
    return prepare_dataset("synthetic", tmp_path_factory.mktemp("data"), key=TEST_DATASET_KEY)


@pytest.fixture(scope="module")
def model_json() -> str:
    return (MODELS / "smoke_separable.json").read_text()


@pytest.fixture(scope="module")
def trained(
    tmp_path_factory: pytest.TempPathFactory, synthetic: PreparedDataset, model_json: str
) -> tuple[Path, RunnerRun]:
    # As the pipeline lays it out: the training part, and the held-out part to validate on.
    job = make_job(
        tmp_path_factory.mktemp("train") / "job",
        _train_spec(held_out=True),
        files={"model.json": model_json},
        data=synthetic.train_part_dir,
    )
    (job / "held-out").symlink_to(synthetic.held_out_dir, target_is_directory=True)
    run = run_runner("train", job)
    assert run.returncode == 0, run.stderr
    return job, run


def test_trains_the_smoke_model_to_the_smoke_target(trained: tuple[Path, RunnerRun]) -> None:
    job, run = trained
    result = run.result
    assert result["ok"] is True, result
    assert [epoch["epoch"] for epoch in result["epochs"]] == [1, 2, 3, 4]
    assert result["epochs"][-1]["val_accuracy"] >= SMOKE_TARGET
    assert result["weights"] == "weights.npz"
    assert (job / "work" / "weights.npz").is_file()
    assert result["resumed_from_epoch"] == 0 and result["custom_training"] is False
    assert result["seconds"] == pytest.approx(sum(e["seconds"] for e in result["epochs"]), abs=0.01)


def test_progress_lines_follow_the_contract(trained: tuple[Path, RunnerRun]) -> None:
    _, run = trained
    assert run.progress == run.result["epochs"]
    # One report of the built network, before any epoch.
    assert list(run.records[0]) == ["built_model"] and len(run.built_models) == 1
    for record in run.progress:
        assert set(record) == PROGRESS_KEYS
        assert record["learning_rate"] == pytest.approx(0.003)
    # Only protocol lines on stdout: TensorFlow's and Keras' chatter goes to stderr.
    assert all(line.startswith(PROGRESS_PREFIX) for line in run.stdout.splitlines())


def test_evaluate_matches_numpy_on_the_models_predictions(
    tmp_path: Path, trained: tuple[Path, RunnerRun], synthetic: PreparedDataset, model_json: str
) -> None:
    train_job, _ = trained
    weights = (train_job / "work" / "weights.npz").read_bytes()
    job = make_job(
        tmp_path / "job",
        {"stage": "evaluate", "model_config": "model.json", "weights": "weights.npz"},
        files={"model.json": model_json, "weights.npz": weights},
        data=synthetic.test_dir,
    )
    run = run_runner("evaluate", job)
    assert run.returncode == 0, run.stderr
    result = run.result
    assert result["ok"] is True, result

    import keras
    from sklearn.metrics import confusion_matrix, log_loss

    from grader.training.weights_file import load_weights

    model = load_weights(keras.models.model_from_json(model_json), job / "in" / "weights.npz")
    x, y = load_split(synthetic.test_dir)
    probabilities = model.predict(np.asarray(x, dtype=np.float32) / 255.0, verbose=0)
    predicted = probabilities.argmax(axis=1)
    assert result["num_examples"] == 512
    assert result["accuracy"] == pytest.approx(float(np.mean(predicted == y)), abs=1e-9)
    assert result["accuracy"] >= SMOKE_TARGET
    expected_confusion = confusion_matrix(y, predicted, labels=range(4))
    assert result["confusion_matrix"] == expected_confusion.tolist()
    recall = expected_confusion.diagonal() / expected_confusion.sum(axis=1)
    assert result["per_class_accuracy"] == pytest.approx(recall.tolist())
    assert result["loss"] == pytest.approx(log_loss(y, probabilities, labels=range(4)), rel=1e-3)


def test_weights_trained_on_tensorflow_grade_the_same_on_jax(
    tmp_path: Path, trained: tuple[Path, RunnerRun], synthetic: PreparedDataset, model_json: str
) -> None:
    # A worker with GRADER_KERAS_BACKEND=jax grades what a TensorFlow worker trained (and the
    # other way round: tests/workers/runner/test_jax_backend.py).
    train_job, _ = trained
    results = {}
    for backend in ("tensorflow", "jax"):
        job = make_job(
            tmp_path / backend,
            {"stage": "evaluate", "model_config": "model.json", "weights": "weights.npz"},
            files={
                "model.json": model_json,
                "weights.npz": (train_job / "work" / "weights.npz").read_bytes(),
            },
            data=synthetic.test_dir,
        )
        run = run_runner("evaluate", job, env={"GRADER_KERAS_BACKEND": backend})
        assert run.returncode == 0 and run.result and run.result["ok"], run.stderr
        results[backend] = run.result
    assert results["jax"]["num_examples"] == results["tensorflow"]["num_examples"] == 512
    assert abs(results["jax"]["accuracy"] - results["tensorflow"]["accuracy"]) <= 2 / 512
    assert results["jax"]["loss"] == pytest.approx(results["tensorflow"]["loss"], rel=1e-3)
    assert results["jax"]["accuracy"] >= SMOKE_TARGET


def test_evaluate_measures_the_held_out_validation_part_as_the_trainer_did(
    tmp_path: Path, trained: tuple[Path, RunnerRun], synthetic: PreparedDataset, model_json: str
) -> None:
    # Keras measured the last epoch's val_accuracy during training, on the part the trainer
    # held out; the evaluate stage measures the same weights on the same part by itself.
    train_job, train_run = trained
    weights = (train_job / "work" / "weights.npz").read_bytes()
    job = make_job(
        tmp_path / "job",
        {
            "stage": "evaluate",
            "model_config": "model.json",
            "weights": "weights.npz",
            "validation": {"validation_split": 0.1},
        },
        files={"model.json": model_json, "weights.npz": weights},
        data=synthetic.test_dir,
    )
    (job / "held-out").symlink_to(synthetic.held_out_dir, target_is_directory=True)

    run = run_runner("evaluate", job)

    assert run.returncode == 0, run.stderr
    validation = run.result["validation"]
    last = train_run.result["epochs"][-1]
    assert validation["num_examples"] == 205  # round(2048 * 0.1)
    assert validation["accuracy"] == pytest.approx(last["val_accuracy"], abs=1e-6)
    assert validation["loss"] == pytest.approx(last["val_loss"], rel=1e-3)
    assert validation["validation_split"] == 0.1
    # The test-split metrics are unchanged by the extra measurement.
    assert run.result["num_examples"] == 512


def test_evaluate_without_a_validation_request_measures_none(
    tmp_path: Path, trained: tuple[Path, RunnerRun], synthetic: PreparedDataset, model_json: str
) -> None:
    train_job, _ = trained
    weights = (train_job / "work" / "weights.npz").read_bytes()
    job = make_job(
        tmp_path / "job",
        {"stage": "evaluate", "model_config": "model.json", "weights": "weights.npz"},
        files={"model.json": model_json, "weights.npz": weights},
        data=synthetic.test_dir,
    )

    run = run_runner("evaluate", job)

    assert run.returncode == 0, run.stderr
    assert run.result["validation"] is None


def test_resumes_after_sigkill_from_the_last_checkpoint(
    tmp_path: Path, synthetic: PreparedDataset, model_json: str
) -> None:
    config = {**TRAINING_CONFIG, "epochs": 5}
    job = make_job(
        tmp_path / "job",
        _train_spec(training_config=config),
        files={"model.json": model_json},
        data=synthetic.train_dir,
    )
    process = subprocess.Popen(
        runner_command("train", job),
        cwd=REPO_ROOT,
        env=runner_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    seen = []
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith(PROGRESS_PREFIX):
            record = json.loads(line[len(PROGRESS_PREFIX) :])
            if "epoch" not in record:
                continue  # the built-network report, first
            seen.append(record)
            if seen[-1]["epoch"] == 2:
                # The line is printed after the checkpoint is on disk: kill without warning.
                os.kill(process.pid, signal.SIGKILL)
                break
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert not (job / "out" / "result.json").exists()
    state = json.loads((job / "work" / "checkpoints" / "state.json").read_text())
    # Epoch 2's checkpoint is on disk; on a loaded machine epoch 3 may have finished too before
    # the kill landed.
    killed_after = state["epoch"]
    assert killed_after in (2, 3)

    run = run_runner("train", job)
    assert run.returncode == 0, run.stderr
    result = run.result
    assert result["ok"] is True, result
    assert result["resumed_from_epoch"] == killed_after
    assert [e["epoch"] for e in result["epochs"]] == [1, 2, 3, 4, 5]
    # The killed run's epochs are reported again; the rest are new.
    assert result["epochs"][:2] == seen
    assert [e["epoch"] for e in run.progress] == [1, 2, 3, 4, 5]
    # The built network is reported before the finished epochs are replayed.
    assert "built_model" in run.records[0] and len(run.built_models) == 1
    # The first new epoch continued from trained weights: its loss is far below a fresh
    # model's first epoch.
    assert result["epochs"][killed_after]["loss"] < 0.5 * seen[0]["loss"]
    assert sorted(p.name for p in (job / "work" / "checkpoints").iterdir()) == [
        "epoch-0005.weights.h5",
        "state.json",
    ]


def test_a_checkpoint_of_another_job_is_not_resumed(
    tmp_path: Path, synthetic: PreparedDataset, model_json: str
) -> None:
    from grader.training.checkpoints import fingerprint
    from grader.training.config import validate_training_config

    config = validate_training_config(TRAINING_CONFIG, {"max_epochs": 10})
    ours = fingerprint(json.loads(model_json), config, 0, 0.1, 2048)
    other_seed = fingerprint(json.loads(model_json), config, 1, 0.1, 2048)
    other_config = fingerprint(
        json.loads(model_json),
        validate_training_config({**TRAINING_CONFIG, "epochs": 5}, {"max_epochs": 10}),
        0,
        0.1,
        2048,
    )
    assert len({ours, other_seed, other_config}) == 3


def test_an_invalid_training_config_is_the_submissions_verdict(
    tmp_path: Path, synthetic: PreparedDataset, model_json: str
) -> None:
    job = make_job(
        tmp_path / "job",
        _train_spec(training_config={**TRAINING_CONFIG, "epochs": 50}),
        files={"model.json": model_json},
        data=synthetic.train_dir,
    )
    run = run_runner("train", job)
    assert run.returncode == 0, run.stderr
    assert run.result == {
        "ok": False,
        "error": {
            "kind": "invalid_training_config",
            "message": "Training config `epochs` is 50. Expected at most 10 (the assignment's "
            "limit).",
        },
    }


def test_custom_training_runs_the_students_loop_on_the_train_split(
    tmp_path: Path, synthetic: PreparedDataset, model_json: str
) -> None:
    submission = (
        "import keras\n"
        "SEEN = {}\n"
        "def train(model, data, config):\n"
        "    model.compile(optimizer=keras.optimizers.Adam(config['learning_rate']),\n"
        "                  loss='sparse_categorical_crossentropy', metrics=['accuracy'])\n"
        "    model.fit(data['x'][:512] / 255.0, data['y'][:512], batch_size=64, epochs=2,\n"
        "              callbacks=data['callbacks'], verbose=0)\n"
        "    print('trained on', len(data['x']), 'images')\n"
    )
    job = make_job(
        tmp_path / "job",
        _train_spec(
            policy={"max_epochs": 10, "allow_custom_training": True},
            submission="submission.py",
        ),
        files={"model.json": model_json, "submission.py": submission},
        data=synthetic.train_dir,
    )
    run = run_runner("train", job)
    assert run.returncode == 0, run.stderr
    result = run.result
    assert result["ok"] is True, result
    assert result["custom_training"] is True
    assert [e["epoch"] for e in result["epochs"]] == [1, 2] == [e["epoch"] for e in run.progress]
    assert "trained on 2048 images" in run.stderr  # the whole train split, nothing else
    assert (job / "work" / "weights.npz").is_file()


def test_custom_training_callbacks_stop_a_fit_at_the_declared_epochs(
    tmp_path: Path, synthetic: PreparedDataset, model_json: str
) -> None:
    submission = (
        "import keras\n"
        "def train(model, data, config):\n"
        "    model.compile(optimizer='adam', loss='sparse_categorical_crossentropy')\n"
        "    model.fit(data['x'][:128] / 255.0, data['y'][:128], batch_size=64, epochs=50,\n"
        "              callbacks=data['callbacks'], verbose=0)\n"
    )
    job = make_job(
        tmp_path / "job",
        _train_spec(
            training_config={**TRAINING_CONFIG, "epochs": 2},
            policy={"max_epochs": 10, "allow_custom_training": True},
            submission="submission.py",
        ),
        files={"model.json": model_json, "submission.py": submission},
        data=synthetic.train_dir,
    )

    run = run_runner("train", job)

    assert run.returncode == 0, run.stderr
    assert run.result["ok"] is True, run.result
    assert [e["epoch"] for e in run.result["epochs"]] == [1, 2]


def _keras_archive_from_config(config_text: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
        archive.writestr("config.json", config_text)
        archive.writestr("model.weights.h5", b"")
    return buffer.getvalue()


def test_unpacking_refuses_a_keras_file_with_a_lambda(tmp_path: Path) -> None:
    archive = _keras_archive_from_config((MODELS / "breaks_lambda.json").read_text())
    job = make_job(
        tmp_path / "job",
        {"stage": "unpack", "keras_file": "submission.keras"},
        files={"submission.keras": archive},
    )
    run = run_runner("unpack", job)
    assert run.returncode == 0, run.stderr
    assert run.result["ok"] is False
    assert run.result["error"]["kind"] == "unsafe_layer"
    assert "(Lambda) carries Python code" in run.result["error"]["message"]


def test_evaluate_only_scores_a_safe_keras_file_from_its_unpacked_arrays(
    tmp_path: Path, synthetic: PreparedDataset
) -> None:
    # As the pipeline runs it: the archive is opened where no data is, the test split is
    # measured where only arrays arrive.
    import keras

    from grader.loading import load_model_config

    archive = MODELS / "smoke_separable.keras"
    unpack = make_job(
        tmp_path / "unpack",
        {"stage": "unpack", "keras_file": "submission.keras"},
        files={"submission.keras": archive.read_bytes()},
    )
    unpacked = run_runner("unpack", unpack)
    assert unpacked.returncode == 0, unpacked.stderr
    assert unpacked.result == {"ok": True, "weights": "weights.npz"}
    job = make_job(
        tmp_path / "job",
        {"stage": "evaluate", "model_config": "model.json", "weights": "weights.npz"},
        files={
            "model.json": json.dumps(load_model_config(archive)),
            "weights.npz": (unpack / "work" / "weights.npz").read_bytes(),
        },
        data=synthetic.test_dir,
    )
    run = run_runner("evaluate", job)
    assert run.returncode == 0, run.stderr
    result = run.result
    assert result["ok"] is True, result
    confusion = np.array(result["confusion_matrix"])
    assert confusion.sum() == result["num_examples"] == 512
    assert result["accuracy"] == pytest.approx(np.trace(confusion) / 512)
    # The same accuracy Keras gives the archive itself.
    model = keras.saving.load_model(archive, compile=False, safe_mode=True)
    x, y = load_split(synthetic.test_dir)
    predicted = model.predict(np.asarray(x, dtype=np.float32) / 255.0, verbose=0).argmax(axis=1)
    assert result["accuracy"] == pytest.approx(float(np.mean(predicted == y)), abs=1e-9)


def test_custom_training_returning_another_architecture_is_refused(
    tmp_path: Path, synthetic: PreparedDataset, model_json: str
) -> None:
    submission = (
        "import keras\n"
        "def train(model, data, config):\n"
        "    return keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Flatten(),\n"
        "                             keras.layers.Dense(4, activation='softmax')])\n"
    )
    job = make_job(
        tmp_path / "job",
        _train_spec(
            policy={"max_epochs": 10, "allow_custom_training": True},
            submission="submission.py",
        ),
        files={"model.json": model_json, "submission.py": submission},
        data=synthetic.train_dir,
    )
    run = run_runner("train", job)
    assert run.returncode == 0, run.stderr
    assert run.result["ok"] is False
    assert run.result["error"]["kind"] == "custom_training_failed"
    assert "no longer fit the submitted architecture" in run.result["error"]["message"]
    assert not (job / "work" / "weights.npz").exists()
