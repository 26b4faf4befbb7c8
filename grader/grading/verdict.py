"""Finalize: decide the rules that need results, compute the score, apply the late policy.

Training-decided rules (`min_val_accuracy` from the epochs, `max_epochs`) are evaluated with a
`grader.rules.TrainingOutcome` built from the recorded epochs and the test accuracy; the static
rules are evaluated again on the same config, so the stored result is one consistent set.

With custom training the recorded epochs came from student code: the outcome is marked
`custom_training` and carries the validation accuracy the evaluate stage measured on the
held-out validation split, which then decides `min_val_accuracy` (and `max_epochs` checks the
declared epochs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from grader.grading.plan import GradingPlan
from grader.grading.scoring import final_failure as final_failure  # re-exported
from grader.grading.scoring import late_adjusted_score, rule_score, stored_rules_passed


@dataclass(frozen=True)
class FinalVerdict:
    """The final rule results, whether the submission passed, and its score (0-100).

    (A rule function's own decision is `grader.rules.Verdict`.)
    """

    rules: list[dict[str, Any]]
    passed: bool | None
    score: float | None


def compute_verdict(
    *,
    plan: GradingPlan,
    model_config: dict[str, Any],
    epochs: Sequence[Mapping[str, Any]],
    test_accuracy: float | None,
    is_late: bool,
    training_config: Mapping[str, Any] | None = None,
    custom_training: bool = False,
    measured_val_accuracy: float | None = None,
) -> FinalVerdict:
    """Evaluate every rule with the training outcome and score the submission.

    Args:
        plan: The assignment's plan (rules, late policy).
        model_config: The built model config.
        epochs: The recorded epochs (`{"epoch", "val_accuracy", ...}`), in any order.
        test_accuracy: The evaluation's accuracy on the test split, if evaluated.
        is_late: Whether the submission came after the deadline.
        training_config: The validated training config used (for `max_epochs`).
        custom_training: The submission's own code ran the training: its epochs are claims.
        measured_val_accuracy: The trained weights' accuracy on the held-out validation split,
            measured by the evaluate stage (decides `min_val_accuracy` with custom training).
    """
    from grader.analysis import analyze
    from grader.errors import ReceptiveFieldError
    from grader.grading.static_check import load_plan_ruleset
    from grader.receptive_field import compute_receptive_field
    from grader.rules import TrainingOutcome, evaluate_rules

    ruleset = load_plan_ruleset(plan)
    analysis = analyze(model_config)
    try:
        rf_report = compute_receptive_field(analysis.graph)
    except ReceptiveFieldError:
        rf_report = None  # the receptive-field rule fails with the reason; other rules stand
    outcome = (
        TrainingOutcome.from_epochs(
            list(epochs),
            test_accuracy=test_accuracy,
            custom_training=custom_training,
            measured_val_accuracy=measured_val_accuracy,
        )
        if plan.trains
        else TrainingOutcome(epochs_run=0, test_accuracy=test_accuracy)
    )
    results = [
        r.to_dict()
        for r in evaluate_rules(
            ruleset,
            analysis,
            rf_report,
            outcome,
            training_config=training_config,
            trains=plan.trains,
        )
    ]
    return FinalVerdict(
        rules=results,
        passed=stored_rules_passed(results),
        score=late_adjusted_score(rule_score(results), plan=plan, is_late=is_late),
    )
