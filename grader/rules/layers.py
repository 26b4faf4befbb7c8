"""Rules about which layer classes appear: forbidden, required, global pooling.

Layers are counted by call: a layer called twice appears twice. A call on a path that provably
cannot change the output counts for no rule; one the grader cannot decide (see
`grader.graph_effect`) still counts as forbidden but never as required.
"""

from __future__ import annotations

from .context import CallFacts, RuleContext
from .counting import (
    by_layer,
    describe_exclusions,
    effect_exclusion,
    exclusion_hint,
)
from .families import GLOBAL_AVERAGE_POOLING, GLOBAL_MAX_POOLING
from .params import Choice, ClassNames, Int
from .registry import Verdict, rule
from .schema import RuleSpec


@rule(
    "forbidden_layers",
    summary="None of the listed layer classes is called in the model (a call on a path that "
    "cannot change the output does not count).",
    params={"layers": ClassNames(doc="Keras class names, e.g. [MaxPooling2D]")},
)
def forbidden_layers(spec: RuleSpec, ctx: RuleContext) -> Verdict:
    """Measured: the calls of a forbidden class (name, with "(call N)" for a shared layer)."""
    forbidden = spec.params["layers"]
    calls = ctx.calls_of(set(forbidden))
    found = [call for call in calls if not call.dead]
    listed = ", ".join(forbidden)
    notes = describe_exclusions(
        [e for call in calls if call.dead and (e := effect_exclusion(call)) is not None]
    )
    if not found:
        return Verdict(True, [], f"The model uses none of: {listed}.{notes}", limit=forbidden)
    first = found[0]
    others = len(found) - 1
    more = f" ({others} more forbidden layer call{'s' if others > 1 else ''})" if others else ""
    return Verdict(
        False,
        [call.ref for call in found],
        f"{first.label} is not allowed{more}. Expected none of: {listed}.{notes}",
        _forbidden_hint(found[0].class_name),
        forbidden,
    )


def _forbidden_hint(class_name: str) -> str | None:
    if class_name.startswith("MaxPooling") or class_name.startswith("AveragePooling"):
        return (
            "Downsample with a strided convolution (strides=2) instead of pooling, and grow the "
            "receptive field with dilated convolutions (dilation_rate=2)."
        )
    if class_name == "Flatten":
        return "Use GlobalAveragePooling2D before the classifier instead of Flatten."
    return None


@rule(
    "required_layers",
    summary="Each listed layer class is called at least `min_count` times on a path that can "
    "change the output (a layer called N times counts N times).",
    params={
        "layers": ClassNames(doc="Keras class names, e.g. [BatchNormalization]"),
        "min_count": Int(default=1, minimum=1, doc="calls required of each class"),
    },
)
def required_layers(spec: RuleSpec, ctx: RuleContext) -> Verdict:
    """Measured: calls of each listed class; passes when each reaches `min_count`."""
    required = spec.params["layers"]
    min_count = spec.params["min_count"]
    counted: dict[str, list[CallFacts]] = {name: [] for name in required}
    left_out = []
    for call in ctx.calls_of(set(required)):
        excluded = effect_exclusion(call)
        if excluded is None:
            counted[call.class_name].append(call)
        else:
            left_out.append(excluded)
    counts = {name: len(calls) for name, calls in counted.items()}
    missing = {name: n for name, n in counts.items() if n < min_count}
    times = "" if min_count == 1 else f" {min_count} times"
    notes = describe_exclusions(left_out)
    shared = [f"{by_layer(calls)}" for calls in counted.values() if any(c.calls > 1 for c in calls)]
    by_call = f" (counted by call: {', '.join(shared)})" if shared else ""
    if not missing:
        return Verdict(
            True,
            counts,
            "The model has "
            + ", ".join(f"{n} {c}" for c, n in counts.items())
            + f"{by_call}.{notes}",
            limit=min_count,
        )
    name, n = next(iter(missing.items()))
    return Verdict(
        False,
        counts,
        f"The model has {n} {name} layer{'' if n == 1 else 's'}{by_call}. Expected each of "
        f"{', '.join(required)} at least{times or ' once'}.{notes}",
        exclusion_hint(left_out),
        min_count,
    )


_POOLING = {
    "average": GLOBAL_AVERAGE_POOLING,
    "max": GLOBAL_MAX_POOLING,
    "any": GLOBAL_AVERAGE_POOLING | GLOBAL_MAX_POOLING,
}


@rule(
    "global_pooling_used",
    summary="The model pools globally (average, max, or either) before its classifier.",
    params={"kind": Choice(default="any", choices=("average", "max", "any"), doc="which pooling")},
)
def global_pooling_used(spec: RuleSpec, ctx: RuleContext) -> Verdict:
    """Measured: how many global pooling calls of the requested kind influence the output."""
    pooling = spec.params["kind"]
    calls = ctx.calls_of(_POOLING[pooling])
    found = [call for call in calls if call.counts]
    left_out = [e for call in calls if (e := effect_exclusion(call)) is not None]
    expected = {
        "average": "a GlobalAveragePooling layer",
        "max": "a GlobalMaxPooling layer",
        "any": "a GlobalAveragePooling or GlobalMaxPooling layer",
    }[pooling]
    notes = describe_exclusions(left_out)
    if found:
        return Verdict(True, len(found), f"{found[0].label} pools globally.{notes}", limit=pooling)
    flatten = [call for call in ctx.calls_of({"Flatten"}) if call.counts]
    hint = exclusion_hint(left_out)
    if flatten and hint is None:
        hint = (
            f"Replace `{flatten[0].name}` (Flatten) by GlobalAveragePooling2D: the classifier then "
            "takes one value per channel, whatever the image size, with far fewer weights."
        )
    return Verdict(
        False, 0, f"The model has no global pooling. Expected {expected}.{notes}", hint, pooling
    )
