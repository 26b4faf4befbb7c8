"""What-if receptive fields for the hint engine: the size one small change would give.

Formulas, per axis, from the report of end-point ``E`` with size ``r`` and jump ``j``:

- ``"conv3x3"``: one more 3x3 convolution (stride 1) after ``E`` adds ``(3 - 1) * j``:
  ``r + 2 * j``.
- ``"pool2x2"``: a 2x2 pooling with stride 2 after ``E`` adds ``(2 - 1) * j`` and doubles the
  jump, then a 3x3 convolution adds ``2 * (2 * j)``: ``r + 5 * j``.
- ``"dilate_last"``: dilation 2 on the last 3x3 convolution ``L`` (stride 1, dilation 1) that
  every path from the input to ``E`` goes through widens its window from 3 to 5 positions, which
  adds ``2 * j_in(L)``: ``r + 2 * j_in(L)``. Exact when every path crosses ``L`` and ``L`` uses
  ``same`` padding (output sizes, hence downstream paddings, are unchanged) or the model has a
  single path; with ``valid`` padding and branches after ``L``, downstream ``same`` paddings may
  shift and the true value can differ by the change in alignment.

All three are independent of the input size, which is why they are formulas rather than
recomputations.
"""

from __future__ import annotations

from grader.errors import ReceptiveFieldError
from grader.rf.report import ReceptiveFieldReport, Row

HINT_KINDS = ("conv3x3", "pool2x2", "dilate_last")
_CONVOLUTIONS = {
    f"{prefix}{rank}D"
    for prefix in ("Conv", "SeparableConv", "DepthwiseConv")
    for rank in (1, 2, 3)
}


def rf_if_appended(report: ReceptiveFieldReport, kind: str) -> list[int]:
    """The receptive-field size, per axis, that a change at the end-point would give.

    Args:
        report: the current report (not global).
        kind: ``"conv3x3"``, ``"pool2x2"`` or ``"dilate_last"`` (see the module docstring).

    Returns:
        The new size per axis.

    Raises:
        ReceptiveFieldError: unknown kind, a global end-point, or no convolution to dilate.
    """
    if kind not in HINT_KINDS:
        raise ReceptiveFieldError(f"Unknown change {kind!r}. Expected one of {list(HINT_KINDS)}.")
    if report.is_global:
        raise ReceptiveFieldError(
            f"`{report.end_point}` already sees the whole input; no change can widen it."
        )
    size = [r for r in report.size if r is not None]
    jump = [j for j in report.jump if j is not None]
    if kind == "conv3x3":
        return [r + 2 * j for r, j in zip(size, jump, strict=True)]
    if kind == "pool2x2":
        return [r + 5 * j for r, j in zip(size, jump, strict=True)]
    target = dilation_target(report)
    if target is None:
        raise ReceptiveFieldError(
            f"No 3x3 convolution with stride 1 and dilation 1 lies on every path to "
            f"`{report.end_point}`. Expected one to dilate."
        )
    return [r + 2 * j for r, j in zip(size, target.j_in, strict=True)]


def dilation_target(report: ReceptiveFieldReport) -> Row | None:
    """The row of the convolution that ``"dilate_last"`` dilates, or ``None``.

    It is the last 3x3 convolution with stride 1 and dilation 1 that every path from the input
    to the end-point goes through.
    """
    for row in reversed(report.rows):
        if (
            row.type in _CONVOLUTIONS
            and row.on_every_path
            and all(k == 3 for k in row.k)
            and all(d == 1 for d in row.d)
            and all(s == 1 for s in row.s)
        ):
            return row
    return None
