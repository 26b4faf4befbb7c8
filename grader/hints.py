"""Teaching hints computed from the architecture: where the parameters are, what a change buys.

A rule's message says what is wrong; its hint says what to do about it, with numbers worked out
for the student's own model (the params a SeparableConv2D would have instead of a Conv2D, the
receptive field one more 3x3 convolution would give). Hints never decide a verdict.

The functions take `grader.rules.context.LayerFacts` rows and receptive-field reports as dicts
(`ReceptiveFieldReport.to_dict()`), so they are pure arithmetic on what the analysis found.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from grader.rules.families import (
    CONVS,
    DEPTHWISE_CONVS,
    PLAIN_CONVS,
    SEPARABLE_CONVS,
    format_kernel,
    kernel_size,
)

if TYPE_CHECKING:
    from grader.rules.context import CallFacts, LayerFacts


@dataclass(frozen=True)
class SeparableSaving:
    """What replacing one plain convolution by a separable one would save.

    Attributes:
        layer: the plain convolution's name.
        class_name: ``Conv1D`` or ``Conv2D``.
        kernel: its kernel size.
        filters: its number of filters.
        params: its parameters now.
        separable_class: ``SeparableConv1D`` or ``SeparableConv2D``.
        separable_params: the parameters of that layer with the same filters, kernel and bias.
    """

    layer: str
    class_name: str
    kernel: tuple[int, ...]
    filters: int
    params: int
    separable_class: str
    separable_params: int

    @property
    def saved(self) -> int:
        """Parameters the replacement saves."""
        return self.params - self.separable_params


def separable_saving(layer: LayerFacts) -> SeparableSaving | None:
    """Parameters of the SeparableConv equivalent of a plain Conv1D/Conv2D with a kernel > 1.

    A SeparableConv (depth multiplier 1) holds a ``k x k`` depthwise kernel per input channel,
    a ``1 x 1`` pointwise kernel from the input channels to the filters, and the same bias.
    Returns None for other layers, 1x1 kernels, or unknown input channels.
    """
    if layer.class_name not in {"Conv1D", "Conv2D"} or layer.input_shape is None:
        return None
    kernel = kernel_size(layer.class_name, layer.config)
    if all(k == 1 for k in kernel):
        return None
    channels_first = layer.config.get("data_format") == "channels_first"
    channels = layer.input_shape[0] if channels_first else layer.input_shape[-1]
    filters = layer.config.get("filters")
    if not isinstance(channels, int) or not isinstance(filters, int):
        return None
    bias = filters if layer.config.get("use_bias", True) else 0
    separable = channels * math.prod(kernel) + channels * filters + bias
    return SeparableSaving(
        layer=layer.name,
        class_name=layer.class_name,
        kernel=kernel,
        filters=filters,
        params=layer.params,
        separable_class="Separable" + layer.class_name,
        separable_params=separable,
    )


def separable_hint(layers: Sequence[LayerFacts], offenders: Sequence[str] | None = None) -> str:
    """Which plain convolutions to replace by separable ones, and the parameters each saves.

    Args:
        layers: the model's layers.
        offenders: restrict to these layer names (all plain convolutions when None).
    """
    savings = [
        s
        for layer in layers
        if (offenders is None or layer.name in offenders)
        and (s := separable_saving(layer)) is not None
    ]
    if not savings:
        return ""
    lines = [
        f"Replace `{s.layer}` ({s.class_name} {format_kernel(s.kernel)}, {s.params:,} params) "
        f"by {s.separable_class}({s.filters}, {format_kernel(s.kernel)}): "
        f"{s.separable_params:,} params, {s.saved:,} fewer."
        for s in savings
    ]
    if len(savings) > 1:
        total = sum(s.saved for s in savings)
        lines.append(f"Together: {total:,} fewer parameters.")
    return "\n".join(lines)


def degenerate_separable_hint(calls: Sequence[CallFacts]) -> str:
    """What to change on separable or depthwise calls whose kernel filters nothing spatially.

    Args:
        calls: calls a rule left out; only separable and depthwise ones whose kernel filters
            along no axis are considered.
    """
    from grader.rules.kernels import filters_spatially, kernel_axes

    one_by_one: dict[str, list[str]] = {}  # class -> layer names with a 1x1 kernel
    lines = []
    seen: set[str] = set()
    for call in calls:
        if call.class_name not in SEPARABLE_CONVS | DEPTHWISE_CONVS or call.name in seen:
            continue
        if call.dead or filters_spatially(call.node):
            continue
        seen.add(call.name)
        axes = kernel_axes(call.node)
        if all(axis.kernel == 1 for axis in axes):
            one_by_one.setdefault(call.class_name, []).append(f"`{call.name}`")
        else:
            lines.append(
                f"Apply `{call.name}` ({call.class_name}) to a larger feature map: on its "
                f"{'x'.join(str(a.length) for a in axes)} input only one tap of its window "
                "reads the input."
            )
    for class_name, names in one_by_one.items():
        lines.insert(
            0,
            f"Give {', '.join(names)} ({class_name}) a 3x3 kernel (kernel_size=3): a 1x1 "
            "depthwise kernel only scales each channel.",
        )
    return "\n".join(lines)


def largest_layers(layers: Sequence[LayerFacts], top: int = 3) -> list[tuple[LayerFacts, float]]:
    """The `top` layers holding most parameters, with their share of all parameters (0..1)."""
    total = sum(layer.params for layer in layers)
    ranked = sorted((x for x in layers if x.params > 0), key=lambda x: x.params, reverse=True)
    return [(layer, layer.params / total if total else 0.0) for layer in ranked[:top]]


def params_hint(layers: Sequence[LayerFacts]) -> str:
    """Where the parameters are (top 3 layers and their share) and what separable convs save."""
    top = largest_layers(layers)
    if not top:
        return ""
    parts = ", ".join(
        f"`{layer.name}` ({layer.class_name}) {layer.params:,} ({share:.0%})"
        for layer, share in top
    )
    lines = [f"Most parameters are in {parts}."]
    # Only savings that matter: replacing a stem convolution to save 741 of 275,000 is noise.
    total = sum(layer.params for layer in layers)
    worth = [
        s.layer
        for layer in layers
        if (s := separable_saving(layer)) is not None and s.saved >= 0.01 * total
    ]
    if worth:
        lines.append(separable_hint(layers, worth))
    return "\n".join(lines)


def format_rate(rate: float) -> str:
    """A rate as messages show it: two decimals (``0.25``, ``0.10``), more if needed (``0.001``)."""
    two = f"{rate:.2f}"
    return two if abs(float(two) - rate) < 1e-12 else f"{rate:g}"


def dropout_hint(offenders: Sequence[tuple[LayerFacts, str, float]], limit: float) -> str:
    """Which dropout rates to lower, worst first."""
    ordered = sorted(offenders, key=lambda o: o[2], reverse=True)
    lines = [
        f"Lower {'the rate' if what == 'rate' else '`' + what + '`'} of `{layer.name}` "
        f"({layer.class_name}) from {format_rate(rate)} to at most {format_rate(limit)}."
        for layer, what, rate in ordered
    ]
    lines.append(
        "Batch normalization and data augmentation regularize without discarding activations."
    )
    return "\n".join(lines)


# --- receptive field -------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceptiveFieldOptions:
    """What the receptive field at the end point would become after one change.

    Attributes:
        stopped_growing_at: the last layer (up to the end point) that grew the field, or None.
        current: the field size now, per axis.
        jump: the distance between neighbouring end-point units in input pixels, per axis.
        conv3x3: size after one more 3x3 convolution (stride 1) at the end point.
        pool2x2: size after a 2x2 pooling with stride 2 at the end point.
        conv3x3_after_pool: size after that pooling and then one 3x3 convolution.
        dilate_last: ``(layer, size)``: size if the last 3x3 convolution had dilation 2, or None.
    """

    @property
    def strided_then_conv3x3(self) -> tuple[int, ...]:
        """Size after a 3x3 stride-2 convolution and then a 3x3 convolution: ``r + 6 * jump``."""
        return tuple(r + 2 * j + 2 * (2 * j) for r, j in zip(self.current, self.jump, strict=True))

    stopped_growing_at: str | None
    current: tuple[int, ...]
    jump: tuple[int, ...]
    conv3x3: tuple[int, ...]
    pool2x2: tuple[int, ...]
    conv3x3_after_pool: tuple[int, ...]
    dilate_last: tuple[str, tuple[int, ...]] | None


def receptive_field_options(report: Any) -> ReceptiveFieldOptions:
    """Work out the receptive field after each candidate change.

    Args:
        report: a `grader.receptive_field.ReceptiveFieldReport`, or its `to_dict()` form.

    With a report object the sizes come from `grader.receptive_field.rf_if_appended` (the
    receptive-field module's own what-if formulas, aware of branches); with a dict they are
    worked out from its rows: appending a window of kernel ``k`` and dilation ``d`` adds
    ``(k - 1) * d * jump``; a stride ``s`` multiplies the jump by ``s``; dilating a 3x3
    convolution (stride 1) by 2 widens its contribution from ``2 * j_in`` to ``4 * j_in``, and
    layers after it keep theirs because the jump does not change.
    """
    if hasattr(report, "rows"):
        return _options_from_report(report)
    return _options_from_rows(report)


def _options_from_rows(report: Mapping[str, Any]) -> ReceptiveFieldOptions:
    size = tuple(int(v) for v in report["size"])
    jump = tuple(int(v) for v in report["jump"])
    rows: list[Mapping[str, Any]] = list(report.get("layers") or [])
    conv3 = tuple(r + 2 * j for r, j in zip(size, jump, strict=True))
    pool2 = tuple(r + 1 * j for r, j in zip(size, jump, strict=True))
    conv_after_pool = tuple(r + 2 * (2 * j) for r, j in zip(pool2, jump, strict=True))
    dilate: tuple[str, tuple[int, ...]] | None = None
    for row in reversed(rows):
        if _dilatable(row["type"], row["k"], row["d"], row["s"]) and row.get("on_every_path", True):
            grown = tuple(r + 2 * j for r, j in zip(size, row["j_in"], strict=True))
            dilate = (row["layer"], grown)
            break
    return ReceptiveFieldOptions(
        _last_growth(rows), size, jump, conv3, pool2, conv_after_pool, dilate
    )


def _options_from_report(report: Any) -> ReceptiveFieldOptions:
    from grader.errors import ReceptiveFieldError
    from grader.receptive_field import rf_if_appended

    size = tuple(int(v) for v in report.size)
    jump = tuple(int(v) for v in report.jump)
    rows = [row.to_dict() for row in report.rows]
    conv3 = tuple(rf_if_appended(report, "conv3x3"))
    conv_after_pool = tuple(rf_if_appended(report, "pool2x2"))
    pool2 = tuple(r + j for r, j in zip(size, jump, strict=True))
    dilate: tuple[str, tuple[int, ...]] | None = None
    try:
        grown = tuple(rf_if_appended(report, "dilate_last"))
    except ReceptiveFieldError:
        grown = ()
    if grown:
        # rf_if_appended dilates the last 3x3 stride-1 convolution on every path: name it.
        for row in reversed(report.rows):
            if row.on_every_path and _dilatable(row.type, row.k, row.d, row.s):
                dilate = (row.layer, grown)
                break
    return ReceptiveFieldOptions(
        _last_growth(rows), size, jump, conv3, pool2, conv_after_pool, dilate
    )


def _dilatable(layer_type: str, k: Sequence[int], d: Sequence[int], s: Sequence[int]) -> bool:
    return (
        layer_type in CONVS
        and all(v == 3 for v in k)
        and all(v == 1 for v in d)
        and all(v == 1 for v in s)
    )


def _last_growth(rows: Sequence[Mapping[str, Any]]) -> str | None:
    """The last row whose layer made the field larger (where it stopped growing)."""
    last = None
    for row in rows:
        if any(o > i for o, i in zip(row["r_out"], row["r_in"], strict=False)):
            last = row["layer"]
    return last


def _fmt(size: Sequence[int]) -> str:
    return "x".join(str(v) for v in size)


def receptive_field_hint(
    report: Any, limit: int | Sequence[int], *, pooling_allowed: bool = True
) -> str:
    """Where the field stopped growing and what one more layer, a pooling or dilation gives.

    Args:
        report: a `ReceptiveFieldReport` or its `to_dict()` form, at the rule's end point.
        limit: the size the rule asks for (one number, or per axis).
        pooling_allowed: False when the rule set forbids pooling: a strided 3x3 convolution is
            suggested instead (it adds ``2 * jump`` and doubles the jump, so a 3x3 convolution
            after it adds ``4 * jump`` more).
    """
    if getattr(report, "is_global", False) or (isinstance(report, Mapping) and report["global"]):
        return ""
    options = receptive_field_options(report)
    end_point = report["end_point"] if isinstance(report, Mapping) else report.end_point
    lines = []
    if options.stopped_growing_at is not None:
        lines.append(
            f"The receptive field last grows at `{options.stopped_growing_at}` and is "
            f"{_fmt(options.current)} at `{end_point}` (jump {_fmt(options.jump)})."
        )
    lines.append(f"One more 3x3 convolution at the end point would give {_fmt(options.conv3x3)}.")
    if pooling_allowed:
        lines.append(
            f"A 2x2 pooling (stride 2) would give {_fmt(options.pool2x2)}, and a 3x3 "
            f"convolution after it {_fmt(options.conv3x3_after_pool)}."
        )
    else:
        lines.append(
            f"A 3x3 convolution with stride 2 would give {_fmt(options.conv3x3)}, and a 3x3 "
            f"convolution after it {_fmt(options.strided_then_conv3x3)}."
        )
    if options.dilate_last is not None:
        layer, grown = options.dilate_last
        lines.append(f"Dilation rate 2 on `{layer}` (3x3) would give {_fmt(grown)}.")
    needed = (limit, limit) if isinstance(limit, int) else tuple(limit)
    if options.jump and all(j > 0 for j in options.jump):
        convs = max(
            math.ceil(max(0, n - r) / (2 * j))
            for n, r, j in zip(needed, options.current, options.jump, strict=False)
        )
        if convs > 0:
            lines.append(
                f"Reaching {_fmt(needed)} takes {convs} more 3x3 convolution"
                f"{'s' if convs > 1 else ''} at the current resolution."
            )
    return "\n".join(lines)


def plain_convs(layers: Sequence[LayerFacts]) -> list[LayerFacts]:
    """The plain (non-separable) convolutions of a model, in call order."""
    return [layer for layer in layers if layer.class_name in PLAIN_CONVS]
