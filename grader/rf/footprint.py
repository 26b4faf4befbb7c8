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

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from grader.errors import ReceptiveFieldError
from grader.graph import ModelGraph, Node
from grader.rf.effects import (
    ADD_CHANNEL_AXIS,
    FLATTEN,
    GLOBAL,
    MERGE,
    POINTWISE,
    Rearrange,
    Reduce,
    Remap,
    Window,
    describe,
)
from grader.rf.geometry import channels, classify
from grader.rf.projections import (
    MAX_TAPS,
    BoolArray,
    Budget,
    Footprint,
    FootprintSummary,
    apply_channels,
    apply_tables,
    channel_elements,
    classes_of,
    compress,
    from_elements,
    identity,
    mix_channels,
    remap_rows,
    tap_table,
    window_rows,
)

# Cell operations a whole trace may spend (`Budget`): a few seconds of work at most; ResNet50 on
# 224 x 224 images spends about a tenth of it.
MAX_WORK = 2**32

# --- layers ----------------------------------------------------------------------------------


def _rearrange(node: Node, fp: Footprint) -> Footprint:
    in_shape = tuple(d for d in node.input_shapes[0] if isinstance(d, int))
    out_shape = tuple(d for d in node.output_shape if isinstance(d, int))
    if len(in_shape) != len(node.input_shapes[0]) or len(out_shape) != len(node.output_shape):
        raise ReceptiveFieldError(
            f"{describe(node)} rearranges a tensor of shape {tuple(node.input_shapes[0])} into "
            f"{tuple(node.output_shape)}. Expected known sizes."
        )
    elements = channel_elements(node, fp, in_shape[-1])
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
    return from_elements(fp, arrays)


def _flatten(node: Node, fp: Footprint) -> Footprint:
    in_shape = tuple(node.input_shapes[0])
    elements = channel_elements(node, fp, in_shape[-1] if in_shape else None)
    return from_elements(fp, [a.reshape(-1, a.shape[-1]) for a in elements])


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
) -> tuple[list[tuple[int, ...]], BoolArray]:
    """Per output channel, the tuple of its inputs' classes; the distinct tuples and an index."""
    columns = []
    for fp, count in zip(fps, channel_counts, strict=True):
        classes = np.zeros(count, dtype=np.int64) if fp is None else classes_of(fp, count)
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
    return mix_channels(fp)


def _empty_like(base: Footprint, dims: tuple[int, ...]) -> tuple[BoolArray, ...]:
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
    parts: list[list[BoolArray]] = [[] for _ in base.proj]
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
        own = np.zeros(count, dtype=np.int64) if fp is None else classes_of(fp, count)
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
    budget = budget if budget is not None else Budget(MAX_WORK)
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
            tables.append(tap_table(window_rows(w, n_in, n_out), n_in))
        fp = apply_tables(node, fp, tables, budget)
    elif isinstance(effect, Remap):
        tables = []
        for r, n_in in zip(effect.axes, fp.dims, strict=True):
            n_out = r.n_out
            if n_out is None:
                raise ReceptiveFieldError(f"{describe(node)} has an output of unknown size.")
            if n_out * max(r.k, 2) > MAX_TAPS:
                raise _taps_too_many(node, n_out * max(r.k, 2))
            tables.append(tap_table(remap_rows(r, n_in, n_out), n_in))
        fp = apply_tables(node, fp, tables, budget)
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
    fp = apply_channels(node, fp, channels(node))
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
    budget = Budget(MAX_WORK)
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
