"""The registry of rule definitions: id -> parameters, phase and evaluation function.

A family module (`grader.rules.convolutions`, ...) declares its rules with the `rule` decorator;
`grader.rules` imports every family, so the registry is complete once the package is imported.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from .params import Param

if TYPE_CHECKING:
    from .context import RuleContext
    from .spec import RuleSpec

Phase = Literal["static", "training"]


@dataclass(frozen=True)
class Verdict:
    """What a rule function decides; the engine adds id, name and points to make a `RuleResult`.

    ``limit`` defaults to the rule's ``limit`` parameter when the function leaves it unset.
    """

    passed: bool | None
    measured: Any
    message: str
    hint: str | None = None
    limit: Any = None


RuleFunction = Callable[["RuleSpec", "RuleContext"], Verdict]


@dataclass(frozen=True)
class RuleDefinition:
    """One kind of rule.

    Attributes:
        id: the id used in rule sets.
        summary: one line for documentation and the rule-set editor.
        params: the rule's own parameters (``name`` and ``points`` are common to all rules).
        phase: ``"static"`` rules are decided from the architecture alone; ``"training"`` rules
            stay undecided (``passed=None``) until a `TrainingOutcome` is given.
        evaluate: the function deciding the rule.
    """

    id: str
    summary: str
    params: Mapping[str, Param]
    phase: Phase
    evaluate: RuleFunction


RULES: dict[str, RuleDefinition] = {}


def rule(
    rule_id: str, *, summary: str, params: Mapping[str, Param], phase: Phase = "static"
) -> Callable[[RuleFunction], RuleFunction]:
    """Register the decorated function as the evaluation of rule `rule_id`."""

    def register(func: RuleFunction) -> RuleFunction:
        if rule_id in RULES:
            raise RuntimeError(f"Rule `{rule_id}` is registered twice.")
        RULES[rule_id] = RuleDefinition(rule_id, summary, dict(params), phase, func)
        return func

    return register


def get_rule(rule_id: str) -> RuleDefinition:
    """The definition of `rule_id`; KeyError when unknown (the schema reports it properly)."""
    return RULES[rule_id]
