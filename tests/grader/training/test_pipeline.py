"""The trainer's schedules, mixed-precision rewrite and validation split (the input pipeline and
augmentations, pure NumPy, are in `test_input_pipeline.py`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from grader.training.accelerator import with_dtype_policy
from grader.training.config import learning_rate_at, validate_training_config
from grader.training.trainer import split_indices

pytestmark = pytest.mark.tf

MODELS = Path(__file__).resolve().parents[2] / "fixtures" / "models"


@pytest.mark.parametrize(
    "schedule",
    [
        "constant",
        {"name": "step", "step_epochs": 2, "factor": 0.5},
        {"name": "exponential", "decay_rate": 0.8},
        {"name": "cosine", "min_fraction": 0.1},
        {"name": "cosine", "warmup_epochs": 1},
        {"name": "one-cycle", "warmup_fraction": 0.25, "initial_fraction": 0.1},
    ],
)
def test_keras_schedules_match_the_reference_arithmetic(schedule: Any) -> None:
    from grader.training.optimization import make_schedule

    config = validate_training_config(
        {"learning_rate": 0.1, "epochs": 6, "schedule": schedule}, {"max_epochs": 6}
    )
    keras_schedule = make_schedule(config, steps_per_epoch=10)
    for step in (0, 1, 5, 10, 19, 20, 33, 45, 59):
        got = keras_schedule if isinstance(keras_schedule, float) else float(keras_schedule(step))
        assert got == pytest.approx(learning_rate_at(config, step, 10), rel=1e-5, abs=1e-7)


def test_mixed_precision_rewrite_keeps_outputs_in_float32() -> None:
    from grader.training.safe_model import build_model

    config = json.loads((MODELS / "cifar10_separable_reference.json").read_text())
    model = build_model(with_dtype_policy(config, "mixed_bfloat16"))
    policies = {layer.name: layer.dtype_policy.name for layer in model.layers}
    assert policies["classifier"] == "float32"
    assert policies["separable_conv2d"] == "mixed_bfloat16"
    output = model(np.zeros((2, 32, 32, 3), dtype=np.float32))
    assert output.dtype.name == "float32"
    # The rewrite leaves the caller's config untouched.
    assert build_model(config).layers[1].dtype_policy.name == "float32"


def test_validation_split_is_deterministic_and_disjoint() -> None:
    train, val = split_indices(1000, 0.1, seed=3)
    again, _ = split_indices(1000, 0.1, seed=3)
    other, _ = split_indices(1000, 0.1, seed=4)
    assert len(val) == 100 and len(train) == 900
    assert np.array_equal(train, again) and not np.array_equal(train, other)
    assert not set(train) & set(val) and set(train) | set(val) == set(range(1000))
