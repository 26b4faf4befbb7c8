"""Rules about regularization: dropout rates."""

from __future__ import annotations

from grader import hints

from .context import LayerFacts, RuleContext
from .families import dropout_rates
from .params import Number
from .registry import Verdict, rule
from .schema import RuleSpec


@rule(
    "max_dropout",
    summary="Every dropout-like rate (Dropout, SpatialDropout, GaussianDropout, AlphaDropout, "
    "recurrent dropout) is at most `limit` (a layer on a path that cannot change the output "
    "does not count).",
    params={"limit": Number(minimum=0.0, maximum=1.0, doc="the largest rate allowed")},
)
def max_dropout(spec: RuleSpec, ctx: RuleContext) -> Verdict:
    """Measured: the largest dropout-like rate in the model (0.0 without dropout)."""
    limit = spec.params["limit"]
    # A rate belongs to the layer: a Dropout called three times applies its one rate three
    # times. Only a layer whose every call cannot change the output is left out.
    active = {call.name for call in ctx.calls if not call.dead}
    rates: list[tuple[LayerFacts, str, float]] = [
        (layer, what, rate)
        for layer in ctx.layers
        if layer.name in active
        for what, rate in dropout_rates(layer.class_name, layer.config)
    ]
    if not rates:
        return Verdict(True, 0.0, "The model has no dropout.")
    worst_layer, worst_what, worst = max(rates, key=lambda r: r[2])
    what = "rate" if worst_what == "rate" else f"`{worst_what}`"
    offenders = [r for r in rates if r[2] > limit]
    if not offenders:
        return Verdict(
            True,
            worst,
            f"The largest dropout rate is {hints.format_rate(worst)}, in `{worst_layer.name}` "
            f"({worst_layer.class_name}); at most {hints.format_rate(limit)} is allowed.",
        )
    more = _also_above([o for o in offenders if not (o[0] is worst_layer and o[1] == worst_what)])
    return Verdict(
        False,
        worst,
        f"{worst_layer.label} has {what} {hints.format_rate(worst)}{more}. "
        f"Expected at most {hints.format_rate(limit)}.",
        hints.dropout_hint(offenders, limit),
    )


#: At most this many other layers are named; the rest are counted.
NAMED_OFFENDERS = 5


def _also_above(others: list[tuple[LayerFacts, str, float]]) -> str:
    """`` (also above the limit: `dropout_2` 0.30, `dropout_4` 0.25, and 3 other layers)``."""
    if not others:
        return ""
    ordered = sorted(others, key=lambda o: o[2], reverse=True)
    named = [
        f"`{layer.name}` {hints.format_rate(rate)}" + ("" if what == "rate" else f" (`{what}`)")
        for layer, what, rate in ordered[:NAMED_OFFENDERS]
    ]
    rest = len(ordered) - len(named)
    if rest:
        named.append(f"and {rest} other layer{'s' if rest > 1 else ''}")
    return f" (also above the limit: {', '.join(named)})"
