"""Rules about model size."""

from __future__ import annotations

from grader import hints

from .context import RuleContext
from .params import Choice, Int
from .registry import Verdict, rule
from .schema import RuleSpec


@rule(
    "max_params",
    summary="The model has at most `limit` parameters (all of them, or only trainable ones), as "
    "Keras counts them: a shared layer's weights once, however often it is called.",
    params={
        "limit": Int(minimum=1, doc="the most parameters allowed"),
        "count": Choice(default="total", choices=("total", "trainable"), doc="what to count"),
    },
)
def max_params(spec: RuleSpec, ctx: RuleContext) -> Verdict:
    """Measured: the parameter count (total or trainable); passes when at most `limit`."""
    limit = spec.params["limit"]
    trainable = spec.params["count"] == "trainable"
    measured = ctx.params_trainable if trainable else ctx.params_total
    what = "trainable parameters" if trainable else "parameters"
    if measured <= limit:
        return Verdict(True, measured, f"The model has {measured:,} {what}, at most {limit:,}.")
    return Verdict(
        False,
        measured,
        f"The model has {measured:,} {what}. Expected at most {limit:,}.",
        f"{measured - limit:,} too many. " + hints.params_hint(ctx.layers),
    )
