"""Stages ``train`` and ``evaluate`` on Keras' JAX backend (``GRADER_KERAS_BACKEND=jax``), on CPU.

The GPU host has JAX but no TensorFlow, so on JAX nothing in the train or evaluate stage may
import TensorFlow: each runner here reports, as it exits, whether any ``tensorflow`` module was
loaded. Resumption is proven as on TensorFlow, by SIGKILL mid-training, and checked bit for bit
against an uninterrupted run; the weights one backend trains are graded alike by the other.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from grader.datasets import PreparedDataset, prepare_dataset
from tests.support.dataset_key import TEST_DATASET_KEY
from tests.workers.runner import PROGRESS_PREFIX, REPO_ROOT, RunnerRun, make_job, runner_env

# Slow: CPU training (JAX compiles each model for seconds), like the TensorFlow runner tests.
pytestmark = [pytest.mark.tf, pytest.mark.timeout(900)]

MODELS = REPO_ROOT / "tests" / "fixtures" / "models"
TRAINING_CONFIG = {
    "optimizer": "adam",
    "learning_rate": 0.003,
    "batch_size": 64,
    "epochs": 3,
    "schedule": "cosine",
    "augmentation": ["flip", "translate"],
}
# Runs the runner exactly as ``python -m workers.runner`` does, then says on stderr whether
# anything imported TensorFlow.
PROBE = (
    "import sys\n"
    "from workers.runner.__main__ import main\n"
    "code = main(sys.argv[1:])\n"
    "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'tensorflow')\n"
    "print('TENSORFLOW-MODULES', len(loaded), file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def _command(stage: str, job: Path) -> list[str]:
    return [sys.executable, "-c", PROBE, stage, str(job)]


def _env(backend: str) -> dict[str, str]:
    return {**runner_env(), "GRADER_KERAS_BACKEND": backend}


def _run(stage: str, job: Path, backend: str = "jax") -> RunnerRun:
    done = subprocess.run(
        _command(stage, job),
        cwd=REPO_ROOT,
        env=_env(backend),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    path = job / "out" / "result.json"
    result = json.loads(path.read_text()) if path.exists() else None
    return RunnerRun(done.returncode, done.stdout, done.stderr, result)


def _tensorflow_modules(stderr: str) -> int:
    lines = [line for line in stderr.splitlines() if line.startswith("TENSORFLOW-MODULES")]
    assert lines, stderr[-2000:]
    return int(lines[-1].split()[1])


def _train_spec() -> dict[str, Any]:
    return {
        "stage": "train",
        "model_config": "model.json",
        "training_config": TRAINING_CONFIG,
        "policy": {"max_epochs": 10, "allow_custom_training": False},
        "validation_split": 0.1,
        "seed": 3,
        "submission": None,
    }


def _evaluate(tmp: Path, weights: Path, data: Path, backend: str) -> RunnerRun:
    job = make_job(
        tmp,
        {"stage": "evaluate", "model_config": "model.json", "weights": "weights.npz"},
        files={"model.json": _model_json(), "weights.npz": weights.read_bytes()},
        data=data,
    )
    run = _run("evaluate", job, backend)
    assert run.returncode == 0 and run.result and run.result["ok"], run.stderr[-3000:]
    return run


def _model_json() -> str:
    return (MODELS / "smoke_separable.json").read_text()


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> PreparedDataset:
    return prepare_dataset("synthetic", tmp_path_factory.mktemp("data"), key=TEST_DATASET_KEY)


@pytest.fixture(scope="module")
def uninterrupted(
    tmp_path_factory: pytest.TempPathFactory, synthetic: PreparedDataset
) -> tuple[Path, RunnerRun]:
    job = make_job(
        tmp_path_factory.mktemp("whole") / "job",
        _train_spec(),
        files={"model.json": _model_json()},
        data=synthetic.train_dir,
    )
    run = _run("train", job)
    assert run.returncode == 0 and run.result and run.result["ok"], run.stderr[-3000:]
    return job, run


def test_trains_on_jax_without_importing_tensorflow(
    uninterrupted: tuple[Path, RunnerRun],
) -> None:
    job, run = uninterrupted
    assert _tensorflow_modules(run.stderr) == 0
    result = run.result
    assert result is not None and result["resumed_from_epoch"] == 0
    epochs = result["epochs"]
    assert [record["epoch"] for record in epochs] == [1, 2, 3]
    # It learns (4 classes: chance is 0.25).
    assert epochs[-1]["loss"] < epochs[0]["loss"] and epochs[-1]["val_accuracy"] >= 0.6, epochs
    assert (job / "work" / "weights.npz").is_file()


def test_resumes_exactly_after_sigkill_on_jax(
    tmp_path: Path, synthetic: PreparedDataset, uninterrupted: tuple[Path, RunnerRun]
) -> None:
    job = make_job(
        tmp_path / "job",
        _train_spec(),
        files={"model.json": _model_json()},
        data=synthetic.train_dir,
    )
    process = subprocess.Popen(
        _command("train", job),
        cwd=REPO_ROOT,
        env=_env("jax"),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith(PROGRESS_PREFIX) and json.loads(line[len(PROGRESS_PREFIX) :]).get(
            "epoch"
        ):
            # Printed once epoch 1's checkpoint is on disk: kill without warning.
            os.kill(process.pid, signal.SIGKILL)
            break
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    killed_after = json.loads((job / "work" / "checkpoints" / "state.json").read_text())["epoch"]
    assert killed_after in (1, 2)

    run = _run("train", job)
    assert run.returncode == 0 and run.result and run.result["ok"], run.stderr[-3000:]
    assert run.result["resumed_from_epoch"] == killed_after
    assert _tensorflow_modules(run.stderr) == 0

    # Exactly what the uninterrupted run computed: the same batches, augmentations, optimizer
    # state and learning-rate schedule, so the same numbers to the last bit.
    whole_job, whole = uninterrupted
    assert whole.result is not None
    assert run.result["epochs"] == [
        {**record, "seconds": mine["seconds"]}
        for record, mine in zip(whole.result["epochs"], run.result["epochs"], strict=True)
    ]
    ours = np.load(job / "work" / "weights.npz")
    reference = np.load(whole_job / "work" / "weights.npz")
    assert ours.files == reference.files
    for name in ours.files:
        assert np.array_equal(ours[name], reference[name]), name


def test_weights_trained_on_jax_grade_the_same_on_both_backends(
    tmp_path: Path, synthetic: PreparedDataset, uninterrupted: tuple[Path, RunnerRun]
) -> None:
    job, _ = uninterrupted
    weights = job / "work" / "weights.npz"
    on_jax = _evaluate(tmp_path / "jax", weights, synthetic.test_dir, "jax")
    on_tf = _evaluate(tmp_path / "tf", weights, synthetic.test_dir, "tensorflow")
    assert _tensorflow_modules(on_jax.stderr) == 0
    assert _tensorflow_modules(on_tf.stderr) > 0  # the probe does see TensorFlow when it loads
    jax_result, tf_result = on_jax.result, on_tf.result
    assert jax_result is not None and tf_result is not None
    assert jax_result["num_examples"] == tf_result["num_examples"] == 512
    # The same float32 network on two backends: scores may differ in the last bits, which can
    # flip at most an example sitting on a decision boundary.
    assert abs(jax_result["accuracy"] - tf_result["accuracy"]) <= 2 / 512
    assert jax_result["loss"] == pytest.approx(tf_result["loss"], rel=1e-3)
    assert jax_result["accuracy"] >= 0.6
