"""Job folders, sandbox jobs and how a sandbox's answer becomes a verdict.

What a stage's sandbox may see is the security boundary of grading: the test split is mounted
for evaluation only, inputs are read-only, and the worker's environment never leaks in.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from workers.pipeline.errors import InfrastructureError, StageFailed
from workers.pipeline.jobs import (
    StageResources,
    job_dirs,
    read_stage_result,
    sandbox_job,
)
from workers.pipeline.sandboxes import gpu_for_pool_process
from workers.sandbox.base import SandboxResult

RESOURCES = StageResources(wall_seconds=120, memory_mb=2048)


def sandbox_result(**fields) -> SandboxResult:
    values = {
        "exit_code": 0,
        "signal": None,
        "timed_out": False,
        "oom_killed": False,
        "output_truncated": False,
        "stdout": "",
        "stderr": "",
        "duration_seconds": 1.0,
        "reason": None,
    }
    values.update(fields)
    return SandboxResult(**values)


@pytest.fixture
def splits(tmp_path: Path) -> tuple[Path, Path]:
    train, test = tmp_path / "data" / "train", tmp_path / "data" / "test"
    train.mkdir(parents=True)
    test.mkdir(parents=True)
    return train, test


def mounts_by_target(job) -> dict[str, object]:
    return {m.target: m for m in job.mounts}


@pytest.mark.parametrize("stage", ["build", "train"])
def test_stages_running_student_code_never_see_the_test_split(tmp_path, splits, stage):
    train, test = splits
    dirs = job_dirs(root=tmp_path / "jobs", key="7/g1", stage=stage)

    job = sandbox_job(stage=stage, dirs=dirs, data_dir=train, resources=RESOURCES)

    mounts = mounts_by_target(job)
    assert Path(mounts["/job/data"].source) == train
    assert all(not str(m.source).startswith(str(test)) for m in job.mounts)
    assert mounts["/job/in"].read_only and mounts["/job/data"].read_only
    assert not mounts["/job/work"].read_only and not mounts["/job/out"].read_only
    assert job.argv[-3:] == ["workers.runner", stage, "/job"]


def test_the_evaluation_sees_the_test_split_read_only(tmp_path, splits):
    _, test = splits
    dirs = job_dirs(root=tmp_path / "jobs", key="7/g1", stage="evaluate")

    job = sandbox_job(
        stage="evaluate", dirs=dirs, data_dir=test, resources=RESOURCES, gpu_device="1"
    )

    data = mounts_by_target(job)["/job/data"]
    assert (Path(data.source), data.read_only) == (test, True)
    assert job.gpu_device == "1"


def test_the_evaluation_measures_the_held_out_part_of_the_train_split_read_only(tmp_path, splits):
    held_out, test = splits
    dirs = job_dirs(root=tmp_path / "jobs", key="7/g1", stage="evaluate")

    job = sandbox_job(
        stage="evaluate", dirs=dirs, data_dir=test, resources=RESOURCES, validation_dir=held_out
    )

    mounts = mounts_by_target(job)
    assert (Path(mounts["/job/data"].source), mounts["/job/data"].read_only) == (test, True)
    assert (Path(mounts["/job/held-out"].source), mounts["/job/held-out"].read_only) == (
        held_out,
        True,
    )


def test_every_attempt_of_a_gradings_stage_has_the_same_job_name(tmp_path, splits):
    train, _ = splits
    names = {
        (key, stage, attempt): sandbox_job(
            stage=stage,
            dirs=job_dirs(root=tmp_path / "jobs", key=key, stage=stage),
            data_dir=train,
            resources=RESOURCES,
        ).name
        for key in ("7/g1", "7/g2")
        for stage in ("build", "train")
        for attempt in (1, 2)
    }

    # A resumed attempt ends its killed predecessor's job (docker), never another stage's.
    assert names[("7/g1", "train", 1)] == names[("7/g1", "train", 2)]
    assert len(set(names.values())) == 4


def test_the_build_stage_may_never_mount_the_held_out_part(tmp_path, splits):
    train, held_out = splits
    dirs = job_dirs(root=tmp_path / "jobs", key="7/g1", stage="build")

    with pytest.raises(ValueError, match="Expected none: it runs student code"):
        sandbox_job(
            stage="build", dirs=dirs, data_dir=train, resources=RESOURCES, validation_dir=held_out
        )


# An analysis to compare the built network with (these jobs never run).
ANALYSIS = {"layers": [], "params": {"total": 0, "trainable": 0, "non_trainable": 0}}


class RecordingSandbox:
    """Keeps the jobs it is given and reports that its engine is down (nothing runs)."""

    name = "recording"

    def __init__(self):
        self.jobs = []

    def run(self, job, on_line=None, cancel=None):
        from workers.sandbox.base import infrastructure_result

        self.jobs.append(job)
        return infrastructure_result("recording only")


def _train_job(tmp_path, prepared_data_dir, *, module: bool, allow_custom: bool):
    import dataclasses

    from django.conf import settings

    from grader.datasets import prepare_dataset
    from grader.grading.plan import GradingPlan
    from workers.pipeline.train import run_train

    dataset = prepare_dataset("synthetic", prepared_data_dir, key=settings.GRADER_DATASET_KEY)
    plan = dataclasses.replace(GradingPlan.from_preset("smoke"), allow_custom_training=allow_custom)
    submission = tmp_path / "model.py"
    submission.write_text("def build_model(input_shape, num_classes): ...\n")
    sandbox = RecordingSandbox()
    dirs = job_dirs(root=tmp_path / "jobs", key="7/g1", stage="train")
    with pytest.raises(InfrastructureError):
        run_train(
            model_config={},
            training_config=None,
            plan=plan,
            dirs=dirs,
            train_dir=dataset.train_part_dir,
            held_out_dir=dataset.held_out_dir,
            sandbox=sandbox,
            resources=RESOURCES,
            on_epoch=lambda record: None,
            analysis=ANALYSIS,
            submission_path=submission if module else None,
        )
    [job] = sandbox.jobs
    return dataset, mounts_by_target(job), json.loads((dirs.input / "spec.json").read_text())


def test_custom_training_never_sees_the_validation_part_it_is_measured_on(
    tmp_path, prepared_data_dir
):
    from grader.datasets import load_split

    dataset, mounts, spec = _train_job(tmp_path, prepared_data_dir, module=True, allow_custom=True)

    assert Path(mounts["/job/data"].source) == dataset.train_part_dir
    assert mounts["/job/data"].read_only and "/job/held-out" not in mounts
    assert spec["held_out"] is False and spec["submission"] == "submission.py"
    held_out = {image.tobytes() for image in load_split(dataset.held_out_dir)[0]}
    seen = {image.tobytes() for image in load_split(Path(mounts["/job/data"].source))[0]}
    assert len(seen) > 0 and not seen & held_out
    sources = [Path(m.source) for m in mounts.values()]
    for hidden in (dataset.train_dir, dataset.held_out_dir, dataset.test_dir):
        assert hidden not in sources


def test_custom_training_refuses_a_split_holding_the_validation_part(tmp_path, prepared_data_dir):
    import dataclasses

    from django.conf import settings

    from grader.datasets import prepare_dataset
    from grader.grading.plan import GradingPlan
    from workers.pipeline.train import run_train

    dataset = prepare_dataset("synthetic", prepared_data_dir, key=settings.GRADER_DATASET_KEY)
    plan = dataclasses.replace(GradingPlan.from_preset("smoke"), allow_custom_training=True)
    submission = tmp_path / "model.py"
    submission.write_text("def build_model(input_shape, num_classes): ...\n")
    sandbox = RecordingSandbox()

    with pytest.raises(InfrastructureError, match="Expected the `train-part` split"):
        run_train(
            model_config={},
            training_config=None,
            plan=plan,
            dirs=job_dirs(root=tmp_path / "jobs", key="7/g1", stage="train"),
            train_dir=dataset.train_dir,  # the whole split: the held-out examples are in it
            sandbox=sandbox,
            resources=RESOURCES,
            on_epoch=lambda record: None,
            analysis=ANALYSIS,
            submission_path=submission,
        )
    assert sandbox.jobs == []


@pytest.mark.parametrize(("module", "allow_custom"), [(True, False), (False, True)])
def test_the_trusted_trainer_gets_the_training_part_and_the_held_out_part_as_data(
    tmp_path, prepared_data_dir, module, allow_custom
):
    dataset, mounts, spec = _train_job(
        tmp_path, prepared_data_dir, module=module, allow_custom=allow_custom
    )

    assert Path(mounts["/job/data"].source) == dataset.train_part_dir
    assert Path(mounts["/job/held-out"].source) == dataset.held_out_dir
    assert mounts["/job/held-out"].read_only
    assert spec["held_out"] is True and spec["submission"] is None


def test_the_evaluation_gets_no_student_code_with_both_splits(tmp_path, prepared_data_dir):
    from django.conf import settings

    from grader.datasets import prepare_dataset
    from workers.pipeline.evaluate import run_evaluate

    dataset = prepare_dataset("synthetic", prepared_data_dir, key=settings.GRADER_DATASET_KEY)
    weights = tmp_path / "weights.npz"
    weights.write_bytes(b"HDF5 data only")
    dirs = job_dirs(root=tmp_path / "jobs", key="7/g1", stage="evaluate")
    sandbox = RecordingSandbox()

    with pytest.raises(InfrastructureError):
        run_evaluate(
            dirs=dirs,
            test_dir=dataset.test_dir,
            sandbox=sandbox,
            resources=RESOURCES,
            analysis=ANALYSIS,
            model_config={"class_name": "Sequential"},
            weights_path=weights,
            held_out_dir=dataset.held_out_dir,
        )

    [job] = sandbox.jobs
    assert sorted(p.name for p in dirs.input.iterdir()) == [
        "model.json",
        "spec.json",
        "weights.npz",
    ]
    spec = json.loads((dirs.input / "spec.json").read_text())
    assert "submission" not in spec
    assert spec["validation"] == {"validation_split": 0.1}
    mounts = mounts_by_target(job)
    assert Path(mounts["/job/data"].source) == dataset.test_dir
    assert Path(mounts["/job/held-out"].source) == dataset.held_out_dir
    assert all(m.read_only for m in mounts.values() if m.target not in ("/job/work", "/job/out"))


def test_a_job_gets_the_stage_limits_and_none_of_the_worker_environment(
    tmp_path, splits, monkeypatch
):
    monkeypatch.setenv("DJANGO_SECRET_KEY", "canary-secret-4f1c")
    monkeypatch.setenv("DATABASE_URL", "postgres://canary@db/grader")
    dirs = job_dirs(root=tmp_path / "jobs", key="7/g1", stage="build")

    job = sandbox_job(
        stage="build", dirs=dirs, data_dir=splits[0], resources=RESOURCES, gpu_device="0"
    )

    assert job.limits.wall_seconds == 120
    assert job.limits.memory_bytes == 2048 * 1024 * 1024
    assert job.gpu_device is None  # building needs no GPU
    assert "DJANGO_SECRET_KEY" not in job.env and "DATABASE_URL" not in job.env
    assert not any("canary" in value for value in job.env.values())


def test_work_survives_a_new_attempt_but_inputs_and_outputs_do_not(tmp_path):
    dirs = job_dirs(root=tmp_path, key="7/g1", stage="train")
    (dirs.work / "checkpoint").write_text("epoch 2")
    (dirs.out / "result.json").write_text("{}")
    (dirs.input / "spec.json").write_text("{}")

    again = job_dirs(root=tmp_path, key="7/g1", stage="train")

    assert (again.work / "checkpoint").read_text() == "epoch 2"
    assert list(again.out.iterdir()) == [] and list(again.input.iterdir()) == []


@pytest.mark.parametrize(
    ("fields", "reason", "words"),
    [
        ({"reason": "timeout", "timed_out": True, "exit_code": 137}, "timeout", "120 seconds"),
        ({"reason": "out_of_memory", "oom_killed": True}, "out_of_memory", "2,048 MB"),
        ({"reason": "output_limit", "output_truncated": True}, "output_limit", "more output"),
        ({"reason": "crashed", "exit_code": 3}, "crashed", "exit code 3"),
        ({"reason": "crashed", "exit_code": 139, "signal": 11}, "crashed", "signal 11"),
    ],
)
def test_a_sandbox_limit_is_the_matching_verdict(tmp_path, fields, reason, words):
    dirs = job_dirs(root=tmp_path, key="1/g1", stage="train")
    with pytest.raises(StageFailed) as failure:
        read_stage_result(
            stage="train", dirs=dirs, result=sandbox_result(**fields), resources=RESOURCES
        )
    assert failure.value.reason == reason
    assert words in failure.value.message


def test_a_sandbox_that_could_not_run_is_an_infrastructure_error(tmp_path):
    dirs = job_dirs(root=tmp_path, key="1/g1", stage="build")
    with pytest.raises(InfrastructureError) as error:
        read_stage_result(
            stage="build",
            dirs=dirs,
            result=sandbox_result(reason="infrastructure", exit_code=None),
            resources=RESOURCES,
        )
    assert error.value.retry is True


@pytest.mark.parametrize(
    ("stage", "kind", "reason"),
    [
        ("build", "build_error", "build_error"),
        ("build", "unsafe_layer", "invalid_submission"),
        ("train", "invalid_training_config", "invalid_submission"),
        ("train", "custom_training_failed", "crashed"),
    ],
)
def test_a_failure_reported_by_the_runner_keeps_its_message(tmp_path, stage, kind, reason):
    dirs = job_dirs(root=tmp_path, key="1/g1", stage=stage)
    message = "Layer `lambda` (Lambda) carries code. Expected built-in layers only."
    (dirs.out / "result.json").write_text(
        json.dumps({"ok": False, "error": {"kind": kind, "message": message}})
    )
    with pytest.raises(StageFailed) as failure:
        read_stage_result(stage=stage, dirs=dirs, result=sandbox_result(), resources=RESOURCES)
    assert (failure.value.reason, failure.value.message) == (reason, message)


def test_a_result_planted_as_a_symlink_is_refused(tmp_path):
    dirs = job_dirs(root=tmp_path, key="1/g1", stage="build")
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"ok": True, "model_config": {"stolen": True}}))
    os.symlink(secret, dirs.out / "result.json")

    with pytest.raises(StageFailed) as failure:
        read_stage_result(stage="build", dirs=dirs, result=sandbox_result(), resources=RESOURCES)
    assert failure.value.reason == "crashed"
    assert "refuses" in failure.value.message


@pytest.mark.parametrize(
    ("index", "ids", "expected"),
    [(0, "0,1", "0"), (1, "0,1", "1"), (2, "0,1", "0"), (3, " 2 , 3 ", "3"), (0, "", None)],
)
def test_pool_processes_are_spread_over_the_gpus(index, ids, expected):
    assert gpu_for_pool_process(index, ids) == expected


def test_the_production_image_brings_its_own_python(tmp_path):
    from workers.pipeline.jobs import sandbox_python
    from workers.sandbox.images import LOCAL_IMAGE

    production = sandbox_python(SimpleNamespace(name="docker", image="cnn-grader-sandbox:1"))
    local = sandbox_python(SimpleNamespace(name="docker", image=LOCAL_IMAGE))

    assert production.mounts == () and production.python.startswith("/usr/bin/python")
    assert local.mounts and Path(local.python).is_absolute()


def test_the_build_stage_mounts_no_data_at_all(tmp_path):
    from workers.pipeline.build import run_build

    submission = tmp_path / "model.py"
    submission.write_text("def build_model(input_shape, num_classes): ...\n")
    sandbox = RecordingSandbox()

    with pytest.raises(InfrastructureError):
        run_build(
            path=submission,
            input_shape=(8, 8, 3),
            num_classes=4,
            dirs=job_dirs(root=tmp_path / "jobs", key="7/g1", stage="build"),
            sandbox=sandbox,
            resources=RESOURCES,
        )

    [job] = sandbox.jobs
    targets = set(mounts_by_target(job))
    assert "/job/data" not in targets and "/job/held-out" not in targets
    assert {"/job/in", "/job/out"} <= targets


FORGED_RESULTS = {
    "NaN": '{"ok": true, "model_config": {"rate": NaN}}',
    "Infinity": '{"ok": true, "training_config": {"learning_rate": -Infinity}}',
    "overflowing float": '{"ok": true, "training_config": {"learning_rate": 1e400}}',
    "5,000-digit integer": '{"ok": true, "model_config": {"units": ' + "9" * 5000 + "}}",
    "deep nesting": '{"ok": true, "model_config": ' + "[" * 200_000 + "]" * 200_000 + "}",
}


@pytest.mark.parametrize("content", FORGED_RESULTS.values(), ids=FORGED_RESULTS.keys())
def test_a_result_json_cannot_parse_is_a_verdict_not_an_internal_error(tmp_path, content):
    # Student code in the build (or a custom training) can write `result.json` itself.
    dirs = job_dirs(root=tmp_path, key="1/g1", stage="build")
    (dirs.out / "result.json").write_text(content)

    with pytest.raises(StageFailed) as failure:
        read_stage_result(stage="build", dirs=dirs, result=sandbox_result(), resources=RESOURCES)
    assert failure.value.reason == "crashed"
    assert failure.value.message.startswith("The build wrote an unreadable result (")


@pytest.mark.parametrize(
    ("stage", "payload", "reason", "words"),
    [
        (
            "build",
            {"model_config": {"class_name": "Dense", "name": "d", "config": {"units": 2**60}}},
            "invalid_submission",
            "Layer `d` has, at `model_config.config.units`, an integer beyond",
        ),
        (
            "build",
            {"model_config": {}, "training_config": {"note": "a\x00b"}},
            "invalid_submission",
            "at `training_config.note`, text containing '\\x00'",
        ),
        ("train", {"custom_training": {"seconds": 2**63}}, "crashed", "an integer beyond"),
    ],
)
def test_a_result_the_database_could_not_store_is_refused_with_where(
    tmp_path, stage, payload, reason, words
):
    dirs = job_dirs(root=tmp_path, key="1/g1", stage=stage)
    (dirs.out / "result.json").write_text(json.dumps({"ok": True, **payload}))

    with pytest.raises(StageFailed) as failure:
        read_stage_result(stage=stage, dirs=dirs, result=sandbox_result(), resources=RESOURCES)
    assert failure.value.reason == reason
    assert "produced output the grader refuses" in failure.value.message
    assert words in failure.value.message


def test_the_stored_log_leaves_out_the_runners_progress_lines():
    from workers.pipeline.jobs import stage_log

    result = sandbox_result(
        stdout='GRADER-PROGRESS {"epoch": 1, "loss": 0.5}\nstudent print\n'
        'GRADER-PROGRESS {"epoch": 2, "loss": 0.25}\n',
        stderr="a warning\n",
    )
    assert stage_log(result) == "student print\na warning\n"


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_the_workers_keras_backend_reaches_train_and_evaluate_only(
    tmp_path, splits, settings, backend
):
    settings.GRADER_KERAS_BACKEND = backend
    train, _ = splits
    seen = {}
    for stage in ("build", "unpack", "train", "evaluate"):
        dirs = job_dirs(root=tmp_path / "jobs", key="7/g1", stage=stage)
        data = train if stage in ("train", "evaluate") else None
        job = sandbox_job(stage=stage, dirs=dirs, data_dir=data, resources=RESOURCES)
        seen[stage] = (job.env["KERAS_BACKEND"], job.env.get("GRADER_KERAS_BACKEND"))
    assert seen == {
        "build": ("tensorflow", None),
        "unpack": ("tensorflow", None),
        "train": (backend, backend),
        "evaluate": (backend, backend),
    }


def test_an_unknown_keras_backend_is_refused_at_start():
    from grader.training.backend import check_backend

    assert check_backend("jax") == "jax"
    with pytest.raises(ValueError, match=r"GRADER_KERAS_BACKEND is `torch`\. Expected one of"):
        check_backend("torch")
