"""The receptive-field report: the end-point's field and the hand-calculation rows leading to it.

Per-axis values are always lists, one entry per spatial axis (``[h, w]`` for images, ``[n]`` for
1D signals), even when the axes agree: a reader never has to guess whether ``3`` means ``3x3``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from grader.errors import ReceptiveFieldError
from grader.rf.projections import Footprint, FootprintSummary


@dataclass(frozen=True)
class Row:
    """One node on the paths from the image input to the end-point, as a student computes it.

    A window layer (convolution, pooling, zero padding, cropping) shows its kernel ``k``, dilation
    ``d``, stride ``s`` and left padding ``p`` (negative for cropping); any other layer shows
    ``k = d = s = 1`` and ``p = 0``. For a merge, ``r_in`` is the largest and ``start_in`` the
    smallest over its inputs, so ``r_out - r_in`` shows what the alignment of the paths adds.

    Attributes:
        layer: the layer's name.
        type: the layer's class.
        k, d, s, p: window geometry per axis.
        n_in, n_out: sizes per axis (``None`` when unknown).
        j_in, j_out: jumps per axis.
        r_in, r_out: receptive-field sizes per axis.
        start_in, start_out: left edge of unit 0's field per axis (``None`` when unknown).
        inputs: names of the producers, in call order.
        on_every_path: whether every path from the image input to the end-point goes through it.
    """

    layer: str
    type: str
    k: tuple[int, ...]
    d: tuple[int, ...]
    s: tuple[int, ...]
    p: tuple[int | None, ...]
    n_in: tuple[int | None, ...]
    n_out: tuple[int | None, ...]
    j_in: tuple[int, ...]
    j_out: tuple[int, ...]
    r_in: tuple[int, ...]
    r_out: tuple[int, ...]
    start_in: tuple[int | None, ...]
    start_out: tuple[int | None, ...]
    inputs: tuple[str, ...] = ()
    on_every_path: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The row as JSON: every per-axis value a list, plus ``inputs`` and ``on_every_path``."""
        return {
            "layer": self.layer,
            "type": self.type,
            **{
                key: list(getattr(self, key))
                for key in (
                    "k", "d", "s", "p", "n_in", "n_out", "j_in", "j_out",
                    "r_in", "r_out", "start_in", "start_out",
                )
            },
            "inputs": list(self.inputs),
            "on_every_path": self.on_every_path,
        }  # fmt: skip


@dataclass(frozen=True)
class TraceContext:
    """What a what-if needs to trace the footprint again (`grader.rf.what_if`).

    Attributes:
        graph: the model graph (a `grader.graph.ModelGraph`).
        node_id: the end point's node.
        input_id: the image input's node.
        footprint: the end point's `Footprint`.
        influences: the predicate the trace used, if any.
    """

    graph: Any
    node_id: int
    input_id: int
    footprint: Footprint
    influences: Any = None


@dataclass(frozen=True)
class ReceptiveFieldReport:
    """The receptive field of one end-point layer with respect to the image input.

    Two views of the same field. The *course formula* (Araujo, Norris and Sim): output unit
    ``u`` (one index per axis) of the end-point sees input positions
    ``[start + u * jump, start + u * jump + size - 1]`` along each axis, padding included, so
    ``start`` is negative when padding puts part of unit 0's field outside the image; it applies
    to translation-invariant networks only (``size`` is all ``None`` otherwise, and
    ``formula_note`` says which layer stops it). The *footprint*: which image pixels can
    influence each unit, exactly, per position (`grader.rf.footprint`); ``footprint`` holds its
    smallest and largest extent over the units (None when it cannot be traced:
    ``footprint_note`` says why).

    When the end-point comes after global pooling (or anything else that mixes every position),
    ``is_global`` is True and every unit sees the same positions: ``size`` is their extent (less
    any trailing positions that ``valid`` strides left unread, so it is exact), ``start`` the
    first position and ``jump`` equals ``size``.

    Attributes:
        end_point: the end-point layer's name.
        end_point_type: its class.
        input_name: the image input the field refers to.
        is_global: every unit sees the whole input.
        size, jump, start: the course formula per axis (None where it does not apply).
        input_size: the image's spatial size per axis (``None`` when unknown).
        output_size: the end-point's spatial size per axis (empty when global).
        rows: nodes on the paths from the input to the end-point, in topological order (only
            those the course formula describes).
        formula_note: why the course formula does not apply, naming the layer, or None.
        footprint: the extents of the units' footprints, or None.
        footprint_note: why the footprint could not be traced, or None.
        unchanged_after: for the default end point, the layers between it and the head, which
            keep its field (batch normalisation, activations, dropout).
        trace: what the what-if hints need, or None without a footprint.
    """

    end_point: str
    end_point_type: str
    input_name: str
    is_global: bool
    size: tuple[int | None, ...]
    jump: tuple[int | None, ...]
    start: tuple[int | None, ...]
    input_size: tuple[int | None, ...]
    output_size: tuple[int | None, ...]
    rows: tuple[Row, ...]
    formula_note: str | None = None
    footprint: FootprintSummary | None = None
    footprint_note: str | None = None
    unchanged_after: tuple[str, ...] = ()
    trace: TraceContext | None = field(default=None, compare=False, repr=False)

    @property
    def has_formula(self) -> bool:
        """Whether the course formula applies (every axis has a size)."""
        return all(v is not None for v in self.size) if self.size else False

    def interval(self, unit: Sequence[int], *, clip: bool = False) -> tuple[tuple[int, int], ...]:
        """The input interval ``(first, last)``, inclusive, that output ``unit`` sees per axis.

        Args:
            unit: one output index per spatial axis.
            clip: clip the interval to the image (padding positions are not image positions).

        Raises:
            ReceptiveFieldError: the field is global, or its start or the input size is unknown.
        """
        if len(unit) != len(self.size):
            raise ReceptiveFieldError(
                f"Expected {len(self.size)} unit indices (one per spatial axis). Received {unit}."
            )
        out = []
        for u, size, jump, start, n in zip(
            unit, self.size, self.jump, self.start, self.input_size, strict=True
        ):
            if self.is_global:
                if start is None or size is None:
                    raise ReceptiveFieldError("The input size is unknown; no interval to give.")
                out.append((start, start + size - 1))  # already within the image
                continue
            if size is None or jump is None:
                raise ReceptiveFieldError(
                    f"The course formula does not apply at `{self.end_point}`: {self.formula_note}"
                )
            if start is None:
                raise ReceptiveFieldError(
                    f"The alignment of `{self.end_point}` depends on the unknown input size."
                )
            first, last = start + u * jump, start + u * jump + size - 1
            if clip:
                if n is None:
                    raise ReceptiveFieldError("The input size is unknown; cannot clip.")
                first, last = max(first, 0), min(last, n - 1)
            out.append((first, last))
        return tuple(out)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON (see the module docstring of `grader.receptive_field`)."""
        return {
            "end_point": self.end_point,
            "end_point_type": self.end_point_type,
            "input": self.input_name,
            "size": list(self.size),
            "jump": list(self.jump),
            "start": list(self.start),
            "global": self.is_global,
            "input_size": list(self.input_size),
            "output_size": list(self.output_size),
            "layers": [row.to_dict() for row in self.rows],
            "formula_note": self.formula_note,
            "footprint": None if self.footprint is None else self.footprint.to_dict(),
            "footprint_note": self.footprint_note,
            "unchanged_after": list(self.unchanged_after),
        }


def _axes(values: Sequence[Any]) -> str:
    """``3`` when every axis agrees, else ``3x1``; ``?`` for unknown."""
    text = ["?" if v is None else str(v) for v in values]
    return text[0] if len(set(text)) == 1 else "x".join(text)


def format_table(report: ReceptiveFieldReport) -> str:
    """The hand-calculation table as fixed-width text, one line per row, then a summary.

    Columns: layer, type, k, d, s, p, n_in -> n_out, j_in -> j_out, r_in -> r_out. A value shows
    once when every axis agrees, else per axis joined by ``x`` (``3x1``).
    """
    header = (
        "layer",
        "type",
        "k",
        "d",
        "s",
        "p",
        "n_in -> n_out",
        "j_in -> j_out",
        "r_in -> r_out",
    )
    lines = [header]
    for row in report.rows:
        lines.append(
            (
                row.layer,
                row.type,
                _axes(row.k),
                _axes(row.d),
                _axes(row.s),
                _axes(row.p),
                f"{_axes(row.n_in)} -> {_axes(row.n_out)}",
                f"{_axes(row.j_in)} -> {_axes(row.j_out)}",
                f"{_axes(row.r_in)} -> {_axes(row.r_out)}",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    numeric = set(range(2, len(header)))
    text = []
    for index, line in enumerate(lines):
        cells = [
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
            for i, cell in enumerate(line)
        ]
        text.append("  ".join(cells).rstrip())
        if index == 0:
            text.append("  ".join("-" * w for w in widths))
    size = " x ".join("?" if v is None else str(v) for v in report.size)
    if report.is_global:
        summary = f"`{report.end_point}` sees the whole input ({size})."
    elif report.has_formula:
        jump = " x ".join("?" if v is None else str(v) for v in report.jump)
        summary = f"Receptive field of `{report.end_point}`: {size} (jump {jump})."
    else:
        summary = f"The course formula stops before `{report.end_point}`: {report.formula_note}"
    text.append(summary)
    if report.footprint is not None and not report.is_global:
        text.append(footprint_sentence(report))
    return "\n".join(text)


def pixels(values: Sequence[int | None]) -> str:
    """``26x26`` (per axis, joined by ``x``)."""
    return "x".join("?" if v is None else str(v) for v in values)


def footprint_sentence(report: ReceptiveFieldReport) -> str:
    """What the units of the end point see of the image, in one sentence."""
    fp = report.footprint
    if fp is None:
        return (
            f"Which pixels the units of `{report.end_point}` see is unknown: "
            f"{report.footprint_note}"
        )
    image = pixels(fp.image)
    if not fp.varies:
        return (
            f"Every unit of `{report.end_point}` sees {pixels(fp.min)} pixels of the {image} image."
        )
    return (
        f"The units of `{report.end_point}` see between {pixels(fp.min)} and {pixels(fp.max)} "
        f"pixels of the {image} image; the unit at {tuple(fp.min_unit)} sees the fewest."
    )


def growth(report: ReceptiveFieldReport) -> list[dict[str, Any]]:
    """How much each row added to the receptive field, per axis (``r_out - r_in``).

    Returns:
        One dict per row: ``{"layer", "type", "added": [per axis], "r_out": [per axis]}``.
    """
    return [
        {
            "layer": row.layer,
            "type": row.type,
            "added": [out - r_in for out, r_in in zip(row.r_out, row.r_in, strict=True)],
            "r_out": list(row.r_out),
        }
        for row in report.rows
    ]
