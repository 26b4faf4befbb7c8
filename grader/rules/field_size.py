"""Rules about the receptive field."""

from __future__ import annotations

from typing import Any

from grader.errors import GraderError, ReceptiveFieldError

from .context import RuleContext
from .params import LayerName, Size
from .registry import Verdict, rule
from .schema import RuleSpec

_POOLING = frozenset({"MaxPooling2D", "AveragePooling2D", "MaxPooling1D", "AveragePooling1D"})


def _measured(size: list[int]) -> int | list[int]:
    """One number for a square field, ``[h, w]`` otherwise (1-D fields are one number)."""
    return size[0] if len(set(size)) == 1 else list(size)


def _fmt(size: Any) -> str:
    return "x".join(str(v) for v in size) if isinstance(size, list | tuple) else f"{size}x{size}"


@rule(
    "min_receptive_field",
    summary="Every unit at `end_point` (default: the last feature map before global pooling) "
    "sees at least `limit` pixels of the image along each axis (the whole image when the limit "
    "is larger).",
    params={
        "limit": Size(doc="the smallest field allowed: one size, or [height, width]"),
        "end_point": LayerName(default=None, doc="the layer where the field is measured"),
    },
)
def min_receptive_field(spec: RuleSpec, ctx: RuleContext) -> Verdict:
    """Measured: per axis, the smallest image footprint over the units of the end point.

    A unit's footprint is the set of image pixels that can influence it (zero padding and
    dilation gaps see nothing); its extent along an axis runs from the first to the last such
    pixel. The rule passes when every unit's extent reaches the limit, or the whole image along
    an axis shorter than the limit. One number when square, else [h, w].

    Only paths certain to carry the image count (``paths="certain"`` of
    `grader.receptive_field`): a branch that provably cannot change the end point (multiplied
    by a constant zero) adds nothing, and neither does one that carries anything only if some
    weight the architecture does not fix is non-zero (a kernel constrained to norm 0, a product
    with a learnt constant): a path that might be zero must not help satisfy a minimum.
    """
    limit = spec.params["limit"]
    try:
        shown = ctx.receptive_field(spec.params["end_point"])
    except GraderError as exc:
        return Verdict(False, None, f"The receptive field could not be computed: {exc.message}")
    where = f"`{shown.end_point}` ({shown.end_point_type})"
    try:
        report = ctx.receptive_field(spec.params["end_point"], paths="certain")
    except GraderError as exc:
        return Verdict(
            False,
            None,
            f"Which pixels the units of {where} are certain to see could not be computed: "
            f"{exc.message}",
        )
    uncounted = _uncounted(ctx, report) if report is not shown else ""
    footprint = report.footprint
    if footprint is None:
        return Verdict(
            False,
            None,
            f"Which pixels the units of {where} see could not be computed: {report.footprint_note}",
        )
    smallest = list(footprint.min)
    image = list(footprint.image)
    needed = [limit] * len(smallest) if isinstance(limit, int) else list(limit)
    if len(needed) != len(smallest):
        return Verdict(
            False,
            _measured(smallest),
            f"The receptive field at {where} has {len(smallest)} axes. "
            f"Expected {len(needed)} for the limit {_fmt(limit)}.",
        )
    # Nothing can see more than the image: a larger limit asks for all of it.
    required = [min(n, size) for n, size in zip(needed, image, strict=True)]
    wanted = f"at least {_fmt(required)} pixels"
    if required != needed:
        wanted += f" (the limit {_fmt(limit)}, capped at the {_fmt(image)} image)"
    formula = (
        f" (course formula: {_fmt(list(report.size))})"
        if report.has_formula and not report.is_global
        else ""
    )
    measured = _measured(smallest)
    if all(s >= n for s, n in zip(smallest, required, strict=True)):
        return Verdict(
            True,
            measured,
            f"Every unit of {where} sees at least {_fmt(smallest)} pixels of the {_fmt(image)} "
            f"image{formula}. Expected {wanted}.{uncounted}",
        )
    if footprint.varies:
        message = (
            f"The units of {where} see between {_fmt(smallest)} and {_fmt(list(footprint.max))} "
            f"pixels of the {_fmt(image)} image{formula}; the unit at "
            f"{tuple(footprint.min_unit)} sees the fewest."
        )
    else:
        message = (
            f"Every unit of {where} sees {_fmt(smallest)} pixels of the {_fmt(image)} "
            f"image{formula}."
        )
    message += f" Expected every unit to see {wanted}.{uncounted}"
    return Verdict(
        False,
        measured,
        message,
        _hint(report, tuple(required), pooling_allowed=not (ctx.forbidden_classes & _POOLING)),
    )


def _uncounted(ctx: RuleContext, report: Any) -> str:
    """A sentence naming the calls the certain field leaves out, and why (at most three)."""
    from grader.receptive_field import undecided_calls

    left_out = undecided_calls(ctx.graph, report.end_point)
    if not left_out:
        return ""
    named = "; ".join(f"`{node.layer.name}`: {why}" for node, why in left_out[:3])
    more = f" and {len(left_out) - 3} more" if len(left_out) > 3 else ""
    return f" Not counted, as they may carry nothing: {named}{more}."


def _hint(report: Any, required: tuple[int, ...], *, pooling_allowed: bool) -> str:
    """What zero padding hides, and what one change would make every unit see (traced)."""
    from grader.rf.what_if import extra_convs_to_reach, footprint_if

    footprint = report.footprint
    lines = []
    if report.has_formula and not report.is_global:
        formula = tuple(report.size)
        if all(f >= n for f, n in zip(formula, required, strict=True)):
            if all(m < n for m, n in zip(footprint.max, required, strict=True)):
                lines.append(
                    f"The course formula gives {_fmt(formula)}, but no unit sees that much: "
                    "taps that land in zero padding (or between dilation gaps outside the map) "
                    "show a unit nothing."
                )
            else:
                lines.append(
                    f"The course formula gives {_fmt(formula)}, but a unit near the border sees "
                    "only the part of its field inside the image: with `same` padding every "
                    "unit sees the whole image once the formula reaches about twice the image "
                    "size."
                )
    try:
        conv = footprint_if(report, "conv3x3")
        lines.append(
            f"One more 3x3 convolution after `{report.end_point}` would make every unit see at "
            f"least {_fmt(conv)}."
        )
        if pooling_allowed:
            pooled = footprint_if(report, "pool2x2")
            lines.append(
                f"A 2x2 pooling (stride 2) and a 3x3 convolution after it: {_fmt(pooled)}."
            )
        else:
            strided = footprint_if(report, "strided3x3")
            lines.append(
                f"A 3x3 convolution with stride 2 and a 3x3 convolution after it: {_fmt(strided)}."
            )
        try:
            from grader.rf.what_if import dilation_target

            target = dilation_target(report)
            dilated = footprint_if(report, "dilate_last")
            if target is not None:
                lines.append(f"Dilation rate 2 on `{target.layer}` (3x3): {_fmt(dilated)}.")
        except ReceptiveFieldError:
            pass
        count = extra_convs_to_reach(report, required)
        if count is not None:
            lines.append(
                f"Every unit sees {_fmt(required)} after {count} more 3x3 convolution"
                f"{'s' if count > 1 else ''} at the current resolution."
            )
    except ReceptiveFieldError:
        pass
    return "\n".join(lines)
