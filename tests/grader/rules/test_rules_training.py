"""Training-decided rules, training outcomes, the overall verdict and the score."""

from __future__ import annotations

import pytest

from grader.analysis import analyze
from grader.loading import load_model_config
from grader.rules import (
    RuleResult,
    TrainingOutcome,
    evaluate_rules,
    load_preset,
    load_ruleset,
    overall_passed,
    score,
)
from tests.support.fixture_models import model_path


@pytest.fixture(scope="module")
def analysis():
    return analyze(load_model_config(model_path("smoke_separable")))


def _one(analysis, rule, **kwargs):
    [result] = evaluate_rules(load_ruleset({"rules": [rule]}), analysis, **kwargs)
    return result


def test_training_rules_are_pending_before_training(analysis):
    for rule in (
        {"id": "max_epochs", "limit": 5},
        {"id": "min_val_accuracy", "limit": 0.6},
        {"id": "min_test_accuracy", "limit": 0.6},
    ):
        result = _one(analysis, rule)
        assert result.passed is None
        assert result.measured is None
        assert result.message.startswith("Decided after")


def test_max_epochs_fails_statically_when_declared_config_asks_for_more(analysis):
    result = _one(analysis, {"id": "max_epochs", "limit": 5}, training_config={"epochs": 8})
    assert (result.passed, result.measured, result.limit) == (False, 8, 5)
    assert result.message == "The training config asks for 8 epochs. Expected at most 5."


def test_max_epochs_uses_the_rule_sets_default_training_when_none_declared(analysis):
    ruleset = load_preset("smoke")
    results = {r.id: r for r in evaluate_rules(ruleset, analysis)}
    assert results["max_epochs"].passed is None  # the preset trains 5 epochs: within its limit


@pytest.mark.parametrize(("run", "passed"), [(4, True), (5, True), (6, False)])
def test_max_epochs_after_training(analysis, run, passed):
    outcome = TrainingOutcome(epochs_run=run, val_accuracy=[0.5] * run)
    result = _one(analysis, {"id": "max_epochs", "limit": 5}, outcome=outcome)
    assert (result.passed, result.measured) == (passed, run)


def test_min_val_accuracy_counts_only_epochs_within_the_window(analysis):
    # Best within 3 epochs is 0.55; the 0.9 of epoch 5 is too late.
    outcome = TrainingOutcome.from_epochs(
        [
            {"epoch": 5, "val_accuracy": 0.9},
            {"epoch": 1, "val_accuracy": 0.3},
            {"epoch": 2, "val_accuracy": 0.55},
            {"epoch": 3, "val_accuracy": 0.5},
            {"epoch": 4, "val_accuracy": 0.7},
        ]
    )
    assert outcome.epochs_run == 5
    assert outcome.best_val_accuracy == 0.9
    rule = {"id": "min_val_accuracy", "limit": 0.6, "within_epochs": 3}
    result = _one(analysis, rule, outcome=outcome)
    assert (result.passed, result.measured) == (False, 0.55)
    assert result.message == (
        "The best validation accuracy within 3 epochs is 55.00%. Expected at least 60.00%."
    )
    result = _one(analysis, {"id": "min_val_accuracy", "limit": 0.6}, outcome=outcome)
    assert (result.passed, result.measured) == (True, 0.9)


def test_min_val_accuracy_without_history_trusts_best_only_within_the_window(analysis):
    rule = {"id": "min_val_accuracy", "limit": 0.6, "within_epochs": 3}
    short = TrainingOutcome(epochs_run=3, best_val_accuracy=0.7)
    assert _one(analysis, rule, outcome=short).passed is True
    # Ten epochs and only the overall best known: it may come from epoch 10, so it cannot count.
    long = TrainingOutcome(epochs_run=10, best_val_accuracy=0.7)
    result = _one(analysis, rule, outcome=long)
    assert result.passed is False
    assert "no validation accuracy within 3 epochs" in result.message


def test_min_test_accuracy_after_evaluation(analysis):
    outcome = TrainingOutcome(epochs_run=0, test_accuracy=0.75)
    assert _one(analysis, {"id": "min_test_accuracy", "limit": 0.7}, outcome=outcome).passed
    failed = _one(analysis, {"id": "min_test_accuracy", "limit": 0.8}, outcome=outcome)
    assert failed.message == "The test accuracy is 75.00%. Expected at least 80.00%."


# --- Custom training: the submission's own loop reported the epochs --------------------------

FORGED = [{"epoch": e, "val_accuracy": 0.99} for e in (1, 2, 3)]
VAL_RULE = {"id": "min_val_accuracy", "limit": 0.6, "within_epochs": 5}


def _custom(measured, epochs=FORGED):
    return TrainingOutcome.from_epochs(epochs, custom_training=True, measured_val_accuracy=measured)


def test_custom_training_is_judged_on_the_graders_measurement_not_on_reported_epochs(analysis):
    result = _one(analysis, VAL_RULE, outcome=_custom(0.25), training_config={"epochs": 3})

    assert (result.passed, result.measured) == (False, 0.25)
    assert result.message == (
        "The validation accuracy measured by the grader on the held-out validation split after "
        "training is 25.00%. Expected at least 60.00%."
    )
    assert "reported a best validation accuracy of 99.00%" in result.hint


def test_custom_training_passes_on_a_measurement_without_any_reported_epoch(analysis):
    outcome = _custom(0.75, epochs=[])

    result = _one(analysis, VAL_RULE, outcome=outcome, training_config={"epochs": 3})

    assert (result.passed, result.measured) == (True, 0.75)
    assert "measured by the grader on the held-out validation split after training" in (
        result.message
    )


def test_custom_training_declaring_more_epochs_than_the_window_cannot_pass(analysis):
    # The grader measures the model after all declared epochs: past the window, it cannot tell.
    rule = {**VAL_RULE, "within_epochs": 3}

    result = _one(analysis, rule, outcome=_custom(0.9), training_config={"epochs": 4})

    assert (result.passed, result.measured) == (False, 0.9)
    assert result.message == (
        "Custom training declared 4 epochs; only the first 3 count, and the grader can measure "
        "the model only after all of them. Expected `epochs` at most 3."
    )


def test_custom_training_without_a_measurement_stays_undecided(analysis):
    result = _one(analysis, VAL_RULE, outcome=_custom(None), training_config={"epochs": 3})

    assert (result.passed, result.measured) == (None, None)
    assert "could not be measured by the grader" in result.message


def test_the_trusted_trainers_epochs_still_decide_when_a_measurement_exists(analysis):
    outcome = TrainingOutcome.from_epochs(
        [{"epoch": 1, "val_accuracy": 0.7}], measured_val_accuracy=0.1
    )

    result = _one(analysis, VAL_RULE, outcome=outcome)

    assert (result.passed, result.measured) == (True, 0.7)


@pytest.mark.parametrize(
    ("declared", "reported", "passed", "measured"),
    [(3, 0, True, 3), (5, 3, True, 5), (3, 6, False, 6)],
)
def test_max_epochs_with_custom_training_checks_the_declared_epochs(
    analysis, declared, reported, passed, measured
):
    outcome = _custom(0.5, epochs=[{"epoch": e} for e in range(1, reported + 1)])

    result = _one(
        analysis,
        {"id": "max_epochs", "limit": 5},
        outcome=outcome,
        training_config={"epochs": declared},
    )

    assert (result.passed, result.measured) == (passed, measured)
    if passed:
        assert result.message.startswith(f"Custom training declared {declared} epochs")
        assert "cannot count the epochs of a custom loop" in result.message
    else:
        assert result.message == "Custom training reported 6 epochs. Expected at most 5."


def _result(passed, points=1.0):
    return RuleResult(id="x", passed=passed, measured=None, limit=None, message="", points=points)


@pytest.mark.parametrize(
    ("verdicts", "expected"),
    [
        ([True, True], True),
        ([True, None], None),
        ([None, False], False),
        ([], True),
    ],
)
def test_overall_passed(verdicts, expected):
    assert overall_passed([_result(v) for v in verdicts]) is expected


def test_score_is_points_earned_over_points_available():
    results = [_result(True, 2), _result(False, 1), _result(None, 3), _result(True, 0)]
    assert score(results) == pytest.approx(2 / 6 * 100)
    assert score([_result(True, 0)]) == 100.0
    assert score([]) == 100.0


def test_rule_result_round_trips_through_dict():
    result = RuleResult(
        id="max_params",
        passed=False,
        measured=123456,
        limit=100000,
        message="m",
        hint="h",
        points=2.0,
        name="size",
    )
    assert RuleResult.from_dict(result.to_dict()) == result
    assert RuleResult(id="a", passed=True, measured=1, limit=1, message="").name == "a"


def test_score_of_preset_with_reference_model_before_and_after_training(analysis):
    ruleset = load_preset("smoke")
    before = evaluate_rules(ruleset, analysis)
    static_points = sum(s.points for s in ruleset.rules if s.phase == "static")
    assert score(before) == pytest.approx(static_points / ruleset.total_points * 100)
    outcome = TrainingOutcome.from_epochs(
        [{"epoch": i, "val_accuracy": 0.5 + 0.05 * i} for i in range(1, 6)]
    )
    after = evaluate_rules(ruleset, analysis, outcome=outcome)
    assert overall_passed(after) is True
    assert score(after) == 100.0
