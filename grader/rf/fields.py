"""Propagating receptive fields through a `ModelGraph`, node by node, in topological order.

For every node and every spatial model input it depends on, the node's *field* says which input
positions each of its output units sees. Along one axis (`AxisField`), output unit ``u`` covers
the input interval ``[start + u * j, start + u * j + r - 1]`` (Araujo, Norris and Sim, Distill
2019): ``j`` is the jump (product of strides), ``r`` the size and ``start`` the left edge of unit
0, negative when padding puts it outside the image. A window layer with effective kernel
``k_eff = d * (k - 1) + 1``, stride ``s`` and left padding ``p`` maps a field to::

    j_out = j_in * s
    r_out = r_in + (k_eff - 1) * j_in
    start_out = start_in - p * j_in

A merge takes, per axis, the union of its inputs' intervals: the smallest start and the largest
end. A field can also be `GLOBAL` (every unit sees the whole input) or `FLATTENED` (one feature
per position, but no spatial layout left).

The formula only describes translation-invariant fields. From a layer that remaps positions
(``UpSampling``, transposed convolutions, ``Resizing``, ``Reshape``/``Permute`` of positions), a
merge of paths whose jumps differ, or numbers past `MAX_SIZE`, a node's field is a
`NoFormulaField` naming that layer and why: the field is still exact, per position, in
`grader.rf.footprint`, just not the course formula.

When the input size is unknown, ``same`` padding with a stride above 1 pads by an amount that
depends on it; from there on ``start`` is an offset from an unknown position, tagged with the
node that introduced it (the *anchor*). Sizes and jumps stay exact, and so does the union of
paths that share the anchor (a residual block after a strided stem); paths with different
anchors cannot be aligned and their merge is refused.

Errors are recorded per node rather than raised at once, so that a refused layer only matters
when the requested end-point depends on it.

`propagate` takes an optional ``influences`` predicate (node id -> bool): producers for which it
is False (a branch multiplied by a constant zero, say) are left out of their consumers' fields.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from grader.errors import ReceptiveFieldError
from grader.graph import ModelGraph, Node, Shape
from grader.limits import MAX_SIZE
from grader.rf.effects import (
    ADD_CHANNEL_AXIS,
    FLATTEN,
    GLOBAL,
    MERGE,
    POINTWISE,
    Effect,
    Rearrange,
    Reduce,
    Remap,
    Window,
    describe,
)
from grader.rf.geometry import classify


@dataclass(frozen=True)
class AxisField:
    """The receptive field of a node's units along one spatial axis.

    Attributes:
        n: the node's output size along the axis (``None`` when unknown).
        j: jump: input positions between the fields of neighbouring units.
        r: size: input positions one unit sees, padding included.
        start: input position of unit 0's first position; when ``anchor`` is set, an offset
            from an unknown position instead.
        anchor: ``None`` when ``start`` is exact; else the id of the node whose padding depends
            on an unknown input size (``same`` with a stride above 1). Paths sharing the anchor
            still align exactly relative to each other, so their union is exact.
    """

    n: int | None
    j: int
    r: int
    start: int
    anchor: int | None = None

    @property
    def end(self) -> int:
        """Input position (or offset, see ``anchor``) of unit 0's last position."""
        return self.start + self.r - 1

    @property
    def known_start(self) -> int | None:
        """``start`` when it is an input position, ``None`` when it depends on the input size."""
        return self.start if self.anchor is None else None


# Per axis, the first and last input positions (inclusive, before clipping to the image) that
# some unit reaches; None where unknown.
Extent = tuple[tuple[int, int] | None, ...]


@dataclass(frozen=True)
class GlobalField:
    """Every unit sees every position any unit of the globalised tensor saw: ``extent``.

    That is the whole image unless ``valid`` strides left trailing positions unread.
    """

    extent: Extent


@dataclass(frozen=True)
class FlattenedField:
    """Positions folded into one feature axis (``Flatten``): no layout, positions within
    ``extent``; a layer mixing features (``Dense``) then makes it global."""

    extent: Extent


@dataclass(frozen=True)
class NoFormulaField:
    """Spatial, but the course formula does not apply from layer ``layer`` on: ``reason`` says
    why (positions remapped, paths with different jumps merged, numbers past `MAX_SIZE`). The
    exact field per position is then the footprint's (`grader.rf.footprint`)."""

    layer: str
    reason: str
    rank: int


class FormulaNotApplicable(ReceptiveFieldError):
    """The layer's field exists exactly, per position, but not as the course formula."""


Field = tuple[AxisField, ...] | GlobalField | FlattenedField | NoFormulaField
# Input node id -> the node's field with respect to that input. Inputs a node does not depend on
# spatially (a non-image input, or no path) are absent.
State = dict[int, Field]


@dataclass(frozen=True)
class Step:
    """How one node transformed the field of one input (the inputs of a hand-calculation row).

    Attributes:
        node: the node.
        input_id: the model input whose field this is.
        window: the sliding window for window layers, else ``None`` (stride 1, kernel 1).
        inputs: the input fields of the node that depend on the input, in call order.
        output: the node's output field.
    """

    node: Node
    input_id: int
    window: Window | None
    inputs: tuple[Field, ...]
    output: Field


@dataclass
class Propagation:
    """Fields of every node of a graph.

    Attributes:
        graph: the graph.
        spatial_inputs: ids of the model inputs with spatial axes (rank >= 2 with channels).
        states: node id -> `State`, or the `ReceptiveFieldError` that prevents one.
        windows: node id -> the `Window` of window layers.
    """

    graph: ModelGraph
    spatial_inputs: tuple[int, ...]
    states: dict[int, State | ReceptiveFieldError]
    windows: dict[int, Window]

    def state(self, node_id: int) -> State:
        """The node's state, raising the error recorded for it if it has none."""
        state = self.states[node_id]
        if isinstance(state, ReceptiveFieldError):
            raise state
        return state


def identity_field(dims: Shape) -> tuple[AxisField, ...]:
    """The field of an input image: each unit sees itself."""
    return tuple(AxisField(n, 1, 1, 0) for n in dims)


def _bounded(node: Node, field: tuple[AxisField, ...]) -> tuple[AxisField, ...]:
    """The field, if its size, jump and start stay within MAX_SIZE.

    Strides multiply the jump: a few hundred `same` convolutions with huge strides would give
    numbers past what Python prints (4,300 digits), and JSON readers round anything past 2**53.
    """
    for axis in field:
        if axis.r > MAX_SIZE or axis.j > MAX_SIZE or abs(axis.start) > MAX_SIZE:
            raise FormulaNotApplicable(
                f"{describe(node)} makes the receptive field, its jump or its offset larger than "
                f"{MAX_SIZE:,} input positions. Expected strides, dilations and kernels that fit "
                "the image."
            )
    return field


def _apply_window(
    field: tuple[AxisField, ...], window: Window, node_id: int
) -> tuple[AxisField, ...]:
    out = []
    for axis, w in zip(field, window.axes, strict=True):
        size = axis.r + (w.k_eff - 1) * axis.j
        if w.p is None:
            # The padding depends on the unknown input size: offsets restart from this node.
            out.append(AxisField(w.n_out, axis.j * w.s, size, 0, node_id))
        else:
            start = axis.start - w.p * axis.j
            out.append(AxisField(w.n_out, axis.j * w.s, size, start, axis.anchor))
    return tuple(out)


def _union(
    node: Node, fields: list[tuple[AxisField, ...]], names: list[str]
) -> tuple[AxisField, ...]:
    """Per axis, the smallest interval containing every input's interval for the same unit."""
    ranks = {len(f) for f in fields}
    if len(ranks) != 1:
        raise ReceptiveFieldError(
            f"{describe(node)} merges inputs with different numbers of spatial axes."
        )
    out = []
    for axis, column in enumerate(zip(*fields, strict=True)):
        jumps = [f.j for f in column]
        if len(set(jumps)) != 1:
            listed = ", ".join(f"{j} from `{name}`" for j, name in zip(jumps, names, strict=True))
            raise FormulaNotApplicable(
                f"{describe(node)} merges inputs whose jumps differ along axis {axis}: {listed}, "
                "so the receptive field changes from one output position to the next."
            )
        sizes = [f.n for f in column]
        known = {n for n in sizes if n is not None}
        if len(known) > 1:
            raise ReceptiveFieldError(
                f"{describe(node)} merges inputs of different spatial sizes along axis {axis}: "
                f"{sizes}. Expected equal sizes; broadcasting positions is not supported."
            )
        anchors = {f.anchor for f in column}
        if len(anchors) != 1:
            raise ReceptiveFieldError(
                f"{describe(node)} merges paths whose alignment depends on the input size, "
                "which is unknown (`same` padding with a stride above 1 on some paths only). "
                "Give the model a fixed input shape."
            )
        start = min(f.start for f in column)
        end = max(f.end for f in column)
        out.append(
            AxisField(next(iter(known), None), jumps[0], end - start + 1, start, anchors.pop())
        )
    return tuple(out)


def _extent(field: Field) -> Extent:
    if isinstance(field, NoFormulaField):
        return (None,) * field.rank
    if not isinstance(field, tuple):
        return field.extent
    return tuple(
        None
        if f.anchor is not None or f.n is None
        else (f.start, f.start + (f.n - 1) * f.j + f.r - 1)
        for f in field
    )


def _union_extent(fields: Sequence[Field]) -> Extent:
    """Per axis, the positions reached by any unit of any of the fields."""
    extents = [_extent(f) for f in fields]
    out: list[tuple[int, int] | None] = []
    for column in zip(*extents, strict=True):
        known = [c for c in column if c is not None]
        out.append(
            None
            if len(known) < len(column)
            else (min(c[0] for c in known), max(c[1] for c in known))
        )
    return tuple(out)


def _channel_axis_concat(node: Node) -> bool:
    axis = node.layer.config.get("axis", -1)
    rank = len(node.output_shape)
    return isinstance(axis, int) and (axis == -1 or axis == rank)


def _spatial_rank(shape: Shape) -> int:
    return len(shape) - 1 if len(shape) >= 2 else 0


def _input_dims(node: Node, inputs: list[State]) -> Shape:
    """Spatial input sizes: the fields' sizes, completed by the graph's shapes where unknown."""
    declared = tuple(node.input_shapes[0][:-1]) if node.input_shapes else ()
    for state in inputs:
        for field in state.values():
            if isinstance(field, tuple):
                sizes = tuple(f.n for f in field)
                if len(sizes) == len(declared):
                    return tuple(
                        a if a is not None else b for a, b in zip(sizes, declared, strict=True)
                    )
                return sizes
    return declared


def _checked(node: Node, field: tuple[AxisField, ...]) -> tuple[AxisField, ...]:
    """The field, once its sizes agree with the graph's shape inference (a check of both).

    Sizes unknown here but known to the graph are taken from the graph.
    """
    dims = tuple(node.output_shape[:-1])
    computed = tuple(f.n for f in field)
    if len(dims) != len(computed) or any(
        a is not None and b is not None and a != b for a, b in zip(dims, computed, strict=False)
    ):
        raise ReceptiveFieldError(
            f"{describe(node)} has output shape {tuple(node.output_shape)}, but its window "
            f"geometry gives spatial sizes {computed}. Expected them to agree."
        )
    return tuple(
        f if f.n is not None or n is None else AxisField(n, f.j, f.r, f.start, f.anchor)
        for f, n in zip(field, dims, strict=True)
    )


def _node_state(
    node: Node,
    inputs: list[State],
    producers: list[str],
    windows: dict[int, Window],
    steps: dict[int, list[Step]],
) -> State:
    input_ids = sorted({i for state in inputs for i in state})
    state: State = {}
    if not input_ids:
        # Nothing spatial flows in (a label or metadata branch): no need to understand the layer.
        return state
    if all(isinstance(field, GlobalField) for s in inputs for field in s.values()):
        # Whatever comes after a global field sees the whole input too (MobileNet's head
        # reshapes its pooled features): no need to understand the layer.
        return {i: GlobalField(_union_extent([s[i] for s in inputs if i in s])) for i in input_ids}
    effect = classify(node, _input_dims(node, inputs))
    if isinstance(effect, Window):
        windows[node.id] = effect
    for input_id in input_ids:
        fields = [s[input_id] for s in inputs if input_id in s]
        if any(isinstance(f, GlobalField) for f in fields):
            # A squeeze-and-excitation gate: global times local is global.
            out: Field = GlobalField(_union_extent(fields))
        elif any(isinstance(f, FlattenedField) for f in fields):
            # A merge of flattened features keeps them flattened; Dense (or anything mixing
            # features) sees every position.
            flattened_ok = effect in (MERGE, FLATTEN) or (
                effect is POINTWISE and node.layer.class_name != "Dense"
            )
            extent = _union_extent(fields)
            out = FlattenedField(extent) if flattened_ok else GlobalField(extent)
        elif any(isinstance(f, NoFormulaField) for f in fields):
            out = _after_no_formula(node, effect, fields)
        else:
            named = [
                (n, s[input_id]) for n, s in zip(producers, inputs, strict=True) if input_id in s
            ]
            spatial = [(n, f) for n, f in named if isinstance(f, tuple)]
            try:
                out = _spatial_output(
                    node, effect, [f for _, f in spatial], [n for n, _ in spatial]
                )
            except FormulaNotApplicable as reason:
                out = NoFormulaField(
                    node.layer.name, reason.message, _spatial_rank(node.output_shape)
                )
        state[input_id] = out
        steps.setdefault(node.id, []).append(
            Step(node, input_id, effect if isinstance(effect, Window) else None, tuple(fields), out)
        )
    return state


def _after_no_formula(node: Node, effect: Effect, fields: list[Field]) -> Field:
    """A layer after one without a formula: none either, until everything is pooled."""
    unknown: Extent = (None,) * max(getattr(f, "rank", len(f) if isinstance(f, tuple) else 0)
                                    for f in fields)  # fmt: skip
    if effect is GLOBAL or (isinstance(effect, Reduce) and _reduces_every_axis(node, effect)):
        return GlobalField(unknown)
    if effect is FLATTEN:
        return FlattenedField(unknown)
    first = next(f for f in fields if isinstance(f, NoFormulaField))
    return NoFormulaField(first.layer, first.reason, _spatial_rank(node.output_shape))


def _reduces_every_axis(node: Node, effect: Reduce) -> bool:
    return len(effect.axes) == _spatial_rank(node.input_shapes[0]) if node.input_shapes else False


def _spatial_output(
    node: Node, effect: Effect, fields: list[tuple[AxisField, ...]], names: list[str]
) -> Field:
    if effect is GLOBAL:
        return GlobalField(_union_extent(fields))
    if effect is FLATTEN:
        return FlattenedField(_union_extent(fields))
    if isinstance(effect, Reduce):
        if len(fields) == 1 and len(effect.axes) == len(fields[0]):
            return GlobalField(_union_extent(fields))
        raise FormulaNotApplicable(
            f"{describe(node)} normalises along some spatial axes only (axis="
            f"{node.layer.config.get('axis')!r}): each unit sees whole rows or columns."
        )
    if isinstance(effect, Remap):
        raise FormulaNotApplicable(f"{describe(node)} has no sliding window: {effect.why}.")
    if isinstance(effect, Rearrange):
        raise FormulaNotApplicable(f"{describe(node)} has no sliding window: {effect.why}.")
    if effect is MERGE:
        if node.layer.class_name == "Concatenate" and not _channel_axis_concat(node):
            raise FormulaNotApplicable(
                f"{describe(node)} concatenates along axis {node.layer.config.get('axis')}, "
                "so positions of different inputs sit side by side."
            )
        return _checked(node, _bounded(node, _union(node, fields, names)))
    if len(fields) != 1:
        raise ReceptiveFieldError(f"{describe(node)} takes several spatial inputs; expected one.")
    (field,) = fields
    if isinstance(effect, Window):
        if len(effect.axes) != len(field):
            raise ReceptiveFieldError(
                f"{describe(node)} slides over {len(effect.axes)} axes, but its input has "
                f"{len(field)} spatial axes."
            )
        return _checked(node, _bounded(node, _apply_window(field, effect, node.id)))
    if effect is ADD_CHANNEL_AXIS:
        # Reshape((28, 28, 1)) on a (28, 28) grayscale input turns the old channel axis into a
        # spatial one: exact only while every unit still sees itself alone (nothing mixed the
        # old channels yet).
        if all(f.j == 1 and f.r == 1 and f.known_start == 0 for f in field):
            return identity_field(tuple(node.output_shape[:-1]))
        raise FormulaNotApplicable(
            f"{describe(node)} turns its channel axis into a spatial axis after layers that "
            "mixed positions."
        )
    return _checked(node, field)


def propagate(
    graph: ModelGraph, influences: Callable[[int], bool] | None = None
) -> tuple[Propagation, dict[int, list[Step]]]:
    """Compute every node's fields with respect to every spatial model input.

    Args:
        graph: the model graph (nodes in topological order).
        influences: node id -> whether the node can influence the model's output; producers
            for which it is False contribute nothing to their consumers. None: every node can.

    Returns:
        The `Propagation` and, per node id, the `Step`s it performed (one per input it depends
        on), from which the hand-calculation rows are made.
    """
    states: dict[int, State | ReceptiveFieldError] = {}
    windows: dict[int, Window] = {}
    steps: dict[int, list[Step]] = {}
    spatial_inputs = []
    for node in graph.nodes:
        if node.id in graph.inputs or (not node.inputs and node.layer.class_name == "InputLayer"):
            if _spatial_rank(node.output_shape):
                spatial_inputs.append(node.id)
                field = identity_field(tuple(node.output_shape[:-1]))
                states[node.id] = {node.id: field}
                steps[node.id] = [Step(node, node.id, None, (field,), field)]
            else:
                states[node.id] = {}
            continue
        live = [i for i in node.inputs if influences is None or influences(i)]
        failed = [states[i] for i in live if isinstance(states[i], ReceptiveFieldError)]
        if failed:
            states[node.id] = failed[0]
            continue
        # No input failed (checked above), so each has a state, in call order like `producers`.
        inputs = [state for i in live if isinstance(state := states[i], dict)]
        producers = [graph.nodes[i].layer.name for i in live]
        try:
            states[node.id] = _node_state(node, inputs, producers, windows, steps)
        except ReceptiveFieldError as error:
            states[node.id] = error
            steps.pop(node.id, None)
    return Propagation(graph, tuple(spatial_inputs), states, windows), steps
