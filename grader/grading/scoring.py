"""Scoring of rule results (dicts as stored): score, late policy, overall verdict, failure message.

Shared by the check stage (a static failure) and finalize (the final verdict), so neither
imports the other for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from grader.grading.plan import GradingPlan


def rule_score(rules: Sequence[Mapping[str, Any]]) -> float:
    """Points earned over points available, in percent (`grader.rules.score`)."""
    from grader.rules import RuleResult, score

    return float(score(RuleResult.from_dict(r) for r in rules))


def late_adjusted_score(score: float | None, *, plan: GradingPlan, is_late: bool) -> float | None:
    """The score after the assignment's late policy (`penalty` removes a fraction of it)."""
    if score is None or not is_late or plan.late_policy != "penalty":
        return score
    return score * (1.0 - plan.late_penalty)


def stored_rules_passed(rules: Sequence[Mapping[str, Any]]) -> bool | None:
    """False if any rule failed, None if some rule is undecided, else True.

    For rule results as stored (`RuleResult.to_dict()`); `grader.rules.overall_passed` decides
    the same from `RuleResult` objects.
    """
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
