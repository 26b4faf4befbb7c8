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

The same changes on the footprint (`footprint_if`, `extra_convs_to_reach`) are traced exactly
instead: what every unit would see, borders and padding included, is what a rule needs.
"""

from __future__ import annotations

from dataclasses import replace

from grader.errors import ReceptiveFieldError
from grader.graph import Layer, ModelGraph, Node
from grader.rf.footprint import append, summarize, trace
from grader.rf.projections import Footprint
from grader.rf.report import ReceptiveFieldReport, Row

HINT_CHANGES = ("conv3x3", "pool2x2", "dilate_last")
_CONVOLUTIONS = {
    f"{prefix}{rank}D"
    for prefix in ("Conv", "SeparableConv", "DepthwiseConv")
    for rank in (1, 2, 3)
}


def rf_if_appended(report: ReceptiveFieldReport, change: str) -> list[int]:
    """The receptive-field size, per axis, that a change at the end-point would give.

    Args:
        report: the current report (not global).
        change: ``"conv3x3"``, ``"pool2x2"`` or ``"dilate_last"`` (see the module docstring).

    Returns:
        The new size per axis.

    Raises:
        ReceptiveFieldError: unknown change, a global end-point, or no convolution to dilate.
    """
    if change not in HINT_CHANGES:
        raise ReceptiveFieldError(
            f"Unknown change {change!r}. Expected one of {list(HINT_CHANGES)}."
        )
    if report.is_global:
        raise ReceptiveFieldError(
            f"`{report.end_point}` already sees the whole input; no change can widen it."
        )
    size = [r for r in report.size if r is not None]
    jump = [j for j in report.jump if j is not None]
    if change == "conv3x3":
        return [r + 2 * j for r, j in zip(size, jump, strict=True)]
    if change == "pool2x2":
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


# --- what-ifs on the footprint -----------------------------------------------------------------

FOOTPRINT_CHANGES = ("conv3x3", "pool2x2", "strided3x3", "dilate_last")
_MAX_EXTRA_CONVS = 64


def _virtual(fp: Footprint, channels: int | None, cls: str, name: str, **config: object) -> Node:
    """A layer call appended after the end point, for a what-if (never part of a graph)."""
    rank = len(fp.dims)
    kernel = config.get("kernel_size", config.get("pool_size", 1))
    strides = config.get("strides", 1)
    assert isinstance(kernel, int) and isinstance(strides, int)
    # `same` padding: ceil(n / stride) positions.
    out = tuple(-(-n // strides) for n in fp.dims)
    layer = Layer(name, f"{cls}{rank}D", {"padding": "same", **config})
    return Node(-1, layer, (0,), ((*fp.dims, channels),), (*out, channels))


def _after(fp: Footprint, channels: int | None, change: str) -> Footprint:
    conv = {"kernel_size": 3, "strides": 1, "filters": channels or 1}
    if change == "conv3x3":
        return append(fp, _virtual(fp, channels, "Conv", "extra_conv", **conv))
    if change == "pool2x2":
        pooled = append(fp, _virtual(fp, channels, "MaxPooling", "extra_pool", pool_size=2,
                                     strides=2))  # fmt: skip
        return append(pooled, _virtual(pooled, channels, "Conv", "extra_conv", **conv))
    if change == "strided3x3":
        strided = append(fp, _virtual(fp, channels, "Conv", "strided", **{**conv, "strides": 2}))
        return append(strided, _virtual(strided, channels, "Conv", "extra_conv", **conv))
    raise ReceptiveFieldError(
        f"Unknown change {change!r}. Expected one of {list(FOOTPRINT_CHANGES)}."
    )


def _channels(report: ReceptiveFieldReport) -> int | None:
    assert report.trace is not None
    value = report.trace.graph.nodes[report.trace.node_id].output_shape[-1]
    return value if isinstance(value, int) else None


def footprint_if(report: ReceptiveFieldReport, change: str) -> tuple[int, ...]:
    """The smallest footprint extent over the units, per axis, after one change.

    Changes: ``conv3x3`` (one more 3x3 convolution, ``same`` padding, after the end point),
    ``pool2x2`` (a 2x2 max pooling with stride 2 and a 3x3 convolution), ``strided3x3`` (a 3x3
    convolution with stride 2 and a 3x3 convolution), ``dilate_last`` (dilation rate 2 on the
    `dilation_target`, when its padding is ``same`` so that no size changes). Each is traced
    exactly, like the model Keras would build with the change.

    Raises:
        ReceptiveFieldError: no footprint, an unknown change, or nothing to dilate.
    """
    if report.trace is None:
        raise ReceptiveFieldError(
            f"Which pixels the units of `{report.end_point}` see is unknown: "
            f"{report.footprint_note}"
        )
    if change == "dilate_last":
        return summarize(_redilated(report)).min
    return summarize(_after(report.trace.footprint, _channels(report), change)).min


def _redilated(report: ReceptiveFieldReport) -> Footprint:
    assert report.trace is not None
    target = dilation_target(report)
    graph: ModelGraph = report.trace.graph
    if target is None or graph.nodes_of(target.layer)[0].layer.config.get("padding") != "same":
        raise ReceptiveFieldError(
            f"No 3x3 convolution with stride 1, dilation 1 and `same` padding lies on every "
            f"path to `{report.end_point}`. Expected one to dilate."
        )
    nodes = []
    for node in graph.nodes:
        if node.layer.name == target.layer:
            config = {**node.layer.config, "dilation_rate": 2}
            node = replace(node, layer=replace(node.layer, config=config))
        nodes.append(node)
    changed = replace(graph, nodes=tuple(nodes))
    return trace(changed, report.trace.node_id, report.trace.input_id, report.trace.influences)


def extra_convs_to_reach(report: ReceptiveFieldReport, needed: tuple[int, ...]) -> int | None:
    """How many more 3x3 convolutions (``same``, stride 1) make every unit see ``needed``.

    None when none is needed, or when even `_MAX_EXTRA_CONVS` would not do.
    """
    if report.trace is None:
        return None
    fp = report.trace.footprint
    channels = _channels(report)
    if all(m >= n for m, n in zip(summarize(fp).min, needed, strict=True)):
        return None
    for count in range(1, _MAX_EXTRA_CONVS + 1):
        fp = _after(fp, channels, "conv3x3")
        if all(m >= n for m, n in zip(summarize(fp).min, needed, strict=True)):
            return count
    return None
