"""Rules decided by training: epochs and accuracy. Undecided (None) until training ran.

With custom training (`TrainingOutcome.custom_training`) the submission's own code ran the
training loop, so the epochs it reported are claims: `min_val_accuracy` is decided from the
grader's own measurement of the trained weights on the held-out validation split, and
`max_epochs` from the declared epoch count (the `epochs` handed to the student's `train()`).
"""

from __future__ import annotations

from .context import RuleContext
from .params import Int, Number
from .registry import Verdict, rule
from .results import TrainingOutcome
from .schema import RuleSpec


@rule(
    "max_epochs",
    summary="Training runs at most `limit` epochs (refused up front when the declared training "
    "config asks for more; with custom training, the declared epochs are what is checked).",
    params={"limit": Int(minimum=1, doc="the most epochs allowed")},
    phase="training",
)
def max_epochs(spec: RuleSpec, ctx: RuleContext) -> Verdict:
    """Measured: the declared epochs when already too many, else the epochs trained.

    With custom training: the declared epochs (or the reported ones, when the submission's own
    loop reports more than the limit). The epochs of a custom loop cannot be counted by the
    grader; the training's time limit bounds them.
    """
    limit = spec.params["limit"]
    declared = (ctx.training_config or {}).get("epochs")
    if isinstance(declared, int) and not isinstance(declared, bool) and declared > limit:
        return Verdict(
            False,
            declared,
            f"The training config asks for {declared} epochs. Expected at most {limit}.",
            f"Set `epochs` to {limit} or fewer; early stopping keeps the best epoch anyway.",
        )
    if ctx.outcome is None:
        return Verdict(None, None, f"Decided after training (at most {limit} epochs).")
    run = ctx.outcome.epochs_run
    if ctx.outcome.custom_training:
        return _custom_epochs(limit, declared, run)
    if run <= limit:
        return Verdict(True, run, f"Training ran {run} epochs, at most {limit}.")
    return Verdict(False, run, f"Training ran {run} epochs. Expected at most {limit}.")


@rule(
    "min_val_accuracy",
    summary="The best validation accuracy within the first `within_epochs` epochs is at least "
    "`limit` (with custom training: the accuracy the grader measures on the held-out validation "
    "split after training).",
    params={
        "limit": Number(minimum=0.0, maximum=1.0, doc="the accuracy to reach (0..1)"),
        "within_epochs": Int(default=None, minimum=1, doc="only epochs up to this one count"),
    },
    phase="training",
)
def min_val_accuracy(spec: RuleSpec, ctx: RuleContext) -> Verdict:
    """Measured: the best validation accuracy within the epoch window.

    With custom training: the grader's own measurement after training, never the epochs the
    submission reported.
    """
    limit = spec.params["limit"]
    within = spec.params["within_epochs"]
    window = f" within {within} epochs" if within else ""
    if ctx.outcome is None:
        return Verdict(None, None, f"Decided after training (validation accuracy {limit:.2%}).")
    if ctx.outcome.custom_training:
        return _measured_val_accuracy(limit, within, ctx.outcome, _declared_epochs(ctx))
    best = ctx.outcome.best_val_accuracy_within(within)
    if best is None:
        return Verdict(
            False, None, f"Training reported no validation accuracy{window}. Expected one."
        )
    if best >= limit:
        return Verdict(True, best, f"The best validation accuracy{window} is {best:.2%}.")
    return Verdict(
        False,
        best,
        f"The best validation accuracy{window} is {best:.2%}. Expected at least {limit:.2%}.",
    )


_MEASURED = "measured by the grader on the held-out validation split after training"


def _declared_epochs(ctx: RuleContext) -> int | None:
    declared = (ctx.training_config or {}).get("epochs")
    return declared if isinstance(declared, int) and not isinstance(declared, bool) else None


def _custom_epochs(limit: int, declared: object, reported: int) -> Verdict:
    if reported > limit:
        return Verdict(
            False,
            reported,
            f"Custom training reported {reported} epochs. Expected at most {limit}.",
            "Train for `config['epochs']` epochs and pass `data['callbacks']` to `model.fit`.",
        )
    if not isinstance(declared, int) or isinstance(declared, bool):
        return Verdict(
            None, None, f"Custom training declared no epoch count. Expected at most {limit}."
        )
    return Verdict(
        True,
        declared,
        f"Custom training declared {declared} epochs (`config['epochs']` given to `train()`), "
        f"at most {limit}. The grader cannot count the epochs of a custom loop; the training's "
        "time limit bounds it.",
    )


def _measured_val_accuracy(
    limit: float, within: int | None, outcome: TrainingOutcome, declared: int | None
) -> Verdict:
    measured = outcome.measured_val_accuracy
    reported = outcome.best_val_accuracy
    hint = (
        f"The training reported a best validation accuracy of {reported:.2%}; with custom "
        "training, reported epochs are shown but not graded: the grader measures the trained "
        "model itself."
        if reported is not None
        else None
    )
    if within and declared is not None and declared > within:
        return Verdict(
            False,
            measured,
            f"Custom training declared {declared} epochs; only the first {within} count, and "
            f"the grader can measure the model only after all of them. Expected `epochs` at "
            f"most {within}.",
            hint,
        )
    if measured is None:
        return Verdict(
            None,
            None,
            "The validation accuracy could not be measured by the grader after training. "
            "Expected a measurement on the held-out validation split.",
            hint,
        )
    if measured >= limit:
        return Verdict(True, measured, f"The validation accuracy {_MEASURED} is {measured:.2%}.")
    return Verdict(
        False,
        measured,
        f"The validation accuracy {_MEASURED} is {measured:.2%}. Expected at least {limit:.2%}.",
        hint,
    )


@rule(
    "min_test_accuracy",
    summary="The accuracy on the held-out test split is at least `limit`.",
    params={"limit": Number(minimum=0.0, maximum=1.0, doc="the accuracy to reach (0..1)")},
    phase="training",
)
def min_test_accuracy(spec: RuleSpec, ctx: RuleContext) -> Verdict:
    """Measured: the accuracy on the held-out test split."""
    limit = spec.params["limit"]
    accuracy = ctx.outcome.test_accuracy if ctx.outcome is not None else None
    if accuracy is None:
        return Verdict(None, None, f"Decided after evaluation (test accuracy {limit:.2%}).")
    if accuracy >= limit:
        return Verdict(True, accuracy, f"The test accuracy is {accuracy:.2%}.")
    return Verdict(
        False, accuracy, f"The test accuracy is {accuracy:.2%}. Expected at least {limit:.2%}."
    )
