"""The check stage with `all_layers_trainable` in force: a frozen model never trains.

Host side only (`run_check`, no sandbox): the same path `grade` and the site's workers take.
"""

from __future__ import annotations

import dataclasses

from grader.grading.plan import GradingPlan
from grader.grading.static_check import run_check
from tests.grader.rules.test_rules_trainability import _smoke


def test_the_check_stage_stops_a_frozen_model_before_training() -> None:
    plan = GradingPlan.from_preset("smoke")
    output = run_check(model_config=_smoke("dense"), declared_training=None, plan=plan)
    assert output.stop
    assert [r["id"] for r in output.failed] == ["all_layers_trainable"]
    assert output.message == (
        "1 rule failed: 1 layer is frozen (trainable=False): `dense`. Expected every layer to "
        "train."
    )
    # Worth no points: the static score is the clean model's (training rules still undecided).
    clean = run_check(model_config=_smoke(), declared_training=None, plan=plan)
    assert output.score == clean.score


def test_an_evaluate_only_assignment_checks_no_frozen_layers() -> None:
    plan = dataclasses.replace(GradingPlan.from_preset("smoke"), mode="evaluate")
    output = run_check(model_config=_smoke("dense"), declared_training=None, plan=plan)
    assert "all_layers_trainable" not in [r["id"] for r in output.rules]


def test_a_clean_model_shows_the_rule_passing_in_the_check_stage() -> None:
    output = run_check(
        model_config=_smoke(), declared_training=None, plan=GradingPlan.from_preset("smoke")
    )
    rule = {r["id"]: r for r in output.rules}["all_layers_trainable"]
    assert (rule["passed"], rule["message"], rule["points"]) == (
        True,
        "Every layer with weights trains.",
        0.0,
    )
    assert not output.stop
