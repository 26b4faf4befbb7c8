"""Evaluating a rule set on one model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .context import RuleContext
from .registry import RULES
from .results import RuleResult, TrainingOutcome
from .schema import RuleSet, load_ruleset
from .trainability import implied_rules


def evaluate_rules(
    ruleset: RuleSet | str | Mapping[str, Any],
    analysis: Any,
    rf_report: Any = None,
    outcome: TrainingOutcome | None = None,
    *,
    training_config: Mapping[str, Any] | None = None,
    trains: bool = False,
) -> list[RuleResult]:
    """Decide every rule of a rule set on one model.

    Args:
        ruleset: a `RuleSet` (or rule-set text or mapping, validated here).
        analysis: the model's `grader.analysis.ModelAnalysis`.
        rf_report: the receptive-field report at the default end point, if already computed;
            rules needing another end point compute their own.
        outcome: training results; without them training rules stay undecided (None).
        training_config: the training configuration the student declared; the rule set's
            default ``training`` is used when None.
        trains: whether the grader trains this model from scratch (the assignment's mode is
            ``train``): the rules in force without being listed (`implied_rules`) apply too.
            False: only the rule set's own rules.

    Returns:
        One `RuleResult` per rule, in rule-set order, then one per implied rule.
    """
    ruleset = load_ruleset(ruleset)
    if training_config is None:
        training_config = ruleset.metadata.get("training")
    ctx = RuleContext(
        analysis=analysis,
        rf_report=rf_report,
        outcome=outcome,
        training_config=training_config,
        forbidden_classes=frozenset(
            name
            for spec in ruleset.rules
            if spec.id == "forbidden_layers"
            for name in spec.params["layers"]
        ),
    )
    results = []
    for spec in (*ruleset.rules, *implied_rules(ruleset, trains=trains)):
        verdict = RULES[spec.id].evaluate(spec, ctx)
        limit = verdict.limit if verdict.limit is not None else spec.params.get("limit")
        results.append(
            RuleResult(
                id=spec.id,
                name=spec.name,
                passed=verdict.passed,
                measured=verdict.measured,
                limit=limit,
                message=verdict.message,
                hint=verdict.hint or None,
                points=spec.points,
            )
        )
    return results


def overall_passed(results: list[RuleResult]) -> bool | None:
    """False if any rule failed; None if none failed but some are undecided; True otherwise."""
    if any(r.passed is False for r in results):
        return False
    if any(r.passed is None for r in results):
        return None
    return True
