"""Declarative rules: rule sets in YAML or JSON, validated on load, evaluated on a model.

    ruleset = load_ruleset(yaml_text)            # or load_preset("cifar10-separable")
    results = evaluate_rules(ruleset, analysis, rf_report)
    score(results)                               # 0..100

Each rule family lives in its own module and registers its rules in `registry.RULES`; importing
this package imports them all.
"""

from __future__ import annotations

from typing import Any

from . import (  # noqa: F401 - importing a family registers its rules
    capacity,
    convolutions,
    field_size,
    layers,
    regularization,
    trainability,
    training,
)
from .engine import evaluate_rules, overall_passed
from .registry import RULES, RuleDefinition, Verdict, get_rule
from .results import RuleResult, TrainingOutcome, score
from .schema import InvalidRule, RuleSet, RuleSpec, load_ruleset, parse_text
from .trainability import implied_rules, trains_from_scratch


def load_preset(slug: str) -> RuleSet:
    """The shipped preset `slug` (see `grader.presets`)."""
    from grader.presets import load_preset as _load_preset

    return _load_preset(slug)


def describe_rules() -> list[dict[str, Any]]:
    """Every known rule with its parameters, for documentation and rule-set editors."""
    out = []
    for definition in RULES.values():
        out.append(
            {
                "id": definition.id,
                "summary": definition.summary,
                "phase": definition.phase,
                "params": {
                    name: {
                        "expected": param.expected,
                        "required": param.required,
                        "default": None if param.required else param.default,
                        "doc": param.doc,
                    }
                    for name, param in definition.params.items()
                },
            }
        )
    return out


__all__ = [
    "RULES",
    "InvalidRule",
    "RuleDefinition",
    "RuleResult",
    "RuleSet",
    "RuleSpec",
    "TrainingOutcome",
    "Verdict",
    "describe_rules",
    "evaluate_rules",
    "get_rule",
    "implied_rules",
    "load_preset",
    "load_ruleset",
    "overall_passed",
    "parse_text",
    "score",
    "trains_from_scratch",
]
