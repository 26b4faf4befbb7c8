"""Rules decided by training: epochs and accuracy. Undecided (None) until training ran."""

from __future__ import annotations

from .context import RuleContext
from .params import Int, Number
from .registry import Verdict, rule
from .schema import RuleSpec


@rule(
    "max_epochs",
    summary="Training runs at most `limit` epochs (refused up front when the declared training "
    "config asks for more).",
    params={"limit": Int(minimum=1, doc="the most epochs allowed")},
    phase="training",
)
def max_epochs(spec: RuleSpec, ctx: RuleContext) -> Verdict:
    """Measured: the declared epochs when already too many, else the epochs trained."""
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
    if run <= limit:
        return Verdict(True, run, f"Training ran {run} epochs, at most {limit}.")
    return Verdict(False, run, f"Training ran {run} epochs. Expected at most {limit}.")


@rule(
    "min_val_accuracy",
    summary="The best validation accuracy within the first `within_epochs` epochs is at least "
    "`limit`.",
    params={
        "limit": Number(minimum=0.0, maximum=1.0, doc="the accuracy to reach (0..1)"),
        "within_epochs": Int(default=None, minimum=1, doc="only epochs up to this one count"),
    },
    phase="training",
)
def min_val_accuracy(spec: RuleSpec, ctx: RuleContext) -> Verdict:
    """Measured: the best validation accuracy within the epoch window."""
    limit = spec.params["limit"]
    within = spec.params["within_epochs"]
    window = f" within {within} epochs" if within else ""
    if ctx.outcome is None:
        return Verdict(None, None, f"Decided after training (validation accuracy {limit:.2%}).")
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
