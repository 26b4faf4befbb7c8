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

from workers.pipeline.plan import GradingPlan


@dataclass(frozen=True)
class Verdict:
    """The final rule results, whether the submission passed, and its score (0-100)."""

    rules: list[dict[str, Any]]
    passed: bool | None
    score: float | None


def rule_score(rules: Sequence[Mapping[str, Any]]) -> float:
    """Points earned over points available, in percent (`grader.rules.score`)."""
    from grader.rules import RuleResult, score

    return float(score(RuleResult.from_dict(r) for r in rules))


def late_adjusted_score(score: float | None, *, plan: GradingPlan, is_late: bool) -> float | None:
    """The score after the assignment's late policy (`penalty` removes a fraction of it)."""
    if score is None or not is_late or plan.late_policy != "penalty":
        return score
    return score * (1.0 - plan.late_penalty)


def overall_passed(rules: Sequence[Mapping[str, Any]]) -> bool | None:
    """False if any rule failed, None if some rule is undecided, else True."""
    verdicts = [r.get("passed") for r in rules]
    if any(v is False for v in verdicts):
        return False
    if any(v is None for v in verdicts):
        return None
    return True


def failure_message(failed: Sequence[Mapping[str, Any]]) -> str:
    """A sentence per failed rule, Keras-style: `2 rules failed: <message> <message>`."""
    if not failed:
        return ""
    count = len(failed)
    head = f"{count} rule{'s' if count != 1 else ''} failed: "
    return head + " ".join(str(r.get("message", r.get("id"))) for r in failed)


def final_failure(rules: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """`(reason, message)` of a finalized grading: `("", "")` when every rule passed.

    A failed rule ends the grading `failed/rules` whichever stage decided it (a static rule when
    the assignment does not stop on it, or a rule decided after training), with the same
    message the check stage gives a static failure; a rule left undecided fails it too. The
    site (`execute_finalize`) and the local grader (`grade_file`) both use this.
    """
    failed = [r for r in rules if r.get("passed") is False]
    if failed:
        return "rules", failure_message(failed)
    undecided = [str(r.get("id")) for r in rules if r.get("passed") is None]
    if undecided:
        return "rules", f"Rules {', '.join(undecided)} could not be decided."
    return "", ""


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
) -> Verdict:
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
    from grader.receptive_field import compute_receptive_field
    from grader.rules import TrainingOutcome, evaluate_rules
    from workers.pipeline.check import load_plan_ruleset

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
    return Verdict(
        rules=results,
        passed=overall_passed(results),
        score=late_adjusted_score(rule_score(results), plan=plan, is_late=is_late),
    )
