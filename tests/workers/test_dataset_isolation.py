"""What each stage's sandbox job may see of the datasets and of the dataset key.

The key chooses the held-out and test examples on the host (`grader.datasets.keys`); these
tests check, on the `SandboxJob`s the pipeline builds (a recording backend runs nothing), that
the key is in no job's environment, argv or inputs, that no job mounts the key file, the whole
training split or a dataset's folder, and which folders each stage sees empty. The hostile
suite (`tests/hostile/test_hidden_data.py`) runs the same stages in real sandboxes.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from workers.pipeline.errors import InfrastructureError
from workers.pipeline.jobs import StageResources, job_dirs
from workers.sandbox.environment import (
    BUILD_HIDDEN_CODE,
    CODE_TARGET,
    bundled_data_paths,
    python_environment,
)

RESOURCES = StageResources(wall_seconds=120, memory_mb=2048)
# The check stage's analysis, which train and evaluate require (no network is built here).
ANALYSIS = {"layers": [], "params": {"total": 0, "trainable": 0, "non_trainable": 0}}
KEY = "canary-dataset-key-0b6f1d9c2a7e4f58a3c1d2e3f4a5b6c7"


class RecordingSandbox:
    """Keeps the jobs it is given and reports that its engine is down (nothing runs)."""

    name = "recording"

    def __init__(self):
        self.jobs = []

    def run(self, job, on_line=None, cancel=None):
        from workers.sandbox.base import infrastructure_result

        self.jobs.append(job)
        return infrastructure_result("recording only")


@pytest.fixture
def keyed(settings, monkeypatch, tmp_path):
    """The key in the settings and in the worker's environment, as production has it."""
    from grader.datasets import prepare_dataset

    settings.GRADER_DATASET_KEY = KEY
    monkeypatch.setenv("GRADER_DATASET_KEY", KEY)
    key_file = tmp_path / "var" / "dataset.key"
    key_file.parent.mkdir()
    key_file.write_text(KEY)
    return prepare_dataset("synthetic", tmp_path / "data", key=KEY), key_file


def _jobs(tmp_path: Path, dataset, *, custom: bool) -> dict[str, object]:
    from grader.grading.plan import GradingPlan
    from workers.pipeline.build import run_build
    from workers.pipeline.evaluate import run_evaluate
    from workers.pipeline.train import run_train

    tmp_path.mkdir(parents=True, exist_ok=True)
    module = tmp_path / "model.py"
    module.write_text("def build_model(input_shape, num_classes): ...\n")
    plan = dataclasses.replace(GradingPlan.from_preset("smoke"), allow_custom_training=custom)
    weights = tmp_path / "weights.npz"
    weights.write_bytes(b"HDF5")
    root = tmp_path / "jobs"
    sandbox = RecordingSandbox()
    calls = {
        "build": lambda: run_build(
            path=module,
            input_shape=dataset.input_shape,
            num_classes=dataset.num_classes,
            dirs=job_dirs(root=root, key="1", stage="build"),
            sandbox=sandbox,
            resources=RESOURCES,
        ),
        "train": lambda: run_train(
            model_config={"class_name": "Functional"},
            training_config=None,
            plan=plan,
            dirs=job_dirs(root=root, key="1", stage="train"),
            train_dir=dataset.train_part_dir,
            held_out_dir=dataset.held_out_dir,
            sandbox=sandbox,
            resources=RESOURCES,
            on_epoch=lambda record: None,
            analysis=ANALYSIS,
            submission_path=module,
        ),
        "evaluate": lambda: run_evaluate(
            dirs=job_dirs(root=root, key="1", stage="evaluate"),
            test_dir=dataset.test_dir,
            sandbox=sandbox,
            resources=RESOURCES,
            model_config={"class_name": "Functional"},
            weights_path=weights,
            held_out_dir=dataset.held_out_dir,
            analysis=ANALYSIS,
        ),
    }
    jobs = {}
    for stage, call in calls.items():
        with pytest.raises(InfrastructureError):
            call()
        jobs[stage] = sandbox.jobs[-1]
    return jobs


@pytest.mark.parametrize("custom", [True, False], ids=["custom-training", "trusted-trainer"])
def test_the_key_reaches_no_sandbox(tmp_path, keyed, custom):
    dataset, key_file = keyed

    for stage, job in _jobs(tmp_path, dataset, custom=custom).items():
        assert not any(KEY in value for value in job.full_env().values()), stage
        assert "GRADER_DATASET_KEY" not in job.full_env() and KEY not in " ".join(job.argv)
        for mount in job.mounts:
            source = Path(mount.source).resolve()
            assert not key_file.resolve().is_relative_to(source), (stage, mount)
            assert source != dataset.train_dir.resolve(), (stage, mount)  # the whole split
            assert source not in {dataset.train_dir.parent.resolve(), key_file.parent.resolve()}
            if mount.target.startswith("/job/"):
                # The job's own folders and the splits: small, read them all.
                for path in source.rglob("*"):
                    if path.is_file():
                        assert KEY.encode() not in path.read_bytes(), (stage, path)


def test_which_splits_each_stage_gets(tmp_path, keyed):
    dataset, _ = keyed

    for custom in (True, False):
        jobs = _jobs(tmp_path / str(custom), dataset, custom=custom)
        mounted = {
            stage: {m.target: Path(m.source) for m in job.mounts if m.target.startswith("/job/")}
            for stage, job in jobs.items()
        }
        assert "/job/data" not in mounted["build"] and "/job/held-out" not in mounted["build"]
        assert mounted["train"]["/job/data"] == dataset.train_part_dir
        # Student code never gets the held-out part; the trusted trainer gets it as data.
        assert mounted["train"].get("/job/held-out") == (None if custom else dataset.held_out_dir)
        assert mounted["evaluate"]["/job/data"] == dataset.test_dir
        assert mounted["evaluate"]["/job/held-out"] == dataset.held_out_dir
        spec = json.loads((tmp_path / str(custom) / "jobs/1/train/in/spec.json").read_text())
        assert spec["held_out"] is (not custom)


def test_the_bundled_digits_are_hidden_in_every_stage_and_dataset_code_in_build(tmp_path, keyed):
    dataset, _ = keyed
    bundled = python_environment().hidden

    # This environment has scikit-learn, whose `load_digits` reads `datasets/data`.
    assert any(path.endswith("sklearn/datasets/data") for path in bundled)
    assert all(Path(path).is_dir() for path in bundled)
    jobs = _jobs(tmp_path, dataset, custom=True)
    assert set(jobs["build"].hidden) == {*bundled, *BUILD_HIDDEN_CODE}
    assert (f"{CODE_TARGET}/grader/datasets",) == BUILD_HIDDEN_CODE
    # Training imports the dataset loaders; the key-less code holds nothing to hide.
    assert set(jobs["train"].hidden) == set(bundled) == set(jobs["evaluate"].hidden)


def test_bundled_data_is_found_under_any_prefix_without_following_links(tmp_path):
    site = tmp_path / "venv" / "lib" / "python3.11" / "site-packages"
    (site / "sklearn" / "datasets" / "data").mkdir(parents=True)
    (site / "sklearn" / "datasets" / "images").mkdir(parents=True)
    (tmp_path / "venv" / "lib64").symlink_to("lib")
    dist = tmp_path / "usr" / "lib" / "python3" / "dist-packages" / "sklearn" / "datasets"
    (dist / "data").mkdir(parents=True)

    found = bundled_data_paths([tmp_path / "venv", tmp_path / "usr", tmp_path / "missing"])

    assert found == (
        str(site / "sklearn" / "datasets" / "data"),
        str(site / "sklearn" / "datasets" / "images"),
        str(dist / "data"),
    )


def test_a_job_refuses_to_hide_a_relative_path_or_a_mount_point():
    from workers.sandbox import Mount, SandboxJob

    with pytest.raises(ValueError, match="Expected an absolute folder inside a mount"):
        SandboxJob(argv=["true"], hidden=["relative/path"])
    with pytest.raises(ValueError, match="not a mount point itself"):
        SandboxJob(argv=["true"], mounts=[Mount("/usr", "/usr")], hidden=["/usr"])
