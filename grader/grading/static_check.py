"""Check: the static report (parameters, receptive field, rules) and the training config.

Pure Python on the host (`grader.report`, `grader.training.config`): nothing here imports
TensorFlow or runs student code. Before any rule, the model must fit the assignment's dataset
(its image shape and number of classes, from `grader.datasets`' registry: no data is needed)
and its names must be ones TensorFlow accepts; otherwise the grading ends as
`invalid_submission`, without a score. A failed static rule ends the grading here when the
assignment says so, so an invalid model never uses GPU time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from grader.errors import GraderError, RuleSetError, TrainingConfigError
from grader.grading.outcomes import InfrastructureError, StageFailed
from grader.grading.plan import GradingPlan
from grader.grading.scoring import failure_message, late_adjusted_score, rule_score


@dataclass(frozen=True)
class CheckOutput:
    """The static verdict.

    Attributes:
        checks: The `check_model` object (model, params, receptive field, layers, rules).
        rules: The static rule results (`RuleResult.to_dict()`), training rules still pending.
        training_config: The validated training config (None in evaluate mode).
        failed: The rules that failed statically.
        stop: Whether grading ends here (a rule failed and the assignment stops on it).
        score: The score the static results earn (late penalty applied); the grading keeps it
            only when it ends here (`recorded_score`).
    """

    checks: dict[str, Any]
    rules: list[dict[str, Any]]
    training_config: dict[str, Any] | None
    failed: list[dict[str, Any]]
    stop: bool
    score: float | None

    @property
    def recorded_score(self) -> float | None:
        """The score a grading that got this far records: the static one if it stops here.

        A grading that goes on records no score until finalize decides the training rules; if
        a later stage fails (build error, crash, timeout, infrastructure) it keeps none. The
        site (`complete_check`) and the local grader (`grade`, `grade_batch`) both follow this.
        """
        return self.score if self.stop else None

    @property
    def message(self) -> str:
        """A sentence per failed rule, for the submission's status line."""
        return failure_message(self.failed)


def load_plan_ruleset(plan: GradingPlan) -> Any:
    """The plan's rule set. An invalid one is the instructor's problem, not the student's.

    Raises:
        InfrastructureError: (not retried) the assignment's rule set is invalid.
    """
    from grader.rules import load_ruleset

    try:
        return load_ruleset(plan.rules_yaml)
    except RuleSetError as exc:
        raise InfrastructureError(
            f"The rule set of assignment `{plan.slug}` is invalid: {exc.message}", retry=False
        ) from exc


def validated_training_config(
    declared: dict[str, Any] | None, plan: GradingPlan
) -> dict[str, Any] | None:
    """The student's declared training config checked against the assignment's policy.

    Raises:
        StageFailed: `invalid_submission` naming the rejected key and value.
    """
    if not plan.trains:
        return None
    from grader.training.config import validate_training_config

    policy = plan.training_policy()
    try:
        validate_training_config(None, policy)
    except TrainingConfigError as exc:
        # The assignment's own defaults are wrong: the instructor's problem, not the student's.
        raise InfrastructureError(
            f"The default training config of assignment `{plan.slug}` is invalid: {exc.message}",
            retry=False,
        ) from exc
    try:
        config = validate_training_config(declared, policy)
    except TrainingConfigError as exc:
        raise StageFailed("invalid_submission", exc.message) from exc
    return config.to_dict()


def plan_dataset(plan: GradingPlan) -> Any:
    """The registered dataset of the plan: its image shape and classes, no data needed.

    Raises:
        InfrastructureError: (not retried) the assignment names a dataset the grader does not
            know: the instructor's problem, not the student's.
    """
    from grader.datasets import get_source
    from grader.errors import DatasetUnavailable

    try:
        return get_source(plan.dataset)
    except DatasetUnavailable as exc:
        raise InfrastructureError(
            f"Assignment `{plan.slug}` names an unknown dataset: {exc.message}", retry=False
        ) from exc


def run_check(
    *,
    model_config: dict[str, Any],
    declared_training: dict[str, Any] | None,
    plan: GradingPlan,
    is_late: bool = False,
) -> CheckOutput:
    """Analyse the model against the plan's rules and validate its training config.

    Raises:
        StageFailed: The model cannot be analysed (`invalid_submission`: unsupported or unsafe
            layer, malformed graph, a name TensorFlow refuses), does not fit the dataset
            (`invalid_submission`: input shape or number of classes) or its training config is
            not allowed.
        InfrastructureError: The assignment's rule set or dataset is invalid (not retried).
    """
    from grader.report import check_model

    ruleset = load_plan_ruleset(plan)
    dataset = plan_dataset(plan)
    training_config = validated_training_config(declared_training, plan)
    try:
        checks = check_model(
            model_config,
            ruleset,
            training_config=training_config,
            dataset=dataset,
            trains=plan.trains,
        )
    except RuleSetError as exc:
        raise InfrastructureError(
            f"The rule set of assignment `{plan.slug}` is invalid: {exc.message}", retry=False
        ) from exc
    except GraderError as exc:
        raise StageFailed("invalid_submission", exc.message) from exc
    rules = list(checks.get("rules", []))
    failed = [r for r in rules if r.get("passed") is False]
    return CheckOutput(
        checks=checks,
        rules=rules,
        training_config=training_config,
        failed=failed,
        stop=bool(failed) and plan.stop_on_static_failure,
        score=late_adjusted_score(rule_score(rules), plan=plan, is_late=is_late),
    )
