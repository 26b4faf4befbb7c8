"""Finalize: training-decided rules, the score, and the late policy.

The expected verdicts come from the preset's own limits (read from its YAML), and the score from
counting points by hand, not from numbers the code printed.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from grader.grading.plan import GradingPlan
from grader.grading.verdict import compute_verdict, late_adjusted_score
from grader.presets import load_preset
from tests.workers.conftest import FIXTURE_MODELS

SMOKE = GradingPlan.from_preset("smoke")
CONFIG = json.loads((FIXTURE_MODELS / "smoke_separable.json").read_text())
RULES = {rule.id: rule for rule in load_preset("smoke").rules}
TARGET = RULES["min_val_accuracy"].params["limit"]
WITHIN = RULES["min_val_accuracy"].params["within_epochs"]


def epochs(*val_accuracies: float) -> list[dict]:
    return [{"epoch": i, "val_accuracy": v} for i, v in enumerate(val_accuracies, start=1)]


def verdict_of(history: list[dict], plan: GradingPlan = SMOKE, *, is_late: bool = False):
    return compute_verdict(
        plan=plan,
        model_config=CONFIG,
        epochs=history,
        test_accuracy=0.9,
        is_late=is_late,
        training_config={"epochs": len(history)},
    )


def by_id(verdict) -> dict[str, dict]:
    return {rule["id"]: rule for rule in verdict.rules}


def test_reaching_the_validation_target_passes_with_full_marks():
    verdict = verdict_of(epochs(TARGET - 0.2, TARGET + 0.05))

    assert by_id(verdict)["min_val_accuracy"]["passed"] is True
    assert by_id(verdict)["min_val_accuracy"]["measured"] == pytest.approx(TARGET + 0.05)
    assert verdict.passed is True
    assert verdict.score == 100.0


def test_missing_the_validation_target_fails_and_loses_its_points():
    verdict = verdict_of(epochs(TARGET - 0.3, TARGET - 0.1))

    rules = by_id(verdict)
    assert rules["min_val_accuracy"]["passed"] is False
    assert verdict.passed is False
    points = {rule.id: rule.points for rule in load_preset("smoke").rules}
    expected = (sum(points.values()) - points["min_val_accuracy"]) / sum(points.values()) * 100
    assert verdict.score == pytest.approx(expected)


def test_only_epochs_within_the_limit_count_for_the_target():
    history = epochs(*([TARGET - 0.3] * WITHIN), TARGET + 0.2)

    rules = by_id(verdict_of(history))

    assert rules["min_val_accuracy"]["passed"] is False
    assert rules["max_epochs"]["passed"] is False  # and training ran one epoch too many


@pytest.mark.parametrize(
    ("policy", "penalty", "late", "factor"),
    [("penalty", 0.25, True, 0.75), ("penalty", 0.25, False, 1.0), ("accept", 0.25, True, 1.0)],
)
def test_the_late_policy_scales_the_score(policy, penalty, late, factor):
    plan = dataclasses.replace(SMOKE, late_policy=policy, late_penalty=penalty)

    verdict = verdict_of(epochs(TARGET + 0.1), plan, is_late=late)

    assert verdict.score == pytest.approx(100.0 * factor)
    assert late_adjusted_score(None, plan=plan, is_late=late) is None


def test_custom_training_is_decided_by_the_measured_validation_accuracy_not_the_epochs():
    forged = epochs(*([0.99] * WITHIN))

    verdict = compute_verdict(
        plan=dataclasses.replace(SMOKE, allow_custom_training=True),
        model_config=CONFIG,
        epochs=forged,
        test_accuracy=0.3,
        is_late=False,
        training_config={"epochs": WITHIN},
        custom_training=True,
        measured_val_accuracy=TARGET - 0.3,
    )

    rules = by_id(verdict)
    assert rules["min_val_accuracy"]["passed"] is False
    assert rules["min_val_accuracy"]["measured"] == pytest.approx(TARGET - 0.3)
    message = rules["min_val_accuracy"]["message"]
    assert "measured by the grader on the held-out validation split after training" in message
    assert rules["max_epochs"]["passed"] is True
    assert "declared" in rules["max_epochs"]["message"]
    assert verdict.passed is False and verdict.score < 100


def test_the_trusted_trainers_epochs_keep_deciding_with_a_measurement_present():
    verdict = compute_verdict(
        plan=SMOKE,
        model_config=CONFIG,
        epochs=epochs(TARGET + 0.05),
        test_accuracy=0.9,
        is_late=False,
        training_config={"epochs": 1},
        measured_val_accuracy=TARGET - 0.3,
    )

    assert by_id(verdict)["min_val_accuracy"]["passed"] is True
    assert by_id(verdict)["min_val_accuracy"]["measured"] == pytest.approx(TARGET + 0.05)


def test_a_model_whose_receptive_field_is_refused_still_gets_a_verdict():
    # The receptive field of the last map cannot be computed (bicubic up-sampling before it):
    # the receptive-field rule fails with the reason; the other rules are still decided.
    config = json.loads(json.dumps(CONFIG))
    layers = config["config"]["layers"]
    at = next(i for i, layer in enumerate(layers) if layer["class_name"] == "MaxPooling2D")
    layers.insert(at + 1, {"module": "keras.layers", "class_name": "UpSampling2D", "config": {
        "name": "up", "size": [2, 2], "interpolation": "bicubic"}})  # fmt: skip
    for layer in layers[at + 2 :]:
        layer.pop("build_config", None)  # built for the shapes before the inserted layer
    verdict = compute_verdict(
        plan=SMOKE, model_config=config, epochs=epochs(TARGET + 0.05), test_accuracy=0.9,
        is_late=False, training_config={"epochs": 1},
    )  # fmt: skip
    rules = by_id(verdict)
    assert rules["min_receptive_field"]["passed"] is False
    assert (
        "Layer `up` (UpSampling2D) has interpolation='bicubic'"
        in (rules["min_receptive_field"]["message"])
    )
    assert rules["min_val_accuracy"]["passed"] is True
    assert verdict.passed is False
