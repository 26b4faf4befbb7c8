"""The runner validates on the held-out part the host mounted, and refuses a spec without it.

Were it to fall back to cutting `/job/data` with the spec's public seed, the pipeline's
validation numbers would silently come from other examples than the evaluate stage's. No
training runs here: the job fails before TensorFlow is used.
"""

from __future__ import annotations

from pathlib import Path

from tests.workers.runner import REPO_ROOT, make_job, run_runner

MODEL_JSON = (REPO_ROOT / "tests" / "fixtures" / "models" / "smoke_separable.json").read_text()


def _spec(**overrides: object) -> dict[str, object]:
    return {
        "stage": "train",
        "model_config": "model.json",
        "training_config": {"epochs": 1, "batch_size": 32},
        "policy": {"max_epochs": 10, "allow_custom_training": False},
        "validation_split": 0.1,
        "seed": 0,
        "submission": None,
        **overrides,
    }


def test_train_refuses_a_spec_asking_for_the_held_out_part_it_was_not_given(
    tmp_path: Path,
) -> None:
    job = make_job(tmp_path / "job", _spec(held_out=True), files={"model.json": MODEL_JSON})

    run = run_runner("train", job)

    assert run.returncode == 2, run.stderr
    assert "spec asks for the held-out part but" in run.stderr
    assert "held-out is not mounted" in run.stderr
    assert run.result is None
