"""What grading needs to know about an assignment, without the database.

A `GradingPlan` comes from a database `Assignment` (workers, `grade --assignment SLUG` when the
slug exists) or from a shipped preset (`grade` with a preset slug: nothing is written anywhere).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

DEFAULT_MEMORY_LIMIT_MB = 4096
#: The stage whose wall-clock limit is the assignment's own (`time_limit_seconds`).
TRAINING_STAGE = "training"
#: The evaluate stage, limited by the host's `GRADER_EVALUATE_SECONDS`.
EVALUATING_STAGE = "evaluating"


@dataclass(frozen=True)
class StageLimits:
    """Nested limits of one stage: sandbox wall time < Celery soft limit < Celery hard limit."""

    sandbox_seconds: int
    soft_time_limit: int
    time_limit: int

    @classmethod
    def nested(cls, seconds: int, grace_seconds: int) -> StageLimits:
        """The sandbox gets `seconds`; each Celery limit adds one more grace period."""
        return cls(
            sandbox_seconds=seconds,
            soft_time_limit=seconds + grace_seconds,
            time_limit=seconds + 2 * grace_seconds,
        )


@dataclass(frozen=True)
class GradingPlan:
    """The assignment settings every stage reads.

    Attributes:
        slug: The assignment (or preset) slug.
        dataset: The registered dataset name (`grader.datasets`).
        mode: `train` (train then evaluate) or `evaluate` (evaluate an uploaded `.keras`).
        rules_yaml: The rule set as YAML, exactly as recorded with the result.
        rules_version: The version of that rule set.
        time_limit_seconds: Wall-clock limit of the training sandbox.
        memory_limit_mb: Memory limit of every sandbox.
        max_epochs: The most epochs a training may run.
        allow_custom_training: Whether a `.py` submission's `train()` may replace the trainer.
        stop_on_static_failure: Whether a failed static rule ends the grading before training.
        late_policy: `reject`, `accept` or `penalty`.
        late_penalty: Fraction of the score removed from a late submission under `penalty`.
        training_defaults: The rule set's default training config (its `training` key).
        min_batch_size: The smallest batch a training may declare (the rule set's
            `min_batch_size`: the training budget, with `max_epochs`).
    """

    slug: str
    dataset: str
    mode: str
    rules_yaml: str
    rules_version: int = 1
    time_limit_seconds: int = 1800
    memory_limit_mb: int = DEFAULT_MEMORY_LIMIT_MB
    max_epochs: int = 50
    allow_custom_training: bool = False
    stop_on_static_failure: bool = True
    late_policy: str = "accept"
    late_penalty: float = 0.0
    training_defaults: dict[str, Any] | None = field(default=None)
    min_batch_size: int = 1

    @property
    def trains(self) -> bool:
        """Whether this plan trains the model (mode `train`)."""
        return self.mode != "evaluate"

    def stage_limits(
        self, stage: str, *, build_seconds: int, evaluate_seconds: int, grace_seconds: int
    ) -> StageLimits:
        """The time limits of `stage` (a submission status: ``training``, ``evaluating``, ...).

        The sandbox's own wall-clock timeout fires first and yields a `timeout` verdict; the
        Celery soft limit (sandbox + grace) only fires if the sandbox failed to enforce its
        limit, and the hard limit kills a worker stuck even after that. Training is limited by
        the assignment, evaluation and the rest (build, check) by the host's settings.
        """
        if stage == TRAINING_STAGE:
            seconds = int(self.time_limit_seconds)
        elif stage == EVALUATING_STAGE:
            seconds = evaluate_seconds
        else:
            seconds = build_seconds
        return StageLimits.nested(seconds, grace_seconds)

    def training_policy(self) -> dict[str, Any]:
        """The policy handed to `grader.training.config` and to the train runner."""
        return {
            "max_epochs": self.max_epochs,
            "allow_custom_training": self.allow_custom_training,
            "min_batch_size": self.min_batch_size,
            "time_limit_seconds": self.time_limit_seconds,
            "defaults": dict(self.training_defaults or {}),
        }

    @classmethod
    def from_assignment(cls, assignment: Any) -> GradingPlan:
        """The plan of a database `Assignment` (duck-typed: `grader` stays free of Django)."""
        return cls(
            slug=assignment.slug,
            dataset=assignment.dataset,
            mode=assignment.mode,
            rules_yaml=assignment.rules_yaml,
            rules_version=assignment.rules_version,
            time_limit_seconds=int(assignment.time_limit_seconds),
            memory_limit_mb=int(assignment.memory_limit_mb),
            max_epochs=int(assignment.max_epochs),
            allow_custom_training=bool(assignment.allow_custom_training),
            stop_on_static_failure=bool(assignment.stop_on_static_failure),
            late_policy=assignment.late_policy,
            late_penalty=float(assignment.late_penalty),
            training_defaults=training_defaults_of(assignment.rules_yaml),
            min_batch_size=min_batch_size_of(assignment.rules_yaml),
        )

    @classmethod
    def from_preset(cls, slug: str) -> GradingPlan:
        """The plan of a shipped preset (`grader/presets/<slug>.yaml`).

        Raises:
            RuleSetError: No preset has that slug.
        """
        from grader.presets import load_preset, preset_text

        text = preset_text(slug)
        meta = dict(load_preset(slug).metadata)
        return cls(
            slug=slug,
            dataset=str(meta.get("dataset", "synthetic")),
            mode=str(meta.get("mode", "train")),
            rules_yaml=text,
            rules_version=1,
            time_limit_seconds=int(meta.get("time_limit_seconds", 1800)),
            memory_limit_mb=int(meta.get("memory_limit_mb", DEFAULT_MEMORY_LIMIT_MB)),
            max_epochs=int(meta.get("max_epochs", 50)),
            allow_custom_training=bool(meta.get("allow_custom_training", False)),
            training_defaults=meta.get("training") or None,
            min_batch_size=int(meta.get("min_batch_size", 1)),
        )


def training_defaults_of(rules_yaml: str) -> dict[str, Any] | None:
    """The `training` mapping of a rule set seeded from a preset, if it has one."""
    try:
        data = yaml.safe_load(rules_yaml) or {}
    except yaml.YAMLError:
        return None
    training = data.get("training") if isinstance(data, dict) else None
    return dict(training) if isinstance(training, dict) else None


def min_batch_size_of(rules_yaml: str) -> int:
    """The rule set's `min_batch_size` (1 when it sets none or cannot be read)."""
    try:
        data = yaml.safe_load(rules_yaml) or {}
    except yaml.YAMLError:
        return 1
    value = data.get("min_batch_size") if isinstance(data, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else 1
