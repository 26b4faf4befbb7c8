"""Training config validation: a table of accepted and refused configs, with message checks."""

from __future__ import annotations

import math
import sys
from typing import Any

import pytest

from grader.errors import TrainingConfigError
from grader.training.config import (
    TrainingConfig,
    learning_rate_at,
    validate_training_config,
)

POLICY = {"max_epochs": 20}


def test_defaults_when_nothing_is_declared() -> None:
    config = validate_training_config(None, POLICY)
    assert (config.optimizer, config.learning_rate, config.batch_size) == ("adam", 1e-3, 128)
    assert config.epochs == 20 and config.schedule.name == "constant"
    assert config.augmentation == () and config.momentum is None


def test_policy_defaults_apply_before_builtin_defaults() -> None:
    policy = {"max_epochs": 20, "defaults": {"optimizer": "momentum", "epochs": 5}}
    config = validate_training_config({"learning_rate": 0.05}, policy)
    assert (config.optimizer, config.momentum, config.epochs) == ("momentum", 0.9, 5)
    assert config.learning_rate == 0.05


def test_round_trips_through_to_dict() -> None:
    declared = {
        "optimizer": "nesterov",
        "momentum": 0.95,
        "learning_rate": 0.1,
        "schedule": {"name": "one-cycle", "warmup_fraction": 0.25},
        "batch_size": 256,
        "epochs": 12,
        "weight_decay": 5e-4,
        "label_smoothing": 0.1,
        "augmentation": ["cutout", "flip"],
    }
    config = validate_training_config(declared, POLICY)
    assert config.augmentation == ("flip", "cutout")
    assert validate_training_config(config.to_dict(), POLICY) == config


@pytest.mark.parametrize(
    "declared",
    [
        {"optimizer": "sgd", "learning_rate": 0.1},
        {"optimizer": "adamw", "weight_decay": 0.05},
        {"optimizer": "rmsprop", "momentum": 0.5},
        {"schedule": "step"},
        {"schedule": {"name": "step", "step_epochs": 3, "factor": 0.5}},
        {"schedule": {"name": "exponential", "decay_rate": 0.9}},
        {"schedule": {"name": "cosine", "min_fraction": 0.01, "warmup_epochs": 2}},
        {"schedule": "one-cycle"},
        {"batch_size": 1024, "epochs": 20},
        {"label_smoothing": 0.0, "augmentation": ["flip", "translate", "cutout"]},
        {"learning_rate": 1e-6},
        {"learning_rate": 1},
    ],
)
def test_accepts_whitelisted_configs(declared: dict[str, Any]) -> None:
    assert isinstance(validate_training_config(declared, POLICY), TrainingConfig)


@pytest.mark.parametrize(
    ("declared", "message"),
    [
        ({"lr": 0.1}, "Training config has unknown key `lr`. Expected only `augmentation`"),
        ({"optimizer": "lion"}, "`optimizer` is 'lion'. Expected one of 'sgd', 'momentum'"),
        ({"learning_rate": 5.0}, "`learning_rate` is 5.0. Expected a number in [1e-06, 1]."),
        ({"learning_rate": 0.0}, "`learning_rate` is 0.0. Expected a number in [1e-06, 1]."),
        ({"learning_rate": math.nan}, "`learning_rate` is nan. Expected a number"),
        ({"learning_rate": "0.1"}, "`learning_rate` is '0.1'. Expected a number"),
        ({"epochs": 21}, "`epochs` is 21. Expected at most 20 (the assignment's limit)."),
        ({"epochs": 0}, "`epochs` is 0. Expected an integer in [1, 20]."),
        ({"epochs": 2.5}, "`epochs` is 2.5. Expected an integer in [1, 20]."),
        ({"batch_size": 4096}, "`batch_size` is 4096. Expected an integer in [1, 1,024]."),
        ({"batch_size": True}, "`batch_size` is True. Expected an integer"),
        ({"label_smoothing": 0.5}, "`label_smoothing` is 0.5. Expected a number in [0, 0.5)."),
        ({"label_smoothing": -0.1}, "`label_smoothing` is -0.1. Expected a number in [0, 0.5)."),
        ({"weight_decay": 0.5}, "`weight_decay` is 0.5. Expected a number in [0, 0.1]."),
        ({"momentum": 0.9}, "`momentum` is 0.9. Expected no momentum with optimizer 'adam'"),
        (
            {"optimizer": "momentum", "momentum": 1.0},
            "`momentum` is 1.0. Expected a number in [0, 1).",
        ),
        ({"augmentation": ["mixup"]}, "`augmentation` is 'mixup'. Expected one of 'flip'"),
        ({"augmentation": "flip"}, "`augmentation` is 'flip'. Expected a list drawn from"),
        ({"augmentation": ["flip", "flip"]}, "Expected each augmentation at most once."),
        ({"schedule": "warm-restarts"}, "`schedule.name` is 'warm-restarts'. Expected one of"),
        (
            {"schedule": {"name": "step", "gamma": 0.1}},
            "`schedule` (step) has unknown parameter `gamma`. Expected `step_epochs`, `factor`.",
        ),
        (
            {"schedule": {"name": "constant", "factor": 0.1}},
            "`schedule` (constant) has unknown parameter `factor`. Expected no parameters.",
        ),
        ({"schedule": {"name": "step", "factor": 2.0}}, "`schedule.factor` is 2.0. Expected"),
        (
            {"schedule": {"name": "cosine", "warmup_epochs": 20}},
            "`schedule.warmup_epochs` is 20. Expected fewer than the 20 epochs.",
        ),
        ({"schedule": 3}, "`schedule` is 3. Expected a schedule name or a mapping"),
    ],
)
def test_rejects_with_a_message_naming_key_value_and_allowed(
    declared: dict[str, Any], message: str
) -> None:
    with pytest.raises(TrainingConfigError) as info:
        validate_training_config(declared, POLICY)
    assert message in info.value.message
    assert info.value.to_dict()["kind"] == "invalid_training_config"


def test_rejects_a_non_mapping() -> None:
    with pytest.raises(TrainingConfigError, match=r"is a list\. Expected a mapping"):
        validate_training_config([1, 2], POLICY)  # type: ignore[arg-type]


def test_policy_max_batch_size_is_enforced() -> None:
    with pytest.raises(TrainingConfigError, match=r"Expected an integer in \[1, 64\]"):
        validate_training_config({"batch_size": 128}, {"max_epochs": 5, "max_batch_size": 64})


@pytest.mark.parametrize(
    ("schedule", "step", "expected"),
    [
        # Hand-computed values, steps_per_epoch=10, epochs=20, peak 0.1.
        ("constant", 150, 0.1),
        ({"name": "step", "step_epochs": 5, "factor": 0.5}, 49, 0.1),
        ({"name": "step", "step_epochs": 5, "factor": 0.5}, 50, 0.05),
        ({"name": "step", "step_epochs": 5, "factor": 0.5}, 199, 0.1 * 0.5**3),
        ({"name": "exponential", "decay_rate": 0.5}, 20, 0.025),
        ("cosine", 0, 0.1),
        ("cosine", 100, 0.05),
        ("cosine", 200, 0.0),
        ({"name": "cosine", "warmup_epochs": 2}, 10, 0.05),
        ({"name": "one-cycle", "warmup_fraction": 0.25, "initial_fraction": 0.1}, 0, 0.01),
        ({"name": "one-cycle", "warmup_fraction": 0.25, "initial_fraction": 0.1}, 50, 0.1),
        ({"name": "one-cycle", "warmup_fraction": 0.25, "initial_fraction": 0.1}, 125, 0.05),
    ],
)
def test_reference_learning_rate(schedule: Any, step: int, expected: float) -> None:
    config = validate_training_config(
        {"learning_rate": 0.1, "epochs": 20, "schedule": schedule}, POLICY
    )
    assert learning_rate_at(config, step, steps_per_epoch=10) == pytest.approx(expected, abs=1e-12)


def test_config_module_stays_pure_python() -> None:
    import subprocess

    code = "import grader.training.config, sys; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- The training budget: a minimum batch size ------------------------------------------------

BUDGET = {"max_epochs": 5, "min_batch_size": 16, "time_limit_seconds": 300}


@pytest.mark.parametrize("batch_size", [1, 8, 15])
def test_a_batch_below_the_budget_is_refused_with_the_limit_in_the_message(batch_size) -> None:
    with pytest.raises(TrainingConfigError) as info:
        validate_training_config({"batch_size": batch_size}, BUDGET)
    assert info.value.message == (
        f"Training config `batch_size` is {batch_size}. Expected at least 16: the assignment's "
        "training budget is at most 5 epochs in batches of at least 16 examples, within 300 s. "
        "Declare a `batch_size` of 16 or more (larger batches take fewer steps per epoch)."
    )


def test_a_batch_at_or_above_the_budget_is_accepted() -> None:
    assert validate_training_config({"batch_size": 16}, BUDGET).batch_size == 16
    assert validate_training_config({"batch_size": 512}, BUDGET).batch_size == 512


def test_the_budget_applies_to_the_assignments_default_batch_too() -> None:
    policy = {**BUDGET, "defaults": {"batch_size": 4}}
    with pytest.raises(TrainingConfigError, match=r"`batch_size` is 4\. Expected at least 16"):
        validate_training_config(None, policy)


def test_a_policy_without_a_budget_allows_any_batch() -> None:
    assert validate_training_config({"batch_size": 1}, {"max_epochs": 5}).batch_size == 1
