"""What an assignment's settings may hold: the one judge for every way of writing them.

The assignment form, the YAML import, the admin and `create_assignment`/`update_assignment` all
ask `assignment_problems` (or `validate_assignment_settings`, which raises). A value refused here
is one the grading pipeline would refuse later, for every submission, as an infrastructure error
(a sandbox limit of 0, an epoch limit the trainer does not take, default training settings the
trainer refuses), or one it would silently ignore (a rule set describing another dataset's
images): the instructor hears about it when saving, not from students.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from django.conf import settings

from grader.errors import GraderError

# The largest value of the integer columns (PostgreSQL's `integer`; SQLite is held to the same).
_COLUMN_MAX = 2_147_483_647

# Docker refuses to start a container with less memory ("Minimum memory limit allowed is 6MB"):
# below this, every sandbox would fail to start.
MIN_MEMORY_LIMIT_MB = 6

LABELS = {
    "time_limit_seconds": "Time limit",
    "memory_limit_mb": "Memory limit",
    "max_epochs": "Epochs at most",
    "daily_quota": "Submissions per student per day",
    "max_waiting_per_student": "Unfinished submissions per student at once",
    "max_waiting_per_staff": "Unfinished test submissions per staff member at once",
    "late_penalty": "Late penalty",
}


class AssignmentInvalid(GraderError):
    """An assignment's settings or its YAML file are invalid.

    Attributes:
        errors: the messages by setting (``"max_epochs"``) or rule-set key
            (``"rules.num_classes"``), for pages that show each next to its input; empty when
            the problem is not about one key.
    """

    error_code = "invalid_assignment"

    def __init__(self, message: str, *, errors: Mapping[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.errors = dict(errors or {})


def time_limit_range() -> tuple[int, int]:
    """The training time limits (seconds) the pipeline runs: at least 1 second (a sandbox with
    no time refuses to start), and, on Redis, a worker's hard time limit (the time limit plus
    twice the sandbox grace, `grading.stage_limits`) below the broker's visibility timeout: a
    longer training would be delivered to a second worker while the first still runs."""
    from assignments.services.grading import grading_setting

    visibility = (getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", None) or {}).get(
        "visibility_timeout"
    )
    if not visibility:
        return 1, _COLUMN_MAX
    grace = grading_setting("GRADER_SANDBOX_GRACE_SECONDS")
    return 1, max(1, int(visibility) - 2 * grace - 1)


def _integer_problem(name: str, value: Any, low: int, high: int, unit: str = "") -> str | None:
    label = LABELS[name]
    units = f" {unit}" if unit else ""
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{label} is {value!r}. Expected an integer from {low:,} to {high:,}{units}."
    if low <= value <= high:
        return None
    return f"{label} is {value:,}{units}. Expected an integer from {low:,} to {high:,}{units}."


def _settings_problems(values: Mapping[str, Any]) -> dict[str, str]:
    """Each setting on its own: the ranges the sandboxes, the trainer and the columns take."""
    from grader.training.config import POLICY_MAX_EPOCHS

    problems: dict[str, str | None] = {}
    if "time_limit_seconds" in values:
        low, high = time_limit_range()
        message = _integer_problem(
            "time_limit_seconds", values["time_limit_seconds"], low, high, "seconds"
        )
        seconds = values["time_limit_seconds"]
        if message and high < _COLUMN_MAX and isinstance(seconds, int) and seconds > high:
            message += (
                " Longer trainings would outlast the broker's visibility timeout "
                "(CELERY_VISIBILITY_TIMEOUT) and be handed to a second worker."
            )
        problems["time_limit_seconds"] = message
    if "memory_limit_mb" in values:
        problems["memory_limit_mb"] = _integer_problem(
            "memory_limit_mb", values["memory_limit_mb"], MIN_MEMORY_LIMIT_MB, _COLUMN_MAX, "MB"
        )
    if "max_epochs" in values:
        # The trainer's own range (`validate_training_config`'s `policy.max_epochs`).
        problems["max_epochs"] = _integer_problem(
            "max_epochs", values["max_epochs"], 1, POLICY_MAX_EPOCHS
        )
    if "daily_quota" in values:
        # 0 is allowed: it closes submissions without unpublishing the assignment.
        problems["daily_quota"] = _integer_problem(
            "daily_quota", values["daily_quota"], 0, _COLUMN_MAX
        )
    for name in ("max_waiting_per_student", "max_waiting_per_staff"):
        if name in values:
            # At least one: 0 would refuse every upload (the daily quota closes submissions).
            problems[name] = _integer_problem(name, values[name], 1, _COLUMN_MAX)
    if "late_penalty" in values:
        penalty = values["late_penalty"]
        # Also the check constraint `late_penalty_is_a_fraction`, said for people.
        if (
            isinstance(penalty, bool)
            or not isinstance(penalty, int | float)
            or not math.isfinite(penalty)
            or not 0 <= penalty <= 1
        ):
            problems["late_penalty"] = (
                f"Late penalty is {penalty!r}. Expected a fraction between 0 and 1 "
                "(the share of the score a late submission loses)."
            )
    return {name: message for name, message in problems.items() if message}


def _rules_problems(values: Mapping[str, Any], ruleset: Any) -> dict[str, str]:
    """The rule set's keys against the assignment: its dataset, and the trainer's policy."""
    from grader.datasets import DATASETS
    from grader.training.config import POLICY_MAX_EPOCHS

    problems: dict[str, str] = {}
    metadata = ruleset.metadata
    source = DATASETS.get(values.get("dataset", ""))
    if source is not None:
        # The pipeline builds and trains every model for the dataset's shape and classes, never
        # the rule set's: a rule set that says otherwise is ignored, and misleads whoever reads it.
        shape = list(source.input_shape)
        described = (
            f"dataset `{source.name}` has {'x'.join(map(str, shape))} images in "
            f"{source.num_classes} classes"
        )
        declared_dataset = metadata.get("dataset")
        if declared_dataset is not None and declared_dataset != source.name:
            problems["rules.dataset"] = (
                f"Rules `dataset` is {declared_dataset!r}. Expected {source.name!r}, the "
                "assignment's dataset. Change it, or remove `dataset` from the rules: the "
                "assignment's setting decides."
            )
        declared_shape = metadata.get("input_shape")
        if declared_shape is not None and list(declared_shape) != shape:
            problems["rules.input_shape"] = (
                f"Rules `input_shape` is {list(declared_shape)}. Expected {shape}: {described}, "
                "and models are built for that. Change it, or remove `input_shape` from the "
                "rules: the dataset decides it."
            )
        declared_classes = metadata.get("num_classes")
        if declared_classes is not None and declared_classes != source.num_classes:
            problems["rules.num_classes"] = (
                f"Rules `num_classes` is {declared_classes}. Expected {source.num_classes}: "
                f"{described}, and models are built for that. Change it, or remove "
                "`num_classes` from the rules: the dataset decides it."
            )
    problems.update(_setting_conflicts(values, metadata))
    problems.update(_evaluate_only_problems(values, ruleset))
    training = metadata.get("training")
    max_epochs = values.get("max_epochs")
    limit_ok = _integer_problem("max_epochs", max_epochs, 1, POLICY_MAX_EPOCHS) is None
    if training is not None and limit_ok:
        problems.update(
            _training_problems(
                training, values, max_epochs, int(metadata.get("min_batch_size") or 1)
            )
        )
    return problems


# Rule-set keys the assignment's own settings decide (`GradingPlan.from_assignment` reads the
# settings, never these keys): a rule set stating another value would be silently ignored.
_SETTING_KEYS = {
    "mode": "mode",
    "max_epochs": "epochs at most",
    "time_limit_seconds": "time limit (seconds)",
}
# The rule-set keys that are assignment settings (the dataset's is checked above, with its
# shape and classes): `create_assignment` fills a setting left out from them.
RULES_SETTING_KEYS = ("dataset", *_SETTING_KEYS)


def _setting_conflicts(values: Mapping[str, Any], metadata: Mapping[str, Any]) -> dict[str, str]:
    problems: dict[str, str] = {}
    for key, words in _SETTING_KEYS.items():
        declared = metadata.get(key)
        if declared is None or key not in values or declared == values[key]:
            continue
        problems[f"rules.{key}"] = (
            f"Rules `{key}` is {declared!r}. Expected {values[key]!r}, the assignment's "
            f"{words}, which the grader uses. Change it, or remove `{key}` from the rules: "
            "the assignment's setting decides."
        )
    return problems


def _evaluate_only_problems(values: Mapping[str, Any], ruleset: Any) -> dict[str, str]:
    """An evaluate-only assignment trains nothing, so a rule decided by training (the
    registry's ``phase="training"``) could never be decided: every submission would fail it."""
    from grader.rules import RULES

    mode = values.get("mode", ruleset.metadata.get("mode"))
    if mode != "evaluate":
        return {}
    problems: dict[str, str] = {}
    for spec in ruleset.rules:
        definition = RULES.get(spec.id)
        if definition is None or definition.phase != "training":
            continue
        named = f"`{spec.id}`" if spec.name == spec.id else f"`{spec.name}` ({spec.id})"
        problems[f"rules.{spec.name}"] = (
            f"Rule {named} is decided by training. Expected no training rules in an "
            "evaluate-only assignment; `mode: evaluate` grades an uploaded trained model "
            "without training it, so every submission would fail this rule. Remove the rule, "
            "or set the mode to train."
        )
    return problems


def _training_problems(
    training: Mapping[str, Any], values: Mapping[str, Any], max_epochs: int, min_batch_size: int = 1
) -> dict[str, str]:
    """The rule set's default training config, checked as the check stage checks it before
    every training (`grader.grading.static_check.validated_training_config`)."""
    from grader.errors import TrainingConfigError
    from grader.training.config import validate_training_config

    epochs = training.get("epochs")
    if isinstance(epochs, int) and not isinstance(epochs, bool) and epochs > max_epochs:
        return {
            "rules.training.epochs": (
                f"Rules `training.epochs` is {epochs:,}. Expected at most {max_epochs:,}, the "
                "assignment's `max_epochs`: every training would be refused."
            )
        }
    policy = {
        "max_epochs": max_epochs,
        "allow_custom_training": bool(values.get("allow_custom_training", False)),
        "min_batch_size": min_batch_size,
        "defaults": dict(training),
    }
    try:
        validate_training_config(None, policy)
    except TrainingConfigError as exc:
        return {
            "rules.training": (
                f"Rules `training` (the default training config) is refused by the trainer: "
                f"{exc.message}"
            )
        }
    return {}


def assignment_problems(*, values: Mapping[str, Any], ruleset: Any = None) -> dict[str, list[str]]:
    """What is wrong with an assignment's settings, by setting or rule-set key.

    Args:
        values: settings by name (`EDITABLE_FIELDS`); only those present are checked, so a
            form can check the fields it holds.
        ruleset: the validated `grader.rules.RuleSet` the assignment will store, checked against
            the settings (its dataset's shape and classes, its default training config); None
            skips those checks.

    Returns:
        Messages by key: a setting name, or ``rules.<key>`` for a key of the rule set. Empty
        when everything is valid.
    """
    problems = _settings_problems(values)
    if ruleset is not None:
        problems.update(_rules_problems(values, ruleset))
    return {key: [message] for key, message in problems.items()}


def validate_assignment_settings(*, values: Mapping[str, Any], ruleset: Any = None) -> None:
    """Refuse settings the grading pipeline would fail on or ignore (see `assignment_problems`).

    Raises:
        AssignmentInvalid: one message per problem, each naming its key (as in a YAML file);
            `errors` holds them by key.
    """
    errors = assignment_problems(values=values, ruleset=ruleset)
    if errors:
        listed = " ".join(f"`{key}`: {' '.join(messages)}" for key, messages in errors.items())
        raise AssignmentInvalid(f"Invalid assignment settings. {listed}", errors=errors)
