"""Rules about convolution types: separable convolutions, plain convolutions, dilation.

Every rule here counts calls, not layer objects (a layer called four times is four
convolutions), and counts what a call computes, not its class name alone:

- a separable convolution counts only when its depthwise kernel filters spatially: a 1x1
  depthwise kernel is a per-channel scale before the pointwise convolution (`kernels`);
- a dilation counts only along an axis where the kernel is larger than 1 and its dilated taps
  reach the input;
- a call on a path that cannot change the output counts for nothing (`grader.graph_effect`);
- the first-convolution exemption covers one call: the one that reads the image.
"""

from __future__ import annotations

from grader import hints

from .context import CallFacts, RuleContext
from .counting import (
    Exclusion,
    counted_phrase,
    describe_exclusions,
    effect_exclusion,
    exclusion_hint,
    undecided,
)
from .families import CONVS, DEPTHWISE_CONVS, PLAIN_CONVS, SEPARABLE_CONVS, format_kernel
from .kernels import (
    describe_kernel,
    filters_spatially,
    kernel_axes,
    why_not_dilated,
    why_not_spatial,
)
from .params import Bool, Int
from .registry import Verdict, rule
from .schema import RuleSpec

# Plain convolutions that can be the pointwise half of a hand-factored separable convolution.
_POINTWISE_CLASSES = frozenset({"Conv1D", "Conv2D", "Conv3D"}) | SEPARABLE_CONVS
# What MobileNet puts between the depthwise and the pointwise halves.
_BETWEEN_HALVES = frozenset(
    {"BatchNormalization", "Activation", "ReLU", "LeakyReLU", "PReLU", "ELU"}
)


def _pointwise(call: CallFacts) -> bool:
    """A convolution call that combines channels only: its kernel filters along no axis."""
    return call.class_name in _POINTWISE_CLASSES and not filters_spatially(call.node)


def _no_spatial_filter(call: CallFacts) -> str:
    reason = why_not_spatial(call.node)
    if reason.startswith("its kernel is"):
        return (
            f"{reason.removeprefix('its kernel is ')}, no depthwise spatial filter (a 1x1 "
            "depthwise kernel only scales each channel)"
        )
    return f"no depthwise spatial filter: {reason}"


def _sort_separable(call: CallFacts, found: list[CallFacts], left_out: list[Exclusion]) -> None:
    """Count a separable call, or leave it out with the reason (no effect, no spatial filter)."""
    excluded = effect_exclusion(call)
    if excluded is not None:
        left_out.append(excluded)
    elif not filters_spatially(call.node):
        left_out.append(Exclusion(call, _no_spatial_filter(call)))
    else:
        found.append(call)


def _depthwise_separable(ctx: RuleContext) -> tuple[list[CallFacts], list[Exclusion]]:
    """DepthwiseConv calls whose output feeds only 1x1 convolutions: separable, factored by hand.

    Activations or batch normalization between the two halves are allowed (they are what
    MobileNet puts there). Consumers that cannot change the output are ignored.
    """
    calls = {call.node.id: call for call in ctx.calls}
    found: list[CallFacts] = []
    left_out: list[Exclusion] = []
    for call in ctx.calls_of(DEPTHWISE_CONVS):
        frontier = [call.node.id]
        feeds_pointwise = True
        while frontier and feeds_pointwise:
            consumers = [c for c in ctx.graph.consumers(frontier.pop()) if not calls[c.id].dead]
            if not consumers:
                feeds_pointwise = False
            for consumer in consumers:
                facts = calls[consumer.id]
                if _pointwise(facts):
                    continue
                if facts.class_name in _BETWEEN_HALVES:
                    frontier.append(consumer.id)
                else:
                    feeds_pointwise = False
        if feeds_pointwise:
            _sort_separable(call, found, left_out)
    return found, left_out


def _separable_calls(
    ctx: RuleContext, include_depthwise: bool
) -> tuple[list[CallFacts], list[Exclusion]]:
    found: list[CallFacts] = []
    left_out: list[Exclusion] = []
    for call in ctx.calls_of(SEPARABLE_CONVS):
        _sort_separable(call, found, left_out)
    if include_depthwise:
        more, more_left_out = _depthwise_separable(ctx)
        found += more
        left_out += more_left_out
    found.sort(key=lambda call: call.node.id)
    return found, left_out


def _undecided_note(left_out: list[Exclusion], count: int, needed: int) -> str:
    maybe = undecided(left_out)
    if not maybe or count >= needed or count + len(maybe) < needed:
        return ""
    return (
        f" With the {len(maybe)} call{'s' if len(maybe) > 1 else ''} the grader cannot "
        f"decide, the model would have {count + len(maybe)}: such layers are refused in an "
        "assignment that counts layers."
    )


@rule(
    "separable_conv_used",
    summary="The model makes at least `min_count` depthwise-separable convolution calls. A "
    "layer called N times counts N times; a separable convolution whose depthwise kernel is 1x1 "
    "(a per-channel scale, no spatial filter) does not count, nor does a call on a path that "
    "cannot change the output.",
    params={
        "min_count": Int(default=1, minimum=1, doc="separable convolution calls required"),
        "include_depthwise": Bool(
            default=True,
            doc="count a DepthwiseConv followed by a 1x1 convolution as separable",
        ),
    },
)
def separable_conv_used(spec: RuleSpec, ctx: RuleContext) -> Verdict:
    """Measured: the number of separable convolution calls (factored by hand ones included)."""
    min_count = spec.params["min_count"]
    found, left_out = _separable_calls(ctx, spec.params["include_depthwise"])
    count = len(found)
    what = "separable convolution" + ("" if count == 1 else "s")
    by_call = ", counted by call" if any(call.calls > 1 for call in found) else ""
    not_counted = describe_exclusions(left_out)
    if count >= min_count:
        return Verdict(
            True,
            count,
            f"The model has {count} {what}{by_call} ({counted_phrase(found)}).{not_counted}",
            None,
            min_count,
        )
    listed = f"{by_call} ({counted_phrase(found)})" if by_call else ""
    advice = [
        exclusion_hint(left_out),
        hints.degenerate_separable_hint([e.call for e in left_out]),
        hints.separable_hint(ctx.layers),
    ]
    hint = "\n".join(a for a in advice if a) or (
        "Use SeparableConv2D layers (a depthwise 3x3 filter per channel, then a 1x1 pointwise "
        "convolution) for the feature extractor."
    )
    return Verdict(
        False,
        count,
        f"The model has {count} {what}{listed}. Expected at least {min_count}.{not_counted}"
        f"{_undecided_note(left_out, count, min_count)}",
        hint,
        min_count,
    )


_IMAGE_CHAIN = (
    " (directly, or through preprocessing, augmentation, normalization, noise or activations)"
)


def _reads(ctx: RuleContext, call: CallFacts) -> str:
    """What a call's first input is: "`c` reads the output of `b` (Conv2D)"."""
    if not call.node.inputs:
        return f"`{call.name}` has no input"
    producer = ctx.graph.nodes[call.node.inputs[0]]
    return (
        f"`{call.name}` reads the output of `{producer.layer.name}` ({producer.layer.class_name})"
    )


@rule(
    "only_separable_convs",
    summary="Plain convolutions only as 1x1 (pointwise), counted by call. With "
    "`allow_first_layer`, one call may be any plain convolution: the one that reads the image "
    "(directly, or through preprocessing, augmentation, normalization or activations); calling "
    "that layer again later is not exempt.",
    params={
        "allow_first_layer": Bool(
            default=False,
            doc="the convolution call that reads the image may be plain (one call only)",
        ),
    },
)
def only_separable_convs(spec: RuleSpec, ctx: RuleContext) -> Verdict:
    """Measured: the plain convolution calls larger than 1x1, bar the exempt one.

    A call appears as its layer's name, with "(call N)" for a layer called more than once.
    """
    allow_first = spec.params["allow_first_layer"]
    plain = [call for call in ctx.calls_of(PLAIN_CONVS) if not call.dead]
    spatial = [call for call in plain if filters_spatially(call.node)]
    exempt = (
        next((call for call in spatial if ctx.reads_image(call)), None) if allow_first else None
    )
    offenders = [call for call in spatial if call is not exempt]
    notes = describe_exclusions(
        [
            Exclusion(call, "counted as pointwise: " + why_not_spatial(call.node))
            for call in plain
            if not filters_spatially(call.node)
            and any(axis.kernel > 1 for axis in kernel_axes(call.node))
        ]
        + [
            e
            for call in ctx.calls_of(PLAIN_CONVS)
            if call.dead and (e := effect_exclusion(call)) is not None
        ]
    )
    allowed = "a 1x1 kernel" + (
        " (the one call that reads the image may be any plain convolution)" if allow_first else ""
    )
    exempted = (
        f" (`{exempt.name}`, the convolution that reads the image, is exempt)"
        if exempt is not None
        else ""
    )
    if not offenders:
        return Verdict(True, [], f"No plain convolution larger than 1x1{exempted}.{notes}")
    worst = offenders[0]
    kernel = format_kernel(tuple(axis.kernel for axis in kernel_axes(worst.node)))
    more = (
        f" ({len(offenders) - 1} more: {', '.join(f'`{x.ref}`' for x in offenders[1:])})"
        if len(offenders) > 1
        else ""
    )
    again = ""
    recalled = [x for x in offenders if exempt is not None and x.name == exempt.name]
    if exempt is not None and recalled:
        numbers = ", ".join(str(x.index) for x in recalled)
        again = (
            f" Only the call that reads the image is exempt (`{exempt.name}` call "
            f"{exempt.index}); `{exempt.name}` call{'s' if len(recalled) > 1 else ''} {numbers} "
            f"read{'s' if len(recalled) == 1 else ''} another layer's output."
        )
    if allow_first and exempt is None:
        again = f" No plain convolution call reads the image{_IMAGE_CHAIN}; {_reads(ctx, worst)}."
    return Verdict(
        False,
        [call.ref for call in offenders],
        f"{worst.label} has a {kernel} kernel{more}. Expected separable convolutions; "
        f"a plain convolution only with {allowed}.{again}{notes}",
        hints.separable_hint(ctx.layers, sorted({x.name for x in offenders})) or None,
        None,
    )


@rule(
    "dilated_conv_used",
    summary="At least `min_count` convolution calls have a dilation rate above 1 along an axis "
    "where the kernel is larger than 1 (a 1x1 kernel has nothing to dilate) and the dilated taps "
    "reach the input. A layer called N times counts N times; a call on a path that cannot "
    "change the output does not count.",
    params={"min_count": Int(default=1, minimum=1, doc="dilated convolution calls required")},
)
def dilated_conv_used(spec: RuleSpec, ctx: RuleContext) -> Verdict:
    """Measured: the number of convolution calls whose dilation widens a real kernel."""
    min_count = spec.params["min_count"]
    found: list[CallFacts] = []
    left_out: list[Exclusion] = []
    for call in ctx.calls_of(CONVS):
        if not any(axis.dilation > 1 for axis in kernel_axes(call.node)):
            continue
        excluded = effect_exclusion(call)
        reason = why_not_dilated(call.node)
        if excluded is not None:
            left_out.append(excluded)
        elif reason is not None:
            left_out.append(Exclusion(call, reason))
        else:
            found.append(call)
    count = len(found)
    what = "dilated convolution" + ("" if count == 1 else "s")
    not_counted = describe_exclusions(left_out)
    if count >= min_count:
        names = ", ".join(
            f"`{x.ref}` ({x.class_name} {describe_kernel(x.node)})" for x in found[:5]
        )
        more = f" and {count - 5} more" if count > 5 else ""
        return Verdict(
            True,
            count,
            f"The model has {count} {what}: {names}{more}.{not_counted}",
            None,
            min_count,
        )
    candidates = [
        x
        for x in ctx.calls_of(CONVS)
        if x.counts
        and all(axis.kernel > 1 and axis.filters for axis in kernel_axes(x.node))
        and all(axis.stride == 1 for axis in kernel_axes(x.node))
    ]
    hint = exclusion_hint(left_out)
    if hint is None and candidates:
        hint = (
            "Set dilation_rate=2 on a 3x3 convolution with stride 1, e.g. "
            f"`{candidates[-1].name}`: its window then spans 5x5 input positions with the same "
            "parameters."
        )
    return Verdict(
        False,
        count,
        f"The model has {count} {what}. Expected at least {min_count}.{not_counted}"
        f"{_undecided_note(left_out, count, min_count)}",
        hint,
        min_count,
    )


__all__ = ["dilated_conv_used", "only_separable_convs", "separable_conv_used"]
