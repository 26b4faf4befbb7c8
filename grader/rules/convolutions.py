"""Rules about convolution types: separable convolutions, plain convolutions, dilation."""

from __future__ import annotations

from grader import hints

from .context import LayerFacts, RuleContext
from .kinds import (
    CONVS,
    DEPTHWISE_CONVS,
    PLAIN_CONVS,
    SEPARABLE_CONVS,
    dilation_rate,
    format_kernel,
    kernel_size,
)
from .params import Bool, Int
from .registry import Verdict, rule
from .schema import RuleSpec


def _is_pointwise(layer: LayerFacts) -> bool:
    return layer.class_name in PLAIN_CONVS and all(
        k == 1 for k in kernel_size(layer.class_name, layer.config)
    )


def _depthwise_separable(ctx: RuleContext) -> list[LayerFacts]:
    """DepthwiseConv layers whose output feeds only 1x1 convolutions: separable, factored by hand.

    Activations or batch normalization between the two halves are allowed (they are what
    MobileNet puts there).
    """
    by_name = {layer.name: layer for layer in ctx.layers}
    passthrough = {"BatchNormalization", "Activation", "ReLU", "LeakyReLU", "PReLU", "ELU"}
    found = []
    for layer in ctx.layers_of(DEPTHWISE_CONVS):
        frontier = [n.id for n in ctx.graph.nodes_of(layer.name)]
        ok = bool(frontier)
        while frontier and ok:
            node_id = frontier.pop()
            consumers = ctx.graph.consumers(node_id)
            if not consumers:
                ok = False
            for consumer in consumers:
                facts = by_name.get(consumer.layer.name)
                if facts is not None and _is_pointwise(facts):
                    continue
                if consumer.layer.class_name in passthrough:
                    frontier.append(consumer.id)
                else:
                    ok = False
        if ok:
            found.append(layer)
    return found


@rule(
    "separable_conv_used",
    summary="The model uses at least `min_count` depthwise-separable convolutions.",
    params={
        "min_count": Int(default=1, minimum=1, doc="separable convolutions required"),
        "include_depthwise": Bool(
            default=True,
            doc="count a DepthwiseConv followed by a 1x1 convolution as separable",
        ),
    },
)
def separable_conv_used(spec: RuleSpec, ctx: RuleContext) -> Verdict:
    """Measured: the number of separable convolutions (factored by hand ones included)."""
    min_count = spec.params["min_count"]
    found = ctx.layers_of(SEPARABLE_CONVS)
    if spec.params["include_depthwise"]:
        found += _depthwise_separable(ctx)
    count = len(found)
    what = "separable convolution" + ("" if count == 1 else "s")
    if count >= min_count:
        names = ", ".join(f"`{layer.name}`" for layer in found[:5])
        more = f" and {count - 5} more" if count > 5 else ""
        return Verdict(
            True, count, f"The model has {count} {what} ({names}{more}).", None, min_count
        )
    hint = hints.separable_hint(ctx.layers) or (
        "Use SeparableConv2D layers (a depthwise 3x3 filter per channel, then a 1x1 pointwise "
        "convolution) for the feature extractor."
    )
    return Verdict(
        False,
        count,
        f"The model has {count} {what}. Expected at least {min_count}.",
        hint,
        min_count,
    )


@rule(
    "only_separable_convs",
    summary="Plain convolutions only as 1x1 (pointwise), optionally also as the first layer.",
    params={
        "allow_first_layer": Bool(
            default=False, doc="the first convolution (reading the image) may be plain"
        ),
    },
)
def only_separable_convs(spec: RuleSpec, ctx: RuleContext) -> Verdict:
    """Measured: the names of plain convolutions larger than 1x1 (bar an exempt first one)."""
    allow_first = spec.params["allow_first_layer"]
    convs = ctx.layers_of(CONVS)
    exempt = convs[0].name if allow_first and convs else None
    offenders = [
        layer
        for layer in ctx.layers_of(PLAIN_CONVS)
        if not _is_pointwise(layer) and layer.name != exempt
    ]
    allowed = "a 1x1 kernel" + (
        " (the first convolution may be any plain one)" if allow_first else ""
    )
    if not offenders:
        exempted = (
            f" (`{exempt}`, the first convolution, is exempt)"
            if exempt and not _is_pointwise(convs[0]) and convs[0].class_name in PLAIN_CONVS
            else ""
        )
        return Verdict(True, [], f"No plain convolution larger than 1x1{exempted}.")
    worst = offenders[0]
    kernel = format_kernel(kernel_size(worst.class_name, worst.config))
    more = (
        f" ({len(offenders) - 1} more: {', '.join(f'`{x.name}`' for x in offenders[1:])})"
        if len(offenders) > 1
        else ""
    )
    return Verdict(
        False,
        [layer.name for layer in offenders],
        f"{worst.label} has a {kernel} kernel{more}. Expected separable convolutions; "
        f"a plain convolution only with {allowed}.",
        hints.separable_hint(ctx.layers, [x.name for x in offenders]) or None,
        None,
    )


@rule(
    "dilated_conv_used",
    summary="At least `min_count` convolutions have a dilation rate above 1.",
    params={"min_count": Int(default=1, minimum=1, doc="dilated convolutions required")},
)
def dilated_conv_used(spec: RuleSpec, ctx: RuleContext) -> Verdict:
    """Measured: the number of convolutions with a dilation rate above 1."""
    min_count = spec.params["min_count"]
    found = [
        layer
        for layer in ctx.layers_of(CONVS)
        if any(d > 1 for d in dilation_rate(layer.class_name, layer.config))
    ]
    count = len(found)
    what = "dilated convolution" + ("" if count == 1 else "s")
    if count >= min_count:
        names = ", ".join(
            f"`{x.name}` (rate {format_kernel(dilation_rate(x.class_name, x.config))})"
            for x in found[:5]
        )
        return Verdict(True, count, f"The model has {count} {what}: {names}.", None, min_count)
    candidates = [
        x
        for x in ctx.layers_of(CONVS)
        if all(k > 1 for k in kernel_size(x.class_name, x.config))
        and all(s == 1 for s in _strides(x))
    ]
    hint = None
    if candidates:
        hint = (
            "Set dilation_rate=2 on a 3x3 convolution with stride 1, e.g. "
            f"`{candidates[-1].name}`: its window then spans 5x5 input positions with the same "
            "parameters."
        )
    return Verdict(
        False,
        count,
        f"The model has {count} {what}. Expected at least {min_count}.",
        hint,
        min_count,
    )


def _strides(layer: LayerFacts) -> tuple[int, ...]:
    from .kinds import as_tuple, spatial_rank

    return as_tuple(layer.config.get("strides", 1), spatial_rank(layer.class_name))
