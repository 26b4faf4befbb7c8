"""The runner's report of the network Keras built: first, trusted, and what the analysis says.

Real runner subprocesses on the synthetic dataset. The report must be the first protocol record
of the train and evaluate stages, agree with the pure-Python analysis of the same config (an
independent reader), and, with custom training, come out before the student's module is
imported: a module that finds the protocol channel and prints a forged report, at import time
and again from `train()`, only adds later records, which the host's gate ignores.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from grader.build_check import BuiltModelReport, compare_with_analysis
from grader.datasets import PreparedDataset, prepare_dataset
from grader.loading import load_model_config
from grader.report import check_model
from tests.support.dataset_key import TEST_DATASET_KEY
from tests.workers.runner import REPO_ROOT, RunnerRun, make_job, run_runner
from workers.pipeline.built_model import BuiltModelGate

pytestmark = pytest.mark.tf

MODELS = REPO_ROOT / "tests" / "fixtures" / "models"
TRAINING_CONFIG = {"optimizer": "adam", "learning_rate": 0.003, "batch_size": 64, "epochs": 1}

# What a student's module could print to pass off another network as the one Keras built.
FORGED = {
    "layers": [
        {
            "name": "tiny",
            "class_name": "Dense",
            "calls": 1,
            "params": 4,
            "trainable_params": 4,
            "trainable": True,
        }
    ],
    "params": {"total": 4, "trainable": 4, "non_trainable": 0},
}
FORGING_PREAMBLE = f"""
import gc

from workers.runner.protocol import ProgressChannel

FORGED = {FORGED!r}


def _channel():
    # The runner's own protocol channel, found in memory: what a determined student would do.
    return next(o for o in gc.get_objects() if isinstance(o, ProgressChannel))


_channel()({{"built_model": FORGED}})
_channel()({{"student_module_imported": True}})
"""
WITH_TRAIN = """
def train(model, data, config):
    _channel()({"built_model": FORGED})
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(data["x"][:128] / 255.0, data["y"][:128], batch_size=64, epochs=1,
              callbacks=data["callbacks"], verbose=0)
"""


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> PreparedDataset:
    return prepare_dataset("synthetic", tmp_path_factory.mktemp("data"), key=TEST_DATASET_KEY)


@pytest.fixture(scope="module")
def model_json() -> str:
    return (MODELS / "smoke_separable.json").read_text()


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


def _gate_state(run: RunnerRun, analysis: dict[str, Any]) -> str:
    gate = BuiltModelGate(analysis=analysis)
    for line in run.stdout.splitlines():
        gate.on_line(line)
    return gate.state


def _analysis_of(report: dict[str, Any]) -> dict[str, Any]:
    """An analysis that says exactly what `report` says (the forger's hoped-for analysis)."""
    return {
        "layers": [dict(row) for row in report["layers"]],
        "params": dict(report["params"]),
    }


def test_the_trusted_trainer_reports_first_what_the_analysis_reads(
    tmp_path: Path, synthetic: PreparedDataset, model_json: str
) -> None:
    job = make_job(
        tmp_path / "job",
        _train_spec(),
        files={"model.json": model_json},
        data=synthetic.train_part_dir,
    )
    run = run_runner("train", job)

    assert run.returncode == 0, run.stderr
    assert run.result["ok"] is True, run.result
    assert list(run.records[0]) == ["built_model"]
    [report] = run.built_models
    analysis = check_model(json.loads(model_json))
    assert compare_with_analysis(analysis, BuiltModelReport.from_dict(report)) == []
    assert report["params"]["total"] == analysis["params"]["total"] > 0
    assert _gate_state(run, analysis) == "matched"


@pytest.mark.parametrize("defines_train", [True, False], ids=["own-train", "build-only"])
def test_custom_training_reports_before_the_students_module_and_forgeries_come_too_late(
    tmp_path: Path, synthetic: PreparedDataset, model_json: str, defines_train: bool
) -> None:
    module = FORGING_PREAMBLE + (WITH_TRAIN if defines_train else "")
    job = make_job(
        tmp_path / "job",
        _train_spec(
            policy={"max_epochs": 10, "allow_custom_training": True},
            submission="submission.py",
        ),
        files={"model.json": model_json, "submission.py": module},
        data=synthetic.train_part_dir,
    )
    run = run_runner("train", job)

    assert run.returncode == 0, run.stderr
    assert run.result["ok"] is True, run.result
    assert run.result["custom_training"] is defines_train
    records = run.records
    imported_at = records.index({"student_module_imported": True})
    # The genuine report came out before the module was imported; the forgeries after it.
    assert list(records[0]) == ["built_model"] and imported_at > 0
    genuine, *forged = run.built_models
    assert forged == [FORGED] * (2 if defines_train else 1)
    analysis = check_model(json.loads(model_json))
    assert compare_with_analysis(analysis, BuiltModelReport.from_dict(genuine)) == []
    # The host's gate keeps the first report: the forgery changes nothing, whichever analysis
    # it was meant to fool.
    assert _gate_state(run, analysis) == "matched"
    assert _gate_state(run, _analysis_of(FORGED)) == "different"


def test_evaluation_reports_the_rebuilt_network(
    tmp_path: Path, synthetic: PreparedDataset, model_json: str
) -> None:
    from grader.training.safe_model import build_model
    from grader.training.weights_file import save_weights

    weights = save_weights(build_model(json.loads(model_json)), tmp_path / "weights.npz")
    job = make_job(
        tmp_path / "job",
        {"stage": "evaluate", "model_config": "model.json", "weights": "weights.npz"},
        files={"model.json": model_json, "weights.npz": weights.read_bytes()},
        data=synthetic.test_dir,
    )
    run = run_runner("evaluate", job)

    assert run.returncode == 0, run.stderr
    assert run.result["ok"] is True, run.result
    [report] = run.built_models
    analysis = check_model(json.loads(model_json))
    assert compare_with_analysis(analysis, BuiltModelReport.from_dict(report)) == []


def test_unpacking_an_archive_reports_the_loaded_network(tmp_path: Path) -> None:
    archive = MODELS / "smoke_separable.keras"
    job = make_job(
        tmp_path / "job",
        {"stage": "unpack", "keras_file": "submission.keras"},
        files={"submission.keras": archive.read_bytes()},
    )
    run = run_runner("unpack", job)

    assert run.returncode == 0, run.stderr
    [report] = run.built_models
    analysis = check_model(load_model_config(archive))
    assert compare_with_analysis(analysis, BuiltModelReport.from_dict(report)) == []
