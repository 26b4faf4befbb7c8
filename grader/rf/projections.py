"""The footprint's representation: per-axis projections, tap tables and channel classes.

A `Footprint` holds, for every output position of a node and every image axis, the boolean
projection of the image pixels that can influence it (see `grader.rf.footprint`, which traces
footprints through a network). This module holds the representation and what every layer
shares: the bounds (`MAX_CELLS`, `MAX_TAPS`, `Budget`), the tap tables of windows and remaps, and
the channel classes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from grader.errors import ReceptiveFieldError
from grader.graph import Node
from grader.rf.effects import (
    AxisRemap,
    AxisWindow,
    Channels,
    describe,
)

MAX_CELLS = 2**25
MAX_TAPS = 2**22
BoolArray = np.ndarray


@dataclass(frozen=True)
class Footprint:
    """The footprint of every position of a node's output.

    Attributes:
        dims: the node's output positions (every axis but the channels); empty after global
            pooling or ``Flatten``.
        proj: per image axis ``a``, a boolean array of shape ``(*dims, K, image[a])``: for
            position ``p`` and channel class ``k``, which image positions along ``a`` can
            influence it.
        classes: per channel, its class (``< K``); None when every channel shares class 0.
        image: the image's size per axis.
    """

    dims: tuple[int, ...]
    proj: tuple[BoolArray, ...]
    classes: BoolArray | None
    image: tuple[int, ...]

    @property
    def k(self) -> int:
        """Number of channel classes."""
        return int(self.proj[0].shape[-2])


@dataclass(frozen=True)
class FootprintSummary:
    """Extents of the footprints of every unit of a map (a unit: a position, all channels).

    Attributes:
        image: the image's size per axis.
        units: the map's positions per axis (empty for a global map: one unit).
        min: per axis, the smallest extent over the units (0 when a unit sees only padding).
        max: per axis, the largest extent.
        min_unit: a unit with the smallest footprint (the smallest extents relative to the
            image).
        min_unit_span: per axis, the first and last pixel ``min_unit`` sees (None if none).
        gaps: whether some unit misses pixels between its first and last along some axis
            (dilation holes).
    """

    image: tuple[int, ...]
    units: tuple[int, ...]
    min: tuple[int, ...]
    max: tuple[int, ...]
    min_unit: tuple[int, ...]
    min_unit_span: tuple[tuple[int, int] | None, ...]
    gaps: bool

    @property
    def varies(self) -> bool:
        """Whether the extent changes from one unit to another."""
        return self.min != self.max

    def to_dict(self) -> dict[str, object]:
        """``{"min", "max", "varies", "min_unit", "min_unit_span", "gaps"}``, lists per axis."""
        return {
            "min": list(self.min),
            "max": list(self.max),
            "varies": self.varies,
            "min_unit": list(self.min_unit),
            "min_unit_span": [None if s is None else list(s) for s in self.min_unit_span],
            "gaps": self.gaps,
        }


def _too_large(node: Node, cells: int) -> ReceptiveFieldError:
    return ReceptiveFieldError(
        f"{describe(node)} needs {cells:,} cells to trace which pixels each unit sees, more "
        f"than the {MAX_CELLS:,} the analysis allows. Expected a smaller image or map."
    )


def _check_cells(node: Node, shape: Sequence[int]) -> None:
    cells = math.prod(shape)
    if cells > MAX_CELLS:
        raise _too_large(node, cells)


class Budget:
    """Array cells a trace may still touch: a bound on its time, whatever the model.

    Every gather, union and rearrangement spends the cells it writes; past `limit` (the tracer's
    `grader.rf.footprint.MAX_WORK`) the trace is refused, naming the layer.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.left = limit

    def spend(self, node: Node, cells: int) -> None:
        """Count ``cells`` written for ``node``; raise once the budget is spent."""
        self.left -= cells
        if self.left < 0:
            raise ReceptiveFieldError(
                f"{describe(node)} takes the trace of which pixels each unit sees past "
                f"{self.limit:,} cell operations. Expected smaller maps, kernels or fewer layers."
            )


def identity(node: Node, dims: tuple[int, ...]) -> Footprint:
    """The footprint of the image itself: each position sees its own pixel."""
    rank = len(dims)
    proj = []
    for a, n in enumerate(dims):
        _check_cells(node, (*dims, n))
        eye = np.eye(n, dtype=bool).reshape(*(n if b == a else 1 for b in range(rank)), 1, n)
        proj.append(np.broadcast_to(eye, (*dims, 1, n)))
    return Footprint(dims, tuple(proj), None, dims)


# --- per-axis tap tables: output position -> the input positions it reads ----------------------


def tap_table(rows: list[list[int]], n_in: int) -> BoolArray:
    """Rows of input positions as an ``(n_out, T)`` array padded with ``n_in`` (nothing)."""
    width = max((len(r) for r in rows), default=0) or 1
    out = np.full((len(rows), width), n_in, dtype=np.int64)
    for u, row in enumerate(rows):
        out[u, : len(row)] = row
    return out


def window_rows(w: AxisWindow, n_in: int, n_out: int) -> list[list[int]]:
    """Input positions output ``u`` of a window reads: ``u * s - p + t * d`` inside the input."""
    assert w.p is not None
    rows = []
    for u in range(n_out):
        base = u * w.s - w.p
        # The taps t in [0, k) with 0 <= base + t * d < n_in (exact integer bounds; for a
        # negative base, -(base // d) is ceil(-base / d)).
        first = max(0, -(base // w.d))
        last = min(w.k - 1, (n_in - 1 - base) // w.d) if n_in - 1 - base >= 0 else -1
        rows.append([base + t * w.d for t in range(first, last + 1)])
    return rows


def remap_rows(r: AxisRemap, n_in: int, n_out: int) -> list[list[int]]:
    """Input positions output ``u`` of a `Remap` axis reads (see `AxisRemap`)."""
    if r.method == "repeat":
        return [[u // r.s] for u in range(n_out)]
    if r.method in ("nearest", "bilinear"):
        # TensorFlow's kernels, in float32: scale = n_in / n_out; nearest reads
        # floor((u + 0.5) * scale); bilinear interpolates at (u + 0.5) * scale - 0.5 between
        # max(floor, 0) and min(ceil, n_in - 1), the upper one weighted by the fraction.
        scale = np.float32(n_in) / np.float32(n_out)
        rows = []
        for u in range(n_out):
            centre = (np.float32(u) + np.float32(0.5)) * scale
            if r.method == "nearest":
                rows.append([max(0, min(math.floor(centre), n_in - 1))])
                continue
            x = centre - np.float32(0.5)
            low = math.floor(x)
            lower, upper = max(low, 0), min(math.ceil(x), n_in - 1)
            fraction = x - np.float32(low)
            rows.append([lower] if upper == lower or fraction == 0 else [lower, upper])
        return rows
    if r.method == "transpose":
        assert r.p is not None
        rows = []
        for o in range(n_out):
            row = []
            for t in range(r.k):
                spread = o + r.p - t * r.d
                if spread >= 0 and spread % r.s == 0 and spread // r.s < n_in:
                    row.append(spread // r.s)
            rows.append(sorted(row))
        return rows
    raise AssertionError(f"unknown remap {r.method}")


def apply_tables(
    node: Node, fp: Footprint, tables: Sequence[BoolArray], budget: Budget
) -> Footprint:
    """Each output position reads the union of the positions its tables list, axis by axis.

    Separable layers read a product of per-axis tap sets, so the union can be taken one axis at
    a time. A table entry equal to the input size reads nothing (padding).
    """
    proj = []
    out_dims = tuple(int(t.shape[0]) for t in tables)
    for array in fp.proj:
        _check_cells(node, (*out_dims, *array.shape[-2:]))
        current = array
        for axis, table in enumerate(tables):
            n_in = current.shape[axis]
            shape = list(current.shape)
            shape[axis] = table.shape[0]
            _check_cells(node, shape)
            out = np.zeros(shape, dtype=bool)
            for t in range(table.shape[1]):
                column = table[:, t]
                valid = column < n_in
                if not valid.any():
                    continue
                budget.spend(node, out.size)
                gathered = np.take(current, np.where(valid, column, 0), axis=axis)
                if not valid.all():
                    index: list[slice | BoolArray] = [slice(None)] * gathered.ndim
                    index[axis] = ~valid
                    gathered[tuple(index)] = False
                out |= gathered
            current = out
        proj.append(current)
    return replace(fp, dims=out_dims, proj=tuple(proj))


# --- channels --------------------------------------------------------------------------------


def mix_channels(fp: Footprint) -> Footprint:
    if fp.classes is None:
        return fp
    proj = tuple(np.asarray(a.any(axis=-2, keepdims=True)) for a in fp.proj)
    return replace(fp, proj=proj, classes=None)


def classes_of(fp: Footprint, count: int) -> BoolArray:
    return np.zeros(count, dtype=np.int64) if fp.classes is None else fp.classes


def compress(fp: Footprint) -> Footprint:
    """The same footprint with identical channel classes merged (one class: ``classes=None``)."""
    if fp.classes is None:
        return fp
    used = np.unique(fp.classes)
    # One row of packed bits per class, compared as raw bytes: sorting K byte strings is fast
    # where np.unique over long boolean rows is not.
    rows = np.concatenate(
        [np.packbits(np.moveaxis(a, -2, 0)[used].reshape(len(used), -1), axis=1) for a in fp.proj],
        axis=1,
    )
    keys = np.ascontiguousarray(rows).view(np.dtype((np.void, rows.shape[1]))).reshape(-1)
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    remap = np.zeros(fp.k, dtype=np.int64)
    remap[used] = np.asarray(inverse).reshape(-1)
    keep = used[first]
    proj = tuple(np.take(a, keep, axis=-2) for a in fp.proj)
    classes = remap[fp.classes] if len(keep) > 1 else None
    return replace(fp, proj=proj, classes=classes)


def apply_channels(node: Node, fp: Footprint, effect: Channels) -> Footprint:
    if effect.mode == "mix":
        return mix_channels(fp)
    if fp.classes is None or effect.mode == "keep":
        return fp
    if effect.mode == "depthwise":
        return replace(fp, classes=np.repeat(fp.classes, effect.factor))
    # Groups: output group g depends on input group g's channels only.
    groups = effect.factor
    c_in = len(fp.classes)
    c_out = node.output_shape[-1]
    if not isinstance(c_out, int) or c_in % groups or c_out % groups:
        return mix_channels(fp)
    size = c_in // groups
    proj = []
    for array in fp.proj:
        parts = [
            np.take(array, np.unique(fp.classes[g * size : (g + 1) * size]), axis=-2).any(
                axis=-2, keepdims=True
            )
            for g in range(groups)
        ]
        proj.append(np.concatenate(parts, axis=-2))
    classes = np.repeat(np.arange(groups), c_out // groups)
    return compress(replace(fp, proj=tuple(proj), classes=classes))


def channel_elements(node: Node, fp: Footprint, channel_count: int | None) -> tuple[BoolArray, ...]:
    """Per image axis, ``(*dims, C, n)``: every channel's own footprint (for reshapes)."""
    if not isinstance(channel_count, int):
        raise ReceptiveFieldError(
            f"{describe(node)} rearranges channels whose number is unknown. Expected a known "
            "number of channels."
        )
    classes = classes_of(fp, channel_count)
    if len(classes) != channel_count:
        raise ReceptiveFieldError(
            f"{describe(node)} has {channel_count} input channels, but its producer has "
            f"{len(classes)}. Expected them to agree."
        )
    out = []
    for array in fp.proj:
        _check_cells(node, (*fp.dims, channel_count, array.shape[-1]))
        out.append(np.take(array, classes, axis=-2))
    return tuple(out)


def from_elements(fp: Footprint, arrays: Sequence[BoolArray]) -> Footprint:
    """A footprint from per-element arrays ``(*dims, C, n)``: one class per channel, merged."""
    dims = tuple(int(d) for d in arrays[0].shape[:-2])
    count = int(arrays[0].shape[-2])
    full = replace(fp, dims=dims, proj=tuple(arrays), classes=np.arange(count, dtype=np.int64))
    return compress(full)
