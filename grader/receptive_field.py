"""Exact receptive fields of Keras models, per spatial axis, for any layer as end-point.

Follows Araujo, Norris and Sim, "Computing Receptive Fields of Convolutional Neural Networks"
(Distill, 2019). Along each spatial axis, output unit ``u`` of the end-point sees the input
interval ``[start + u * jump, start + u * jump + size - 1]``; ``size`` counts padding positions,
so it can exceed the image (ResNet50's field is wider than its 224-pixel input). For ``same``
padding the left padding is the one TensorFlow adds: ``pad_total = max((ceil(n / s) - 1) * s +
k_eff - n, 0)``, ``pad_left = pad_total // 2``, so ``start`` is exact too.

Graphs with branches take, at every merge, the union of the intervals of all paths (smallest
start, largest end), including the offsets that different paddings create; a merge of paths with
different jumps is refused (`ReceptiveFieldError`), as are layers with fractional jumps
(``UpSampling``, transposed convolutions, resizing) and reshapes of spatial axes. Anything after
a layer that mixes every position (global pooling, a Dense head after ``Flatten``, a
squeeze-and-excitation gate) is *global*: it sees the whole input.

With an unknown input size, sizes and jumps stay exact; ``start`` becomes ``None`` once a
``same`` padding with a stride above 1 depends on the size (merges of paths that share that
unknown offset stay exact, others are refused).

``to_dict()`` gives::

    {"end_point", "end_point_type", "input", "size": [h, w], "jump": [h, w], "start": [h, w],
     "global": bool, "input_size": [h, w], "output_size": [h, w], "layers": [row, ...]}

with one row per node on the paths from the image input to the end-point (topological order):
``{"layer", "type", "k", "d", "s", "p", "n_in", "n_out", "j_in", "j_out", "r_in", "r_out",
"start_in", "start_out", "inputs", "on_every_path"}``, every per-axis value a list (also for
square fields: ``[3, 3]``, never ``3``), ``p`` the padding before the first position (negative
for cropping).
"""

from __future__ import annotations

from grader.errors import ReceptiveFieldError
from grader.graph import ModelGraph, Node
from grader.rf.fields import (
    AxisField,
    FlattenedField,
    GlobalField,
    Propagation,
    Step,
    identity_field,
    propagate,
)
from grader.rf.hints import HINT_KINDS, dilation_target, rf_if_appended
from grader.rf.report import ReceptiveFieldReport, Row, format_table, growth

__all__ = [
    "HINT_KINDS",
    "ReceptiveFieldError",
    "ReceptiveFieldReport",
    "Row",
    "compute_receptive_field",
    "default_end_point",
    "dilation_target",
    "format_table",
    "growth",
    "rf_if_appended",
]


def _is_spatial(field: object) -> bool:
    return isinstance(field, tuple)


def _default_node(prop: Propagation) -> Node:
    graph = prop.graph
    spatial: dict[int, set[int]] = {}
    for node in graph.nodes:
        state = prop.states[node.id]
        if isinstance(state, dict):
            spatial[node.id] = {i for i, f in state.items() if _is_spatial(f)}
    # The last spatial node whose output is consumed by something that mixes every position
    # (global pooling, Flatten, a Dense head) or loses the layout.
    feeding_head: list[int] = []
    for node in graph.nodes:
        state = prop.states[node.id]
        if not isinstance(state, dict):
            continue
        for input_id, field in state.items():
            if isinstance(field, (GlobalField, FlattenedField)):
                feeding_head.extend(i for i in node.inputs if input_id in spatial.get(i, ()))
    if feeding_head:
        return graph.nodes[max(feeding_head)]
    # A fully convolutional model: its last spatial output.
    for candidates in (graph.outputs, tuple(n.id for n in graph.nodes)):
        found = [i for i in candidates if spatial.get(i)]
        if found:
            return graph.nodes[max(found)]
    refused = [s for s in prop.states.values() if isinstance(s, ReceptiveFieldError)]
    if refused:
        raise refused[0]
    raise ReceptiveFieldError(
        f"Model `{graph.name}` has no layer with a spatial output. Expected an image input of "
        "shape (height, width, channels) or a signal of shape (length, channels)."
    )


def default_end_point(graph: ModelGraph) -> str:
    """The layer whose receptive field the course reports when none is named.

    It is the last layer, in topological order, whose output is still spatial and feeds global
    pooling, ``Flatten`` or a head that mixes every position; for a fully convolutional model,
    the last spatial model output.

    Raises:
        ReceptiveFieldError: the model has no spatial layer.
    """
    return _default_node(propagate(graph)[0]).layer.name


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


def _relevant(graph: ModelGraph, source: int, target: int) -> tuple[list[int], dict[int, int]]:
    """Nodes on some path from ``source`` to ``target``, and how many paths pass through each."""
    forward = {source: 1}
    for node in graph.nodes:
        if node.id > source:
            count = sum(forward.get(i, 0) for i in node.inputs)
            if count:
                forward[node.id] = count
    backward = {target: 1}
    for node in reversed(graph.nodes[: target + 1]):
        count = backward.get(node.id, 0)
        if count:
            for i in node.inputs:
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
    graph: ModelGraph, end_point: str | None = None
) -> ReceptiveFieldReport:
    """The receptive field of ``end_point`` (default: `default_end_point`) on the image input.

    Args:
        graph: the model, as built by `grader.graph_builder.build_graph`.
        end_point: a layer name; a shared layer is taken at its last call.

    Returns:
        The `ReceptiveFieldReport`. With several image inputs, the field refers to the first
        model input the end-point depends on spatially.

    Raises:
        ReceptiveFieldError: unknown end-point, an end-point without spatial layout (a
            ``Flatten`` output), or a layer on the way that cannot be analysed exactly.
    """
    prop, steps = propagate(graph)
    node = _default_node(prop) if end_point is None else _find_node(graph, end_point)
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
    if len(input_size) < rank:
        # A (28, 28) grayscale input reshaped to (28, 28, 1): both axes are spatial.
        input_size = tuple(input_node.output_shape[:rank])
    on_path, through = _relevant(graph, input_id, node.id)
    total_paths = through[node.id]
    rows = []
    for i in on_path:
        for step in steps.get(i, []):
            if step.input_id == input_id and isinstance(step.output, tuple):
                rows.append(_row(graph, step, through[i] == total_paths))
    if isinstance(field, tuple):
        return ReceptiveFieldReport(
            end_point=node.layer.name,
            end_point_type=node.layer.class_name,
            input_name=input_node.layer.name,
            is_global=False,
            size=tuple(f.r for f in field),
            jump=tuple(f.j for f in field),
            start=tuple(f.known_start for f in field),
            input_size=input_size,
            output_size=tuple(f.n for f in field),
            rows=tuple(rows),
        )
    # Global: every unit sees what any unit of the globalised tensor saw, within the image.
    starts: list[int | None] = []
    sizes: list[int | None] = []
    for extent, n in zip(field.extent, input_size, strict=True):
        if n is None:
            starts.append(None if extent is None else max(extent[0], 0))
            sizes.append(None)
        elif extent is None:
            starts.append(0)
            sizes.append(n)
        else:
            first, last = max(extent[0], 0), min(extent[1], n - 1)
            starts.append(first)
            sizes.append(last - first + 1)
    return ReceptiveFieldReport(
        end_point=node.layer.name,
        end_point_type=node.layer.class_name,
        input_name=input_node.layer.name,
        is_global=True,
        size=tuple(sizes),
        jump=tuple(sizes),
        start=tuple(starts),
        input_size=input_size,
        output_size=(),
        rows=tuple(rows),
    )
