"""Rules about which layer classes appear: forbidden, required, global pooling."""

from __future__ import annotations

from .context import RuleContext
from .kinds import GLOBAL_AVERAGE_POOLING, GLOBAL_MAX_POOLING
from .params import Choice, ClassNames, Int
from .registry import Verdict, rule
from .schema import RuleSpec


@rule(
    "forbidden_layers",
    summary="None of the listed layer classes appears in the model.",
    params={"layers": ClassNames(doc="Keras class names, e.g. [MaxPooling2D]")},
)
def forbidden_layers(spec: RuleSpec, ctx: RuleContext) -> Verdict:
    """Measured: the names of layers of a forbidden class; passes when there are none."""
    forbidden = spec.params["layers"]
    found = ctx.layers_of(set(forbidden))
    listed = ", ".join(forbidden)
    if not found:
        return Verdict(True, [], f"The model uses none of: {listed}.", limit=forbidden)
    first = found[0]
    more = f" ({len(found) - 1} more forbidden layers)" if len(found) > 1 else ""
    return Verdict(
        False,
        [layer.name for layer in found],
        f"{first.label} is not allowed{more}. Expected none of: {listed}.",
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
    summary="Each listed layer class appears at least `min_count` times.",
    params={
        "layers": ClassNames(doc="Keras class names, e.g. [BatchNormalization]"),
        "min_count": Int(default=1, minimum=1, doc="occurrences required of each class"),
    },
)
def required_layers(spec: RuleSpec, ctx: RuleContext) -> Verdict:
    """Measured: occurrences of each listed class; passes when each reaches `min_count`."""
    required = spec.params["layers"]
    min_count = spec.params["min_count"]
    counts = {name: len(ctx.layers_of({name})) for name in required}
    missing = {name: n for name, n in counts.items() if n < min_count}
    times = "" if min_count == 1 else f" {min_count} times"
    if not missing:
        return Verdict(
            True,
            counts,
            "The model has " + ", ".join(f"{n} {c}" for c, n in counts.items()) + ".",
            limit=min_count,
        )
    name, n = next(iter(missing.items()))
    return Verdict(
        False,
        counts,
        f"The model has {n} {name} layer{'' if n == 1 else 's'}. Expected each of "
        f"{', '.join(required)} at least{times or ' once'}.",
        None,
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
    """Measured: how many global pooling layers of the requested kind the model has."""
    kind = spec.params["kind"]
    found = ctx.layers_of(_POOLING[kind])
    expected = {
        "average": "a GlobalAveragePooling layer",
        "max": "a GlobalMaxPooling layer",
        "any": "a GlobalAveragePooling or GlobalMaxPooling layer",
    }[kind]
    if found:
        return Verdict(True, len(found), f"{found[0].label} pools globally.", limit=kind)
    flatten = ctx.layers_of({"Flatten"})
    hint = None
    if flatten:
        hint = (
            f"Replace `{flatten[0].name}` (Flatten) by GlobalAveragePooling2D: the classifier then "
            "takes one value per channel, whatever the image size, with far fewer weights."
        )
    return Verdict(False, 0, f"The model has no global pooling. Expected {expected}.", hint, kind)
