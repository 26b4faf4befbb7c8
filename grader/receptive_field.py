"""Exact receptive fields of Keras models, per spatial axis, for any layer as end-point.

Two views of one field, both exact (`ReceptiveFieldReport`):

- The **course formula** (Araujo, Norris and Sim, "Computing Receptive Fields of Convolutional
  Neural Networks", Distill 2019), which students compute by hand: along each spatial axis,
  output unit ``u`` of the end-point sees the input interval ``[start + u * jump, start + u *
  jump + size - 1]``; ``size`` counts padding positions, so it can exceed the image (ResNet50's
  field is wider than its 224-pixel input). For ``same`` padding the left padding is the one
  TensorFlow adds: ``pad_total = max((ceil(n / s) - 1) * s + k_eff - n, 0)``, ``pad_left =
  pad_total // 2``, so ``start`` is exact too. Graphs with branches take, at every merge, the
  union of the intervals of all paths (smallest start, largest end). The formula only exists
  for translation-invariant networks: after up-sampling, transposed convolutions, resizing,
  reshapes of positions or a merge of paths with different jumps, ``size`` is null and
  ``formula_note`` names the layer.
- The **footprint** (`grader.rf.footprint`): for every unit of the end point, the set of image
  pixels that can influence it, traced per position on the model's real input size. Taps that
  land in zero padding count for nothing, so a 3x3 convolution with ``dilation_rate=32`` on a
  32x32 map has a formula field of 67 but sees only what its input position sees. The report
  gives its smallest and largest extent over the units; `min_receptive_field` is decided on it.

Anything after a layer that mixes every position (global pooling, a Dense head after
``Flatten``, a squeeze-and-excitation gate) is *global*: it sees the whole input.

The default end point is the network's last spatial feature map: the map feeding global
pooling, ``Flatten`` or the head (for a fully convolutional model, its spatial output), chosen
from the graph alone, never an earlier layer because a later one could not be analysed. It is
named after the last layer that changes its field: the batch normalisation and activation
that follow a convolution keep its field, so the report names the convolution and lists them
in ``unchanged_after``. If that map's field cannot be computed, `compute_receptive_field`
raises a `ReceptiveFieldError` that names the map and the layer that prevents it.

With an unknown input size, formula sizes and jumps stay exact; ``start`` becomes ``None`` once
a ``same`` padding with a stride above 1 depends on the size (merges of paths that share that
unknown offset stay exact, others are refused); the footprint needs the size and is null.

Calls that cannot change the output add nothing (``paths``, decided by
`grader.graph_effect.output_influence`): a branch multiplied by a constant zero, a
``Rescaling(scale=0)``, a layer no output reads are never the end point and widen no field.
``paths="possible"`` (the default, the report) leaves out the calls that provably cannot change
the end point (``Effect.NO``); ``paths="certain"`` also leaves out those that change it only if
some weight the architecture does not fix is non-zero (``Effect.MAYBE``: a kernel constrained
to norm 0, a product with a learnt constant). A minimum (`min_receptive_field`) is judged on
the certain field: a path that might be zero must not help satisfy it. ``paths="all"`` counts
every call.

``to_dict()`` gives::

    {"end_point", "end_point_type", "input", "size": [h, w], "jump": [h, w], "start": [h, w],
     "global": bool, "input_size": [h, w], "output_size": [h, w], "layers": [row, ...],
     "formula_note", "footprint": {"min", "max", "varies", "min_unit", "min_unit_span", "gaps"},
     "footprint_note", "unchanged_after": [name, ...]}

with one row per node on the paths from the image input to the end-point (topological order)
that the formula describes: ``{"layer", "type", "k", "d", "s", "p", "n_in", "n_out", "j_in",
"j_out", "r_in", "r_out", "start_in", "start_out", "inputs", "on_every_path"}``, every per-axis
value a list (also for square fields: ``[3, 3]``, never ``3``), ``p`` the padding before the
first position (negative for cropping).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Literal

import numpy as np

from grader.errors import ReceptiveFieldError
from grader.graph import ModelGraph, Node
from grader.graph_effect import Effect, OutputInfluence, output_influence
from grader.rf.fields import (
    AxisField,
    FlattenedField,
    GlobalField,
    NoFormulaField,
    Propagation,
    Step,
    identity_field,
    propagate,
)
from grader.rf.footprint import summarize, trace
from grader.rf.geometry import GLOBAL_POOL_CLASSES, is_position_identity
from grader.rf.report import ReceptiveFieldReport, Row, TraceContext, format_table, growth
from grader.rf.what_if import HINT_CHANGES, dilation_target, rf_if_appended

__all__ = [
    "HINT_CHANGES",
    "Paths",
    "ReceptiveFieldError",
    "ReceptiveFieldReport",
    "Row",
    "compute_receptive_field",
    "default_end_point",
    "dilation_target",
    "format_table",
    "growth",
    "rf_if_appended",
    "undecided_calls",
]

Influences = Callable[[int], bool] | None
#: Which calls a field counts (see the module docstring).
Paths = Literal["all", "possible", "certain"]
_FLOOR: dict[str, Effect] = {"possible": Effect.MAYBE, "certain": Effect.YES}


def _counted(influence: OutputInfluence, paths: Paths) -> Influences:
    """The predicate of the calls `paths` counts, given their influence."""
    if paths == "all":
        return None
    floor = _FLOOR[paths]
    return lambda i: influence.state(i) >= floor


def _towards(graph: ModelGraph, node: Node) -> OutputInfluence:
    """Which calls can change `node`'s output (its influence as if it were the model's output).

    A field is about the end point's units: a call counts when it can change them, whatever
    follows the end point.
    """
    return output_influence(dataclasses.replace(graph, outputs=(node.id,)))


def _live_inputs(node: Node, influences: Influences) -> list[int]:
    return [i for i in node.inputs if influences is None or influences(i)]


def _layouts(graph: ModelGraph, influences: Influences) -> dict[int, str]:
    """Per node, from the graph alone: ``spatial`` (a map of positions from an image),
    ``pooled`` (the positions are gone: global pooling, ``Flatten``, what follows) or ``none``
    (no image behind it)."""
    layout: dict[int, str] = {}
    for node in graph.nodes:
        live = _live_inputs(node, influences)
        if not node.inputs:
            layout[node.id] = "spatial" if len(node.output_shape) >= 2 else "none"
            continue
        seen = {layout[i] for i in live}
        if "spatial" in seen:
            ends = (
                node.layer.class_name in GLOBAL_POOL_CLASSES
                or node.layer.class_name == "Flatten"
                or len(node.output_shape) < 2
            )
            layout[node.id] = "pooled" if ends else "spatial"
        else:
            layout[node.id] = "pooled" if "pooled" in seen else "none"
    return layout


def _last_map(graph: ModelGraph, influences: Influences) -> Node:
    """The network's last spatial feature map: the last one feeding what pools its positions
    (global pooling, ``Flatten``, the head), else its last spatial output."""
    layout = _layouts(graph, influences)
    live = (lambda i: True) if influences is None else influences
    feeding = [
        i
        for node in graph.nodes
        if layout[node.id] == "pooled" and live(node.id)
        for i in _live_inputs(node, influences)
        if layout[i] == "spatial"
    ]
    if not feeding:
        feeding = [i for i in graph.outputs if layout[i] == "spatial" and live(i)]
    if not feeding:
        raise ReceptiveFieldError(
            f"Model `{graph.name}` has no layer with a spatial output. Expected an image input of "
            "shape (height, width, channels) or a signal of shape (length, channels)."
        )
    return graph.nodes[max(feeding)]


def _named_end_point(
    graph: ModelGraph, node: Node, influences: Influences
) -> tuple[Node, tuple[str, ...]]:
    """The layer that last changed the field of map ``node``, and the layers after it.

    Batch normalisation, activations, dropout and the like keep every position's field: a
    report names the convolution before them, as students draw it. The walk stops at a layer
    with several inputs, one that changes positions, or a shared layer whose last call is
    another node (a name must find the node).
    """
    after: list[str] = []
    while node.inputs and is_position_identity(node):
        live = _live_inputs(node, influences)
        if len(live) != 1:
            break
        producer = graph.nodes[live[0]]
        if producer.output_shape[:-1] != node.output_shape[:-1] or len(producer.output_shape) < 2:
            break
        if graph.nodes_of(producer.layer.name)[-1].id != producer.id:
            break
        after.insert(0, node.layer.name)
        node = producer
    return node, tuple(after)


def _default(graph: ModelGraph, influences: Influences) -> tuple[Node, Node, tuple[str, ...]]:
    """The last map, the node the report names and the layers between them."""
    last = _last_map(graph, influences)
    named, after = _named_end_point(graph, last, influences)
    return last, named, after


def default_end_point(
    graph: ModelGraph, *, paths: Paths = "possible", influences: Influences = None
) -> str:
    """The layer whose receptive field the course reports when none is named.

    It is the network's last spatial feature map, the one feeding global pooling, ``Flatten``
    or a head that mixes every position (for a fully convolutional model, its last spatial
    output), named after the last layer that changes its field: the convolution, not the batch
    normalisation or activation after it. Chosen from the graph alone: a layer the analysis
    cannot follow never moves the end point to an earlier layer.

    Args:
        graph: the model graph.
        paths: which calls may be the end point or lead to it: ``"possible"`` leaves out those
            that provably cannot change the model's output, ``"all"`` none (``"certain"``
            chooses as ``"possible"``: the end point is a map of the network either way).
        influences: node id -> whether it can influence the output; replaces `paths`.

    Raises:
        ReceptiveFieldError: the model has no spatial layer.
    """
    if influences is not None or paths == "all":
        return _default(graph, influences)[1].layer.name
    return _default_live(graph)[1].layer.name


def _default_live(graph: ModelGraph) -> tuple[Node, Node, tuple[str, ...]]:
    """`_default` among the calls that can change the model's output.

    Raises:
        ReceptiveFieldError: no spatial map, or none that can change the output (saying why).
    """
    influence = output_influence(graph)
    try:
        return _default(graph, _counted(influence, "possible"))
    except ReceptiveFieldError:
        _default(graph, None)  # no spatial map at all: that error says so
        images = [i for i in graph.inputs if len(graph.nodes[i].output_shape) >= 2]
        why = influence.reason(images[0]) if images else None
        raise ReceptiveFieldError(
            f"No feature map of model `{graph.name}` can change its output"
            + (f": {why}." if why else ".")
        ) from None


def undecided_calls(graph: ModelGraph, end_point: str) -> list[tuple[Node, str]]:
    """The calls that change `end_point`'s units only if some weight is non-zero (``MAYBE``).

    The ``"certain"`` field leaves them out; when there are none it is the ``"possible"`` one.

    Args:
        graph: the model graph.
        end_point: a layer name (a shared layer: its last call).

    Returns:
        Each such call with the reason, in graph order.

    Raises:
        ReceptiveFieldError: no layer of that name.
    """
    towards = _towards(graph, _find_node(graph, end_point))
    return [(graph.nodes[i], towards.reason(i) or "") for i in sorted(towards.undecided_nodes())]


def _find_node(graph: ModelGraph, name: str) -> Node:
    nodes = graph.nodes_of(name)
    if nodes:
        # A shared layer is reported at its last call, the one closest to the head.
        return nodes[-1]
    names = list(graph.layers)
    examples = ", ".join(f"`{n}`" for n in names[-8:])
    raise ReceptiveFieldError(
        f"Model `{graph.name}` has no layer named `{name}`. Expected one of its {len(names)} "
        f"layers, for example {examples}."
    )


def _relevant(
    graph: ModelGraph, source: int, target: int, influences: Influences = None
) -> tuple[list[int], dict[int, int]]:
    """Nodes on some counted path from ``source`` to ``target``, and how many paths pass
    through each (a path through a producer `influences` leaves out is no path)."""
    live = _live_inputs
    forward = {source: 1}
    for node in graph.nodes:
        if node.id > source:
            count = sum(forward.get(i, 0) for i in live(node, influences))
            if count:
                forward[node.id] = count
    backward = {target: 1}
    for node in reversed(graph.nodes[: target + 1]):
        count = backward.get(node.id, 0)
        if count:
            for i in live(node, influences):
                backward[i] = backward.get(i, 0) + count
    on_path = sorted(i for i in forward if i in backward)
    return on_path, {i: forward[i] * backward[i] for i in on_path}


def _row(graph: ModelGraph, step: Step, on_every_path: bool) -> Row:
    node = step.node
    out = step.output
    assert isinstance(out, tuple)
    rank = len(out)
    fields: list[tuple[AxisField, ...]] = [
        # A grayscale Reshape((h, w, 1)) adds a spatial axis: its input is the image itself.
        f if len(f) == rank else identity_field(tuple(a.n for a in out))
        for f in step.inputs
        if isinstance(f, tuple)
    ]
    if step.window is not None:
        w = step.window.axes
        k, d, s, p = (tuple(a.k for a in w), tuple(a.d for a in w), tuple(a.s for a in w),
                      tuple(a.p for a in w))  # fmt: skip
    else:
        k = d = s = (1,) * rank
        p = (0,) * rank

    def merged_start(axis: int) -> int | None:
        starts = [f[axis].known_start for f in fields]
        return None if any(v is None for v in starts) else min(v for v in starts if v is not None)

    return Row(
        layer=node.layer.name,
        type=node.layer.class_name,
        k=k,
        d=d,
        s=s,
        p=p,
        n_in=tuple(fields[0][a].n for a in range(rank)),
        n_out=tuple(f.n for f in out),
        j_in=tuple(fields[0][a].j for a in range(rank)),
        j_out=tuple(f.j for f in out),
        r_in=tuple(max(f[a].r for f in fields) for a in range(rank)),
        r_out=tuple(f.r for f in out),
        start_in=tuple(merged_start(a) for a in range(rank)),
        start_out=tuple(f.known_start for f in out),
        inputs=tuple(graph.nodes[i].layer.name for i in node.inputs),
        on_every_path=on_every_path,
    )


def compute_receptive_field(
    graph: ModelGraph,
    end_point: str | None = None,
    *,
    paths: Paths = "possible",
    influences: Influences = None,
) -> ReceptiveFieldReport:
    """The receptive field of ``end_point`` (default: `default_end_point`) on the image input.

    Args:
        graph: the model, as built by `grader.graph_builder.build_graph`.
        end_point: a layer name; a shared layer is taken at its last call.
        paths: which calls the field counts: ``"possible"`` (those that can change the end
            point), ``"certain"`` (those certain to, whatever the weights: for a minimum) or
            ``"all"``; see the module docstring.
        influences: node id -> whether it can influence the model's output, for both the
            choice of the end point and the field; replaces `paths` (None: `paths` decides).

    Returns:
        The `ReceptiveFieldReport`, with the course formula where it applies and the footprint
        where the input size is known. With several image inputs, the field refers to the first
        model input the end-point depends on spatially.

    Raises:
        ReceptiveFieldError: unknown end-point, an end-point without spatial layout (a
            ``Flatten`` output), or a layer on the way that cannot be analysed exactly; for the
            default end point the message names the map the field was wanted at.
    """
    if influences is not None or paths == "all":
        last, named, after = _default(graph, influences)
    else:
        last, named, after = _default_live(graph)
    node = named if end_point is None else _find_node(graph, end_point)
    if end_point is not None and node.id != named.id:
        after = ()
    counts = influences
    if influences is None and paths != "all":
        towards = _towards(graph, node)
        counts = _counted(towards, paths)
        _check_reaches(graph, node, towards, paths)
    prop, steps = propagate(graph, counts)
    if end_point is None:
        try:
            prop.state(node.id)
        except ReceptiveFieldError as exc:
            where = f"`{node.layer.name}` ({node.layer.class_name})"
            if node.id != last.id:
                where += f", which the head reads through `{last.layer.name}`,"
            else:
                where += ", the last feature map before the head,"
            raise ReceptiveFieldError(
                f"The receptive field at {where} cannot be computed: {exc.message}"
            ) from exc
    return _report(graph, prop, steps, node, after, counts)


def _check_reaches(graph: ModelGraph, node: Node, towards: OutputInfluence, paths: Paths) -> None:
    """Refuse an end point that no counted path joins to the image, saying why.

    Raises:
        ReceptiveFieldError: every path from the image to `node` is left out by `paths`.
    """
    floor = _FLOOR[paths]
    images = [i for i in graph.inputs if len(graph.nodes[i].output_shape) >= 2]
    if not images or any(towards.state(i) >= floor for i in images):
        return
    image = images[0]
    state = towards.state(image)
    if state is Effect.NO and towards.reason(image) == "it is not connected to the model's output":
        return  # no path at all: the field's own check says so
    label = f"`{node.layer.name}` ({node.layer.class_name})"
    verb = "may not change" if state is Effect.MAYBE else "cannot change"
    raise ReceptiveFieldError(f"The image {verb} the units of {label}: {towards.reason(image)}.")


def _report(
    graph: ModelGraph,
    prop: Propagation,
    steps: dict[int, list[Step]],
    node: Node,
    after: tuple[str, ...],
    influences: Influences,
) -> ReceptiveFieldReport:
    state = prop.state(node.id)
    candidates = [i for i in graph.inputs if i in state] + [
        i for i in state if i not in graph.inputs
    ]
    if not candidates:
        raise ReceptiveFieldError(
            f"Layer `{node.layer.name}` ({node.layer.class_name}) does not depend on an image "
            "input. Expected an end-point on the path from an input of shape (height, width, "
            "channels)."
        )
    input_id = candidates[0]
    field = state[input_id]
    if isinstance(field, FlattenedField):
        producer = graph.nodes[node.inputs[0]].layer.name if node.inputs else "?"
        raise ReceptiveFieldError(
            f"Layer `{node.layer.name}` ({node.layer.class_name}) has no spatial layout: its "
            "features each come from one position, folded into one axis. Expected an end-point "
            f"with spatial output, such as `{producer}`, or a layer after the head's Dense."
        )
    input_node = graph.nodes[input_id]
    input_size = tuple(input_node.output_shape[:-1])
    rank = len(field) if isinstance(field, tuple) else len(input_size)
    if isinstance(field, NoFormulaField):
        rank = field.rank
    if len(input_size) < rank:
        # A (28, 28) grayscale input reshaped to (28, 28, 1): both axes are spatial.
        input_size = tuple(input_node.output_shape[:rank])
    on_path, through = _relevant(graph, input_id, node.id, influences)
    total_paths = through[node.id]
    rows = []
    for i in on_path:
        for step in steps.get(i, []):
            if step.input_id == input_id and isinstance(step.output, tuple):
                rows.append(_row(graph, step, through[i] == total_paths))
    footprint = footprint_note = None
    context: TraceContext | None = None
    try:
        traced = trace(graph, node.id, input_id, influences)
        footprint = summarize(traced)
        context = TraceContext(graph, node.id, input_id, traced, influences)
    except ReceptiveFieldError as exc:
        footprint_note = exc.message
    is_global = False
    formula_note = None
    size: tuple[int | None, ...]
    jump: tuple[int | None, ...]
    start: tuple[int | None, ...]
    output_size: tuple[int | None, ...]
    if isinstance(field, tuple):
        size = tuple(f.r for f in field)
        jump = tuple(f.j for f in field)
        start = tuple(f.known_start for f in field)
        output_size = tuple(f.n for f in field)
    elif isinstance(field, NoFormulaField):
        size = jump = start = (None,) * rank
        output_size = tuple(node.output_shape[:-1])
        formula_note = field.reason
    else:
        # Global: every unit sees what any unit of the globalised tensor saw, in the image.
        is_global = True
        start, size = _global_extent(field, input_size, context)
        jump = size
        output_size = ()
    return ReceptiveFieldReport(
        end_point=node.layer.name,
        end_point_type=node.layer.class_name,
        input_name=input_node.layer.name,
        is_global=is_global,
        size=size,
        jump=jump,
        start=start,
        input_size=input_size,
        output_size=output_size,
        rows=tuple(rows),
        formula_note=formula_note,
        footprint=footprint,
        footprint_note=footprint_note,
        unchanged_after=after,
        trace=context,
    )


def _global_extent(
    field: GlobalField, input_size: tuple[int | None, ...], context: TraceContext | None
) -> tuple[tuple[int | None, ...], tuple[int | None, ...]]:
    """First position and extent per axis of what a global end point sees.

    From the footprint when traced (exact whatever the layers), else from the formula's extent.
    """
    starts: list[int | None] = []
    sizes: list[int | None] = []
    if context is not None:
        for array in context.footprint.proj:
            seen = np.asarray(array.any(axis=tuple(range(array.ndim - 1))))
            hits = [int(i) for i in seen.nonzero()[0]]
            starts.append(hits[0] if hits else None)
            sizes.append(hits[-1] - hits[0] + 1 if hits else 0)
        return tuple(starts), tuple(sizes)
    for extent, n in zip(field.extent, input_size, strict=True):
        if n is None:
            starts.append(None if extent is None else max(extent[0], 0))
            sizes.append(None)
        elif extent is None:
            starts.append(None)
            sizes.append(None)
        else:
            first, last = max(extent[0], 0), min(extent[1], n - 1)
            starts.append(first)
            sizes.append(last - first + 1)
    return tuple(starts), tuple(sizes)
