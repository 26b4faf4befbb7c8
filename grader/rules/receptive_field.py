"""Rules about the receptive field."""

from __future__ import annotations

from typing import Any

from grader import hints
from grader.errors import GraderError

from .context import RuleContext
from .params import LayerName, Size
from .registry import Verdict, rule
from .schema import RuleSpec

_POOLING = frozenset({"MaxPooling2D", "AveragePooling2D", "MaxPooling1D", "AveragePooling1D"})


def _measured(size: list[int]) -> int | list[int]:
    """One number for a square field, ``[h, w]`` otherwise (1-D fields are one number)."""
    return size[0] if len(set(size)) == 1 else list(size)


def _fmt(size: Any) -> str:
    return "x".join(str(v) for v in size) if isinstance(size, list) else f"{size}x{size}"


@rule(
    "min_receptive_field",
    summary="The receptive field at `end_point` (default: before global pooling) is at least "
    "`limit` pixels along each axis.",
    params={
        "limit": Size(doc="the smallest field allowed: one size, or [height, width]"),
        "end_point": LayerName(default=None, doc="the layer where the field is measured"),
    },
)
def min_receptive_field(spec: RuleSpec, ctx: RuleContext) -> Verdict:
    """Measured: the field size at the end point, one number when square, else [h, w]."""
    limit = spec.params["limit"]
    try:
        report_obj = ctx.receptive_field(spec.params["end_point"])
    except GraderError as exc:
        return Verdict(False, None, f"The receptive field could not be computed: {exc.message}")
    report = report_obj.to_dict()
    size = [int(v) for v in report["size"]]
    needed = [limit] * len(size) if isinstance(limit, int) else list(limit)
    if len(needed) != len(size):
        return Verdict(
            False,
            _measured(size),
            f"The receptive field at `{report['end_point']}` has {len(size)} axes. "
            f"Expected {len(needed)} for the limit {_fmt(limit)}.",
        )
    measured = _measured(size)
    where = f"at `{report['end_point']}`"
    if report.get("end_point_type"):
        where += f" ({report['end_point_type']})"
    if all(s >= n for s, n in zip(size, needed, strict=True)):
        return Verdict(
            True, measured, f"The receptive field {where} is {_fmt(size)}, at least {_fmt(limit)}."
        )
    return Verdict(
        False,
        measured,
        f"The receptive field {where} is {_fmt(size)}. Expected at least {_fmt(limit)}.",
        hints.receptive_field_hint(
            report_obj, limit, pooling_allowed=not (ctx.forbidden_classes & _POOLING)
        ),
    )
