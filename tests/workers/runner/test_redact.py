"""Host paths are redacted from what a student reads: runner tracebacks, messages, logs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.support.dataset_key import TEST_DATASET_KEY
from workers.runner.protocol import failure
from workers.runner.redact import PROJECT_ROOT, redact_paths


def _traceback() -> str:
    site = next(p for p in sys.path if p.endswith("site-packages"))
    return (
        "Traceback (most recent call last):\n"
        f'  File "{site}/keras/src/utils/traceback_utils.py", line 117, in error_handler\n'
        f'  File "{PROJECT_ROOT}/grader/training/trainer.py", line 3, in train\n'
        '  File "/opt/grader-code/workers/runner/train.py", line 9, in run\n'
        f'  File "{sys.base_prefix}/lib/python3.11/runpy.py", line 198, in _run_module\n'
        '  File "/tmp/qa/.venv/lib/python3.11/site-packages/tensorflow/ops.py", line 1\n'
        '  File "/root/.pyenv/versions/3.11.9/lib/python3.11/runpy.py", line 88\n'
        '  File "/home/ta/code/x.py", line 88\n'
        '  File "/job/in/submission.py", line 4\n'
        "ValueError: 'd<e' is not a valid scope name\n"
    )


def test_host_paths_become_labels_and_job_paths_stay():
    text = redact_paths(_traceback())
    for host in (sys.prefix, sys.base_prefix, PROJECT_ROOT, "/tmp/qa", "/root/", "/home/ta"):
        assert host not in text
    assert '"<site-packages>/keras/src/utils/traceback_utils.py"' in text
    assert '"<site-packages>/tensorflow/ops.py"' in text
    assert '"grader/training/trainer.py"' in text
    assert '"workers/runner/train.py"' in text
    assert '"~/.pyenv/versions/3.11.9/lib/python3.11/runpy.py"' in text
    assert '"/job/in/submission.py"' in text
    assert "ValueError: 'd<e' is not a valid scope name" in text


def test_a_runner_failure_message_is_redacted():
    message = failure("crashed", f"Keras cannot load: {sys.prefix}/lib/x.py")["error"]["message"]
    assert sys.prefix not in message and "<venv>/lib/x.py" in message


@pytest.mark.tf
@pytest.mark.bwrap
@pytest.mark.timeout(600)
def test_a_training_crash_in_the_sandbox_shows_no_host_path(tmp_path, bwrap_available):
    """A name TensorFlow refuses, sent straight to the train stage (the check stage refuses it
    first in a grading): the raw TensorFlow failure reaches the log without host paths."""
    import json

    from grader.datasets import prepare_dataset
    from grader.grading.plan import GradingPlan
    from workers.pipeline.errors import StageFailed
    from workers.pipeline.jobs import StageResources, job_dirs
    from workers.pipeline.sandboxes import open_sandbox
    from workers.pipeline.train import run_train

    models = Path(__file__).resolve().parents[2] / "fixtures" / "models"
    config = json.loads((models / "smoke_separable.json").read_text())
    # The analysis of the same network (check_model refuses the name itself, as it should).
    from grader.report import check_model

    analysis = check_model(config)
    analysis["layers"][-1]["name"] = "scores<1>"
    config["config"]["layers"][-1]["config"]["name"] = "scores<1>"
    data = prepare_dataset("synthetic", tmp_path / "data", key=TEST_DATASET_KEY)
    jobs = tmp_path / "jobs"
    jobs.mkdir(mode=0o755)
    with pytest.raises(StageFailed) as info:
        run_train(
            model_config=config,
            training_config={"epochs": 1, "batch_size": 64},
            plan=GradingPlan.from_preset("smoke"),
            dirs=job_dirs(root=jobs, key="crash", stage="train"),
            train_dir=data.train_part_dir,
            held_out_dir=data.held_out_dir,
            sandbox=open_sandbox("bwrap"),
            resources=StageResources(wall_seconds=300, memory_mb=3072),
            on_epoch=lambda record: None,
            analysis=analysis,
        )
    shown = info.value.message + "\n" + info.value.log
    assert "scores<1>" in shown  # the failure is there ...
    for host in (sys.prefix, sys.base_prefix, PROJECT_ROOT):
        assert host not in shown  # ... without the host's paths
    assert "/site-packages/" not in shown
