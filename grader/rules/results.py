"""What evaluating a rule produces, what training tells the rules, and the score.

`RuleResult.passed` is three-valued: ``True`` and ``False`` are verdicts, ``None`` means the rule
cannot be decided yet (a training rule before training ran). A ``None`` never earns points.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RuleResult:
    """The verdict of one rule on one model.

    Attributes:
        id: the rule id, e.g. ``"max_params"``.
        passed: True, False, or None while the rule cannot be decided (before training).
        measured: what was measured on the model (exact number, list, or None).
        limit: the rule's limit as declared in the rule set.
        message: a Keras-style sentence: what was found, what was expected, where.
        hint: a teaching hint computed from the architecture, or None.
        points: the points this rule is worth.
        name: the rule's name in the rule set (distinguishes repeated ids); defaults to the id.
    """

    id: str
    passed: bool | None
    measured: Any
    limit: Any
    message: str
    hint: str | None = None
    points: float = 1.0
    name: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.id)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: ``{id, name, passed, measured, limit, message, hint, points}``."""
        return {
            "id": self.id,
            "name": self.name,
            "passed": self.passed,
            "measured": self.measured,
            "limit": self.limit,
            "message": self.message,
            "hint": self.hint,
            "points": self.points,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RuleResult:
        """Rebuild a result stored with `to_dict` (e.g. from a `Result.rules` JSON column)."""
        return cls(
            id=data["id"],
            passed=data["passed"],
            measured=data.get("measured"),
            limit=data.get("limit"),
            message=data.get("message", ""),
            hint=data.get("hint"),
            points=float(data.get("points", 1.0)),
            name=data.get("name") or data["id"],
        )


@dataclass(frozen=True)
class TrainingOutcome:
    """What training and evaluation reported, as far as the rules need it.

    Attributes:
        epochs_run: epochs actually trained (as reported by the training).
        val_accuracy: validation accuracy of each epoch, in order (None where not reported).
        best_val_accuracy: the best validation accuracy over all epochs, or None.
        test_accuracy: accuracy on the held-out test split, or None before evaluation.
        custom_training: the submission's own code ran the training, so the epochs above are
            its claims, not measurements: accuracy rules use `measured_val_accuracy` instead.
        measured_val_accuracy: accuracy of the trained weights on the validation part held out
            of the training split, measured by the grader after training, or None.
    """

    epochs_run: int
    val_accuracy: tuple[float | None, ...] = field(default=())
    best_val_accuracy: float | None = None
    test_accuracy: float | None = None
    custom_training: bool = False
    measured_val_accuracy: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "val_accuracy", tuple(self.val_accuracy))
        if self.best_val_accuracy is None:
            known = [a for a in self.val_accuracy if a is not None]
            if known:
                object.__setattr__(self, "best_val_accuracy", max(known))

    @classmethod
    def from_epochs(
        cls,
        epochs: Sequence[Mapping[str, Any]],
        *,
        test_accuracy: float | None = None,
        custom_training: bool = False,
        measured_val_accuracy: float | None = None,
    ) -> TrainingOutcome:
        """Build an outcome from ``GRADER-PROGRESS`` epoch records (``{"epoch", "val_accuracy"}``).

        Records are ordered by their ``epoch`` key when present (1-based or 0-based alike).
        """
        ordered = sorted(epochs, key=lambda e: e.get("epoch", 0)) if epochs else []
        return cls(
            epochs_run=len(ordered),
            val_accuracy=tuple(e.get("val_accuracy") for e in ordered),
            test_accuracy=test_accuracy,
            custom_training=custom_training,
            measured_val_accuracy=measured_val_accuracy,
        )

    def best_val_accuracy_within(self, epochs: int | None) -> float | None:
        """The best validation accuracy among the first `epochs` epochs (all when None).

        Without a per-epoch history only `best_val_accuracy` is known; it is returned when it
        cannot include epochs past the limit (`epochs_run` within the limit).
        """
        if self.val_accuracy:
            window = self.val_accuracy if epochs is None else self.val_accuracy[:epochs]
            known = [a for a in window if a is not None]
            return max(known) if known else None
        if epochs is None or self.epochs_run <= epochs:
            return self.best_val_accuracy
        return None


def score(results: Iterable[RuleResult]) -> float:
    """Points earned over points available, as a percentage (0 to 100).

    Undecided results (``passed is None``) earn nothing. A rule set worth no points at all
    scores 100: there was nothing to fail.
    """
    results = list(results)
    total = sum(r.points for r in results)
    if total <= 0:
        return 100.0
    earned = sum(r.points for r in results if r.passed is True)
    return earned / total * 100.0
