"""The image footprint: which input pixels can influence each unit, exactly, at every position.

The course formula (`grader.rf.fields`) gives one window per unit, padding included, and only for
translation-invariant networks. The footprint is what a unit actually sees: the set of image
pixels that can change its value in the network as evaluated (``training=False``). Taps that
land in zero padding, dilation gaps and positions no path reaches are not in it; up-sampling,
transposed convolutions, resizing, reshapes of positions and merges of paths with different
jumps are followed exactly, position by position, on the model's real input size.

Representation. For a node, for every output position ``p`` (all axes of the tensor but the
last, the channels) and every image axis ``a``, a boolean vector over the image's positions
along ``a``: the *projection* of the pixels that can influence position ``p`` onto axis ``a``.
Projections compose exactly: the pixels reaching a unit are the union of those reaching the
positions it reads, and the projection of a union is the union of the projections. Channels
usually share one footprint; they get their own *classes* only where it matters, when a layer
gives different channels different positions (a concatenation, a ``Reshape`` from space to
depth) and a later ``Reshape`` can turn channels back into positions.

A unit's *extent* along an axis is the distance from the first to the last pixel of its
projection, plus one: what the course formula would give if it counted pixels only. The
footprint of a unit is empty when it sees only padding. Gradient support is the independent
measurement: d(unit, summed over channels)/d(image), in a twin with positive weights, is
non-zero exactly on the footprint.

Bounds, so that a hostile model cannot stall the grader: every array holds at most `MAX_CELLS`
booleans (about 33 million; a 299 x 299 image at full resolution takes 27 million, a 224 x 224
one 11 million), a layer reads at most `MAX_TAPS` (position, tap) pairs, and a whole trace writes
at most `MAX_WORK` cells (`Budget`). A larger trace is refused with a `ReceptiveFieldError`
naming the layer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from grader.errors import ReceptiveFieldError
from grader.graph import ModelGraph, Node
from grader.rf.effects import (
    ADD_CHANNEL_AXIS,
    FLATTEN,
    GLOBAL,
    MERGE,
    POINTWISE,
    AxisRemap,
    AxisWindow,
    Channels,
    Rearrange,
    Reduce,
    Remap,
    Window,
    describe,
)
from grader.rf.geometry import channels, classify

MAX_CELLS = 2**25
MAX_TAPS = 2**22
MAX_WORK = 2**32
_Array = np.ndarray


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
    proj: tuple[_Array, ...]
    classes: _Array | None
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

    Every gather, union and rearrangement spends the cells it writes; past `MAX_WORK` the trace
    is refused, naming the layer (a few seconds of work at most; ResNet50 on 224 x 224 images
    spends about a tenth of it).
    """

    def __init__(self, cells: int = 0) -> None:
        self.left = cells or MAX_WORK

    def spend(self, node: Node, cells: int) -> None:
        """Count ``cells`` written for ``node``; raise once the budget is spent."""
        self.left -= cells
        if self.left < 0:
            raise ReceptiveFieldError(
                f"{describe(node)} takes the trace of which pixels each unit sees past "
                f"{MAX_WORK:,} cell operations. Expected smaller maps, kernels or fewer layers."
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


def _table(rows: list[list[int]], n_in: int) -> _Array:
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
    if r.kind == "repeat":
        return [[u // r.s] for u in range(n_out)]
    if r.kind in ("nearest", "bilinear"):
        # TensorFlow's kernels, in float32: scale = n_in / n_out; nearest reads
        # floor((u + 0.5) * scale); bilinear interpolates at (u + 0.5) * scale - 0.5 between
        # max(floor, 0) and min(ceil, n_in - 1), the upper one weighted by the fraction.
        scale = np.float32(n_in) / np.float32(n_out)
        rows = []
        for u in range(n_out):
            centre = (np.float32(u) + np.float32(0.5)) * scale
            if r.kind == "nearest":
                rows.append([max(0, min(math.floor(centre), n_in - 1))])
                continue
            x = centre - np.float32(0.5)
            low = math.floor(x)
            lower, upper = max(low, 0), min(math.ceil(x), n_in - 1)
            fraction = x - np.float32(low)
            rows.append([lower] if upper == lower or fraction == 0 else [lower, upper])
        return rows
    if r.kind == "transpose":
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
    raise AssertionError(f"unknown remap {r.kind}")


def _apply_tables(node: Node, fp: Footprint, tables: Sequence[_Array], budget: Budget) -> Footprint:
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
                    index: list[slice | _Array] = [slice(None)] * gathered.ndim
                    index[axis] = ~valid
                    gathered[tuple(index)] = False
                out |= gathered
            current = out
        proj.append(current)
    return replace(fp, dims=out_dims, proj=tuple(proj))


# --- channels --------------------------------------------------------------------------------


def _mix(fp: Footprint) -> Footprint:
    if fp.classes is None:
        return fp
    proj = tuple(np.asarray(a.any(axis=-2, keepdims=True)) for a in fp.proj)
    return replace(fp, proj=proj, classes=None)


def _classes_of(fp: Footprint, count: int) -> _Array:
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


def _apply_channels(node: Node, fp: Footprint, effect: Channels) -> Footprint:
    if effect.kind == "mix":
        return _mix(fp)
    if fp.classes is None or effect.kind == "keep":
        return fp
    if effect.kind == "depthwise":
        return replace(fp, classes=np.repeat(fp.classes, effect.factor))
    # Groups: output group g depends on input group g's channels only.
    groups = effect.factor
    c_in = len(fp.classes)
    c_out = node.output_shape[-1]
    if not isinstance(c_out, int) or c_in % groups or c_out % groups:
        return _mix(fp)
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


def _elements(node: Node, fp: Footprint, channel_count: int | None) -> tuple[_Array, ...]:
    """Per image axis, ``(*dims, C, n)``: every channel's own footprint (for reshapes)."""
    if not isinstance(channel_count, int):
        raise ReceptiveFieldError(
            f"{describe(node)} rearranges channels whose number is unknown. Expected a known "
            "number of channels."
        )
    classes = _classes_of(fp, channel_count)
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


def _from_elements(fp: Footprint, arrays: Sequence[_Array]) -> Footprint:
    """A footprint from per-element arrays ``(*dims, C, n)``: one class per channel, merged."""
    dims = tuple(int(d) for d in arrays[0].shape[:-2])
    count = int(arrays[0].shape[-2])
    full = replace(fp, dims=dims, proj=tuple(arrays), classes=np.arange(count, dtype=np.int64))
    return compress(full)


# --- layers ----------------------------------------------------------------------------------


def _rearrange(node: Node, fp: Footprint) -> Footprint:
    in_shape = tuple(d for d in node.input_shapes[0] if isinstance(d, int))
    out_shape = tuple(d for d in node.output_shape if isinstance(d, int))
    if len(in_shape) != len(node.input_shapes[0]) or len(out_shape) != len(node.output_shape):
        raise ReceptiveFieldError(
            f"{describe(node)} rearranges a tensor of shape {tuple(node.input_shapes[0])} into "
            f"{tuple(node.output_shape)}. Expected known sizes."
        )
    elements = _elements(node, fp, in_shape[-1])
    arrays = []
    for array in elements:
        if node.layer.class_name == "Permute":
            order = [int(d) - 1 for d in node.layer.config.get("dims", [])]
            moved = np.transpose(array, (*order, array.ndim - 1))
        else:
            moved = array.reshape(*out_shape, array.shape[-1])
        arrays.append(np.ascontiguousarray(moved))
    if tuple(arrays[0].shape[:-1]) != out_shape:
        raise ReceptiveFieldError(
            f"{describe(node)} gives shape {tuple(arrays[0].shape[:-1])}, but the graph says "
            f"{out_shape}. Expected them to agree."
        )
    return _from_elements(fp, arrays)


def _flatten(node: Node, fp: Footprint) -> Footprint:
    in_shape = tuple(node.input_shapes[0])
    elements = _elements(node, fp, in_shape[-1] if in_shape else None)
    return _from_elements(fp, [a.reshape(-1, a.shape[-1]) for a in elements])


def _pool_all(node: Node, fp: Footprint) -> Footprint:
    rank = len(fp.dims)
    axes = tuple(range(rank))
    keepdims = bool(node.layer.config.get("keepdims", False))
    proj = tuple(np.asarray(a.any(axis=axes, keepdims=keepdims)) if rank else a for a in fp.proj)
    dims = (1,) * rank if keepdims else ()
    return replace(fp, dims=dims, proj=proj)


def _reduce(node: Node, fp: Footprint, effect: Reduce) -> Footprint:
    proj = tuple(np.broadcast_to(a.any(axis=effect.axes, keepdims=True), a.shape) for a in fp.proj)
    return replace(fp, proj=proj)


def _repeat_vector(node: Node, fp: Footprint) -> Footprint:
    n = node.layer.config.get("n")
    if not isinstance(n, int) or fp.dims:
        raise ReceptiveFieldError(
            f"{describe(node)} repeats a tensor of shape {node.input_shapes[0]}. Expected a "
            "feature vector and an integer `n`."
        )
    return replace(fp, dims=(n,), proj=tuple(np.broadcast_to(a, (n, *a.shape)) for a in fp.proj))


def _broadcast_dims(node: Node, shapes: Sequence[tuple[int, ...]]) -> tuple[int, ...]:
    try:
        return tuple(int(d) for d in np.broadcast_shapes(*shapes))
    except ValueError:
        raise ReceptiveFieldError(
            f"{describe(node)} merges inputs of spatial sizes {list(shapes)}. Expected equal "
            "sizes or sizes of 1 that broadcast."
        ) from None


def _class_tuples(
    fps: Sequence[Footprint | None], channel_counts: Sequence[int], out_channels: int
) -> tuple[list[tuple[int, ...]], _Array]:
    """Per output channel, the tuple of its inputs' classes; the distinct tuples and an index."""
    columns = []
    for fp, count in zip(fps, channel_counts, strict=True):
        classes = np.zeros(count, dtype=np.int64) if fp is None else _classes_of(fp, count)
        if len(classes) == out_channels:
            columns.append(classes)
        elif len(classes) == 1:
            columns.append(np.repeat(classes, out_channels))
        else:
            raise AssertionError("channel counts checked by the caller")
    stacked = np.stack(columns, axis=1)
    unique, inverse = np.unique(stacked, axis=0, return_inverse=True)
    return [tuple(int(v) for v in row) for row in unique], np.asarray(inverse).reshape(-1)


def _channel_counts(node: Node, indices: Sequence[int]) -> list[int]:
    counts = []
    for i in indices:
        c = node.input_shapes[i][-1] if node.input_shapes[i] else 1
        if not isinstance(c, int):
            raise ReceptiveFieldError(
                f"{describe(node)} merges an input whose number of channels is unknown. "
                "Expected known channels."
            )
        counts.append(c)
    return counts


def _merge(node: Node, inputs: Sequence[tuple[int, Footprint | None]]) -> Footprint:
    """Element-wise merges (union, broadcasting) and concatenation (side by side)."""
    image_fps = [fp for _, fp in inputs if fp is not None]
    base = image_fps[0]
    if node.layer.class_name == "Concatenate":
        rank = len(node.output_shape)
        axis = node.layer.config.get("axis", -1)
        if not isinstance(axis, int) or not -rank <= axis <= rank or axis == 0:
            raise ReceptiveFieldError(
                f"{describe(node)} has axis={axis!r}. Expected an axis of its {rank}-axis output."
            )
        index = axis - 1 if axis > 0 else rank + axis  # without the batch axis
        if index == rank - 1:
            return _concat_channels(node, inputs)
        return _concat_positions(node, inputs, index)
    # Inputs without the image still broadcast positions (an unknown size broadcasts as 1).
    others = [
        tuple(d if isinstance(d, int) else 1 for d in node.input_shapes[i][:-1])
        for i, fp in inputs
        if fp is None
    ]
    out_dims = _broadcast_dims(node, [fp.dims for fp in image_fps] + others)
    if len(image_fps) == 1:
        only = image_fps[0]
        proj = tuple(np.broadcast_to(a, (*out_dims, *a.shape[-2:])) for a in only.proj)
        return _channels_to(node, replace(only, dims=out_dims, proj=proj))
    if all(fp.classes is None for fp in image_fps):
        summed = []
        for axis in range(len(base.proj)):
            total = np.zeros((*out_dims, 1, base.image[axis]), dtype=bool)
            for fp in image_fps:
                total = total | fp.proj[axis]
            summed.append(total)
        return replace(base, dims=out_dims, proj=tuple(summed), classes=None)
    out_channels = node.output_shape[-1]
    indices = [i for i, fp in inputs if fp is not None]
    counts = _channel_counts(node, indices)
    if not isinstance(out_channels, int):
        raise ReceptiveFieldError(f"{describe(node)} has an unknown number of channels.")
    tuples, inverse = _class_tuples(image_fps, counts, out_channels)
    merged = []
    for axis in range(len(base.proj)):
        parts = []
        for combo in tuples:
            total = np.zeros((*out_dims, base.image[axis]), dtype=bool)
            for fp, k in zip(image_fps, combo, strict=True):
                total = total | np.take(fp.proj[axis], k, axis=-2)
            parts.append(total[..., None, :])
        merged.append(np.concatenate(parts, axis=-2))
    return compress(replace(base, dims=out_dims, proj=tuple(merged), classes=inverse))


def _channels_to(node: Node, fp: Footprint) -> Footprint:
    """Broadcast a footprint's classes to the node's output channels (a merge with a constant)."""
    out_channels = node.output_shape[-1]
    if fp.classes is None or not isinstance(out_channels, int) or len(fp.classes) == out_channels:
        return fp
    if len(fp.classes) == 1:
        return replace(fp, classes=np.repeat(fp.classes, out_channels))
    return _mix(fp)


def _empty_like(base: Footprint, dims: tuple[int, ...]) -> tuple[_Array, ...]:
    return tuple(np.zeros((*dims, 1, n), dtype=bool) for n in base.image)


def _concat_channels(node: Node, inputs: Sequence[tuple[int, Footprint | None]]) -> Footprint:
    base = next(fp for _, fp in inputs if fp is not None)
    counts = _channel_counts(node, [i for i, _ in inputs])
    if all(fp is not None and fp.classes is None for _, fp in inputs) and all(
        fp is not None
        and all(np.array_equal(x, y) for x, y in zip(fp.proj, base.proj, strict=True))
        for _, fp in inputs
    ):
        return base  # every input sees the same: channels stay one class
    parts: list[list[_Array]] = [[] for _ in base.proj]
    classes = []
    offset = 0
    for (_, fp), count in zip(inputs, counts, strict=True):
        if fp is not None and fp.dims != base.dims:
            raise ReceptiveFieldError(
                f"{describe(node)} concatenates channels of maps of sizes {base.dims} and "
                f"{fp.dims}. Expected equal sizes."
            )
        arrays = _empty_like(base, base.dims) if fp is None else fp.proj
        for axis, array in enumerate(arrays):
            parts[axis].append(np.broadcast_to(array, (*base.dims, *array.shape[-2:])))
        own = np.zeros(count, dtype=np.int64) if fp is None else _classes_of(fp, count)
        classes.append(own + offset)
        offset += int(arrays[0].shape[-2])
    proj = tuple(np.concatenate(p, axis=-2) for p in parts)
    return compress(replace(base, proj=proj, classes=np.concatenate(classes)))


def _concat_positions(
    node: Node, inputs: Sequence[tuple[int, Footprint | None]], axis: int
) -> Footprint:
    base = next(fp for _, fp in inputs if fp is not None)
    counts = _channel_counts(node, [i for i, _ in inputs])
    out_channels = node.output_shape[-1]
    if not isinstance(out_channels, int) or any(c != out_channels for c in counts):
        raise ReceptiveFieldError(
            f"{describe(node)} concatenates positions of inputs with {counts} channels. "
            "Expected the same number of channels."
        )
    blocks: list[tuple[Footprint | None, tuple[int, ...]]] = []
    for i, fp in inputs:
        shape = tuple(node.input_shapes[i][:-1])
        if fp is None and any(not isinstance(d, int) for d in shape):
            raise ReceptiveFieldError(f"{describe(node)} concatenates an input of unknown size.")
        known = tuple(d for d in shape if isinstance(d, int))
        blocks.append((fp, fp.dims if fp is not None else known))
    tuples, inverse = _class_tuples([fp for fp, _ in blocks], counts, out_channels)
    proj = []
    for a, n in enumerate(base.image):
        per_class = []
        for combo in tuples:
            pieces = [
                np.zeros((*dims, n), dtype=bool) if fp is None else np.take(fp.proj[a], k, axis=-2)
                for (fp, dims), k in zip(blocks, combo, strict=True)
            ]
            per_class.append(np.concatenate(pieces, axis=axis)[..., None, :])
        proj.append(np.concatenate(per_class, axis=-2))
    dims = tuple(int(d) for d in proj[0].shape[:-2])
    return compress(replace(base, dims=dims, proj=tuple(proj), classes=inverse))


def _check_dims(node: Node, fp: Footprint) -> Footprint:
    declared = tuple(node.output_shape[:-1]) if len(node.output_shape) >= 2 else ()
    if len(declared) != len(fp.dims) or any(
        d is not None and d != n for d, n in zip(declared, fp.dims, strict=True)
    ):
        raise ReceptiveFieldError(
            f"{describe(node)} has output shape {tuple(node.output_shape)}, but its geometry "
            f"gives positions {fp.dims}. Expected them to agree."
        )
    return fp


def _single(node: Node, inputs: Sequence[tuple[int, Footprint | None]]) -> Footprint:
    found = [fp for _, fp in inputs if fp is not None]
    if len(found) != 1:
        raise ReceptiveFieldError(f"{describe(node)} takes several image inputs; expected one.")
    return found[0]


def _taps_too_many(node: Node, entries: int) -> ReceptiveFieldError:
    return ReceptiveFieldError(
        f"{describe(node)} reads {entries:,} (position, tap) pairs, more than the {MAX_TAPS:,} "
        "the analysis traces. Expected smaller kernels or maps."
    )


def layer_footprint(
    node: Node,
    inputs: Sequence[tuple[int, Footprint | None]],
    *,
    is_input_image: bool = False,
    budget: Budget | None = None,
) -> Footprint:
    """The footprint of one layer call from its inputs' (None: does not depend on the image).

    Args:
        node: the layer call.
        inputs: ``(index in node.inputs, footprint or None)`` for every live input.
        is_input_image: the single input is the image itself (for a grayscale ``Reshape``).
        budget: the trace's `Budget` (a fresh one when None).

    Raises:
        ReceptiveFieldError: the layer cannot be traced exactly (its message names it), or the
            trace would be too large.
    """
    budget = budget if budget is not None else Budget()
    first = next(fp for _, fp in inputs if fp is not None)
    effect = classify(node, first.dims)
    if effect is MERGE:
        fp = _merge(node, inputs)
        budget.spend(node, sum(a.size for a in fp.proj))
        return _check_dims(node, fp)
    fp = _single(node, inputs)
    if isinstance(effect, Window):
        tables = []
        for w, n_in in zip(effect.axes, fp.dims, strict=True):
            n_out = w.n_out
            assert n_out is not None and w.p is not None
            # A unit reads at most k taps, and at most n_in of them inside the input.
            if n_out * min(w.k, n_in) > MAX_TAPS:
                raise _taps_too_many(node, n_out * min(w.k, n_in))
            tables.append(_table(window_rows(w, n_in, n_out), n_in))
        fp = _apply_tables(node, fp, tables, budget)
    elif isinstance(effect, Remap):
        tables = []
        for r, n_in in zip(effect.axes, fp.dims, strict=True):
            n_out = r.n_out
            if n_out is None:
                raise ReceptiveFieldError(f"{describe(node)} has an output of unknown size.")
            if n_out * max(r.k, 2) > MAX_TAPS:
                raise _taps_too_many(node, n_out * max(r.k, 2))
            tables.append(_table(remap_rows(r, n_in, n_out), n_in))
        fp = _apply_tables(node, fp, tables, budget)
    elif isinstance(effect, Reduce):
        fp = _reduce(node, fp, effect)
    elif isinstance(effect, Rearrange):
        fp = _rearrange(node, fp)
    elif effect is ADD_CHANNEL_AXIS:
        if is_input_image:
            # (28, 28) -> (28, 28, 1): the image's last axis was a spatial axis all along.
            return identity(node, tuple(d for d in node.output_shape[:-1] if isinstance(d, int)))
        fp = _rearrange(node, fp)
    elif effect is FLATTEN:
        fp = _flatten(node, fp)
        budget.spend(node, sum(a.size for a in fp.proj))
        return fp
    elif effect is GLOBAL:
        if node.layer.class_name == "RepeatVector":
            return _repeat_vector(node, fp)
        return _pool_all(node, fp)
    else:
        assert effect is POINTWISE
    fp = _apply_channels(node, fp, channels(node))
    budget.spend(node, sum(a.size for a in fp.proj))
    return _check_dims(node, fp)


def _on_paths(
    graph: ModelGraph, source: int, target: int, influences: Callable[[int], bool] | None
) -> list[int]:
    live = (lambda i: True) if influences is None else influences
    below = {source}
    for node in graph.nodes:
        if node.id > source and any(i in below and live(i) for i in node.inputs):
            below.add(node.id)
    above = {target}
    for node in reversed(graph.nodes[: target + 1]):
        if node.id in above:
            above.update(i for i in node.inputs if live(i))
    return sorted(below & above)


def trace(
    graph: ModelGraph,
    target: int,
    source: int,
    influences: Callable[[int], bool] | None = None,
) -> Footprint:
    """The footprint of node ``target`` on the image of input node ``source``.

    Args:
        graph: the model graph.
        target: the end point's node id.
        source: the image input's node id.
        influences: node id -> whether it can influence the output (see `grader.rf.fields`).

    Raises:
        ReceptiveFieldError: an unknown size on the way, a layer without exact geometry, or a
            trace larger than `MAX_CELLS` per array, `MAX_TAPS` per table or `MAX_WORK` in all.
    """
    image = graph.nodes[source]
    dims = tuple(image.output_shape[:-1])
    if any(not isinstance(d, int) for d in dims):
        raise ReceptiveFieldError(
            f"The image input `{image.layer.name}` has shape {tuple(image.output_shape)}. "
            "Expected a known height and width, e.g. keras.Input((32, 32, 3)): which pixels "
            "each unit sees depends on the image size."
        )
    known = tuple(d for d in dims if isinstance(d, int))
    footprints: dict[int, Footprint] = {source: identity(image, known)}
    live = (lambda i: True) if influences is None else influences
    budget = Budget()
    for node_id in _on_paths(graph, source, target, influences):
        if node_id == source:
            continue
        node = graph.nodes[node_id]
        inputs = [(k, footprints.get(i)) for k, i in enumerate(node.inputs) if live(i)]
        footprints[node_id] = layer_footprint(
            node, inputs, is_input_image=node.inputs == (source,), budget=budget
        )
    return footprints[target]


def append(fp: Footprint, node: Node) -> Footprint:
    """The footprint after one more layer call ``node`` (a what-if: ``node`` is not in a graph)."""
    return layer_footprint(node, [(0, fp)])


def summarize(fp: Footprint) -> FootprintSummary:
    """Per axis, the smallest and largest extent over the units, and where the smallest is."""
    extents = []
    firsts = []
    lasts = []
    gaps = False
    for array in fp.proj:
        union = np.asarray(array.any(axis=-2))  # a unit is a position with all its channels
        n = union.shape[-1]
        seen = union.any(axis=-1)
        first = np.argmax(union, axis=-1)
        last = n - 1 - np.argmax(union[..., ::-1], axis=-1)
        extent = np.where(seen, last - first + 1, 0)
        gaps = gaps or bool((union.sum(axis=-1) < extent).any())
        extents.append(extent)
        firsts.append(first)
        lasts.append(last)
    relative = sum(e / n for e, n in zip(extents, fp.image, strict=True))
    flat_index = int(np.argmin(np.asarray(relative).reshape(-1))) if fp.dims else 0
    unit = tuple(int(i) for i in np.unravel_index(flat_index, fp.dims)) if fp.dims else ()
    span = tuple(
        (int(f[unit]), int(la[unit])) if int(e[unit]) else None
        for f, la, e in zip(firsts, lasts, extents, strict=True)
    )
    return FootprintSummary(
        image=fp.image,
        units=fp.dims,
        min=tuple(int(e.min()) for e in extents),
        max=tuple(int(e.max()) for e in extents),
        min_unit=unit,
        min_unit_span=span,
        gaps=gaps,
    )
