"""Turning stored results into what pages show: layer tables, rule descriptions, charts.

Kept out of the views so the page and its live fragment render the same thing.
"""

from __future__ import annotations

from typing import Any

from assignments import charts
from assignments.models import Assignment, Submission
from assignments.selectors import epochs_of, queue_position


def _rf_rows(checks: dict) -> list[dict]:
    rf = checks.get("receptive_field") or {}
    return list(rf.get("layers") or [])


def _params_total(params: Any) -> Any:
    if isinstance(params, dict):
        return params.get("total")
    return params


def layer_rows(checks: dict | None) -> list[dict[str, Any]]:
    """One row per layer: name, class, output shape, parameters, receptive field and jump.

    Joins the per-layer table and the receptive-field rows of the `check_model` object by
    layer name (the RF report lists only the layers on the path to its end-point).
    """
    if not checks:
        return []
    rf_by_name = {row.get("name"): row for row in _rf_rows(checks)}
    rows = []
    for layer in checks.get("layers") or []:
        rf = rf_by_name.get(layer.get("name"), {})
        rows.append(
            {
                "name": layer.get("name"),
                "class_name": layer.get("class_name"),
                "output_shape": layer.get("output_shape"),
                "params": _params_total(layer.get("params")),
                "rf_size": rf.get("size"),
                "rf_jump": rf.get("jump"),
            }
        )
    return rows


def image_size(assignment: Assignment, checks: dict | None) -> int | None:
    """The larger side of the input image, from the model's input shape or the dataset."""
    shape = (checks or {}).get("input_shape")
    if isinstance(shape, list) and len(shape) >= 2 and all(isinstance(v, int) for v in shape[:2]):
        return max(shape[0], shape[1])
    try:
        from grader.datasets import get_source

        height, width, _ = get_source(assignment.dataset).input_shape
    except Exception:  # an unknown dataset draws no reference line, it does not break the page
        return None
    return max(height, width)


def rf_chart(assignment: Assignment, checks: dict | None):
    """The receptive-field growth chart, or None without an RF report."""
    rows = _rf_rows(checks or {})
    if not rows:
        return None
    return charts.rf_growth_chart(rows, image_size(assignment, checks))


STAGES = (
    ("queued", "queued_at"),
    ("building", "building_at"),
    ("checking", "checking_at"),
    ("training", "training_at"),
    ("evaluating", "evaluating_at"),
    ("finished", "finished_at"),
)


def stage_rows(submission: Submission) -> list[dict[str, Any]]:
    """Each pipeline stage with its start time, and whether it is done, current or to come."""
    order = [name for name, _ in STAGES]
    current = submission.status if submission.status in order else None
    rows = []
    for name, attr in STAGES:
        at = getattr(submission, attr)
        if name == current and name != "finished":
            state = "current"
        elif at is not None:
            state = "done"
        else:
            state = "todo"
        rows.append({"name": name, "label": name.capitalize(), "at": at, "state": state})
    return rows


def submission_context(submission: Submission) -> dict[str, Any]:
    """Everything the submission page and its live fragment show."""
    result = getattr(submission, "result", None)
    checks = result.checks if result else None
    epochs = epochs_of(submission)
    loss_chart, accuracy_chart = charts.epoch_charts(epochs) if epochs else (None, None)
    return {
        "submission": submission,
        "assignment": submission.assignment,
        "result": result,
        "stages": stage_rows(submission),
        "queue_position": queue_position(submission),
        "epochs": epochs,
        "loss_chart": loss_chart,
        "accuracy_chart": accuracy_chart,
        "layers": layer_rows(checks),
        "rf_chart": rf_chart(submission.assignment, checks),
        "rf_summary": (checks or {}).get("receptive_field"),
        "rules": (result.rules or (checks or {}).get("rules") or []) if result else [],
        "log_tail": log_tail(submission.log),
        "is_active": submission.is_active,
    }


LOG_DISPLAY_CHARS = 20_000


def log_tail(log: str) -> str:
    """The end of the captured log (the end is where the error is)."""
    if len(log) <= LOG_DISPLAY_CHARS:
        return log
    return (
        f"[… {len(log) - LOG_DISPLAY_CHARS:,} earlier characters not shown …]\n"
        + log[-LOG_DISPLAY_CHARS:]
    )


def describe_rules(rules_yaml: str) -> list[dict[str, Any]]:
    """The assignment's rules in plain words ("At most 100,000 parameters").

    Uses `grader.rules.describe_ruleset` when the rule engine provides it; otherwise each
    rule's registered summary and its parameters.
    """
    try:
        from grader import rules as rules_module

        ruleset = rules_module.load_ruleset(rules_yaml)
    except Exception:  # a page must render even if the stored rule set no longer loads
        return []
    describe = getattr(rules_module, "describe_ruleset", None)
    if callable(describe):
        return [
            item if isinstance(item, dict) else {"text": str(item)} for item in describe(ruleset)
        ]
    items = []
    for spec in getattr(ruleset, "rules", []) or []:
        rule_id = getattr(spec, "id", "")
        text = getattr(spec, "description", None) or _summary(rule_id)
        params = getattr(spec, "params", None) or {}
        items.append(
            {
                "id": rule_id,
                "name": getattr(spec, "name", rule_id),
                "text": text,
                "params": params,
                "points": getattr(spec, "points", None),
            }
        )
    return items


def _summary(rule_id: str) -> str:
    try:
        from grader.rules.registry import get_rule

        return get_rule(rule_id).summary
    except KeyError:
        return rule_id
