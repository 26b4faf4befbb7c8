"""Attack: reach the hidden test split through the weights parser.

The evaluate sandbox is the only one holding the test split, and it reads weights a student
may have written: with custom training the weights file is the student's, and in evaluate-only
assignments the whole `.keras` archive is. Keras stores weights as HDF5, a large C parser; a
crafted file that ran code there could read the test labels and forge the accuracy. The grader
now never parses HDF5 where the test split is: trained weights travel as checked `.npz` arrays,
and an archive is opened by an `unpack` job in a sandbox that holds no data
(`grader.training.weights_file`, `workers.runner.unpack`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from grader.datasets import PreparedDataset, prepare_dataset
from grader.loading import load_model_config
from grader.report import check_model
from tests.support.dataset_key import TEST_DATASET_KEY
from tests.workers.conftest import FIXTURE_MODELS
from tests.workers.runner import make_job, run_runner


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> PreparedDataset:
    return prepare_dataset("synthetic", tmp_path_factory.mktemp("data"), key=TEST_DATASET_KEY)


@pytest.mark.tf
def test_hdf5_weights_left_by_a_students_training_are_refused_unparsed(
    tmp_path: Path, synthetic: PreparedDataset
) -> None:
    # What a custom train() could leave instead of the grader's arrays: Keras' own HDF5.
    import keras

    config = (FIXTURE_MODELS / "smoke_separable.json").read_text()
    keras.models.model_from_json(config).save_weights(tmp_path / "own.weights.h5")
    job = make_job(
        tmp_path / "job",
        {"stage": "evaluate", "model_config": "model.json", "weights": "weights.npz"},
        files={"model.json": config, "weights.npz": (tmp_path / "own.weights.h5").read_bytes()},
        data=synthetic.test_dir,
    )

    run = run_runner("evaluate", job)

    assert run.returncode == 0, run.stderr
    assert run.result["ok"] is False
    assert "not a NumPy .npz archive" in run.result["error"]["message"]


class RecordingSandbox:
    """The real backend, recording each job it runs (its mounts and its input files)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.jobs: list[dict[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def run(self, job: Any, **kwargs: Any) -> Any:
        mounts = {mount.target: Path(mount.source) for mount in job.mounts}
        inputs = sorted(p.name for p in mounts["/job/in"].iterdir())
        self.jobs.append({"stage": job.argv[-2], "targets": set(mounts), "inputs": inputs})
        return self.inner.run(job, **kwargs)


@pytest.mark.tf
@pytest.mark.bwrap
@pytest.mark.timeout(600)
def test_an_archive_is_opened_only_where_no_data_is(
    tmp_path: Path, synthetic: PreparedDataset, bwrap_available: None
) -> None:
    from workers.pipeline.evaluate import run_evaluate
    from workers.pipeline.jobs import StageResources, job_dirs
    from workers.sandbox import get_sandbox

    archive = FIXTURE_MODELS / "smoke_separable.keras"
    sandbox = RecordingSandbox(get_sandbox("bwrap"))

    evaluated = run_evaluate(
        dirs=job_dirs(root=tmp_path / "jobs", key="1/g1", stage="evaluate"),
        test_dir=synthetic.test_dir,
        sandbox=sandbox,
        resources=StageResources(wall_seconds=240, memory_mb=3072),
        analysis=check_model(load_model_config(archive)),
        keras_path=archive,
    )

    assert 0.0 <= evaluated.accuracy <= 1.0
    for job in sandbox.jobs:
        holds_data = bool(job["targets"] & {"/job/data", "/job/held-out"})
        holds_archive = any(name.endswith((".keras", ".h5")) for name in job["inputs"])
        assert not (holds_data and holds_archive), job
    assert [job["stage"] for job in sandbox.jobs] == ["unpack", "evaluate"]
    assert json.loads(
        (tmp_path / "jobs" / "1" / "g1" / "evaluate" / "in" / "spec.json").read_text()
    ) == {"stage": "evaluate", "model_config": "model.json", "weights": "weights.npz"}
