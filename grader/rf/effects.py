"""How a layer call moves positions and channels: the receptive-field effects and their readers.

Each supported layer class's record (`grader.layers`) names a `Geometry`: a function that reads a
layer call's config and returns its `Effect` on positions, and one that returns what it does to
channels. The readers and the geometries the records share are in `grader.rf.readers`;
`grader.rf.geometry` looks the records up; `grader.rf.fields` and `grader.rf.footprint`
propagate the effects.

Effects on positions:

- `Window`: a sliding window per spatial axis (convolutions, pooling, zero padding, cropping),
  described by kernel ``k``, dilation ``d``, stride ``s`` and the padding added on the left
  ``p`` (negative for cropping), as in Araujo, Norris and Sim, "Computing Receptive Fields of
  Convolutional Neural Networks", Distill 2019. The course formula applies.
- `Remap`: positions remapped per axis in a way that is not a sliding window (``UpSampling``,
  transposed convolutions, ``Resizing``): output position ``u`` reads a few input positions
  that depend on ``u`` itself, not only on ``u * stride``. The field is exact per position but
  not translation-invariant, so the course formula does not apply.
- `Rearrange`: ``Reshape``/``Permute`` that move values between positions and channels
  (space-to-depth, depth-to-space, transposing the image): exact per element.
- `Reduce`: a statistic over some spatial axes, broadcast back (``LayerNormalization`` over
  spatial axes, ``GroupNormalization``, ``AutoContrast``): every position depends on the whole
  reduced axes.
- `POINTWISE`: each output position depends on the same input position only (activations,
  normalisation over channels, dropout and noise, ``Dense`` on the channel axis, and the random
  augmentation layers, which are the identity at inference: the grader's receptive field is the
  field of the network it evaluates, ``model(x, training=False)``).
- `GLOBAL`: global pooling: every output depends on every input position.
- `FLATTEN`: positions folded into one feature axis.
- `MERGE`: element-wise merges and concatenation (the union over the inputs).
- `ADD_CHANNEL_AXIS`: a ``Reshape`` appending a channel axis of 1, as in ``(28, 28) ->
  (28, 28, 1)`` right after a grayscale input.

Effects on channels (`Channels`): ``keep`` (channel ``c`` of the output depends on channel
``c`` of the input only), ``mix`` (every input channel), ``depthwise`` (a depth multiplier) or
``groups``. They matter only where a later ``Reshape`` turns channels into positions.

Anything that cannot be analysed exactly raises a `ReceptiveFieldError` naming the layer and
saying what to write instead: refusing beats a silently wrong number.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from grader.errors import ReceptiveFieldError
from grader.graph import Node, Shape


@dataclass(frozen=True)
class AxisWindow:
    """The window a layer slides along one spatial axis.

    Attributes:
        k: kernel (or pool) size, before dilation.
        d: dilation rate; the window spans ``k_eff = d * (k - 1) + 1`` input positions.
        s: stride.
        p: padding added before the first position (negative when cropping); ``None`` when it
            depends on an unknown input size (``same`` padding with a stride above 1).
        p_total: padding on both sides together (negative when cropping), or ``None``.
        n_in: input size along the axis, or ``None``.
        n_out: output size along the axis, or ``None``.
    """

    k: int
    d: int
    s: int
    p: int | None
    p_total: int | None
    n_in: int | None
    n_out: int | None

    @property
    def k_eff(self) -> int:
        """Input positions one output position spans, dilation included."""
        return self.d * (self.k - 1) + 1


@dataclass(frozen=True)
class Window:
    """A sliding window along every spatial axis (see `AxisWindow`)."""

    axes: tuple[AxisWindow, ...]


@dataclass(frozen=True)
class AxisRemap:
    """How one axis of a `Remap` layer maps output positions to input positions.

    Attributes:
        method: ``"repeat"`` (nearest up-sampling by an integer factor: ``u // factor``),
            ``"nearest"``/``"bilinear"`` (TensorFlow's ``tf.image.resize`` with half-pixel
            centres), or ``"transpose"`` (a transposed convolution: output ``o`` receives input
            ``i`` through tap ``t`` when ``o = i * s + t * d - p``).
        n_in: input size along the axis (``None`` when unknown).
        n_out: output size along the axis (``None`` when unknown).
        k, d, s, p: the transposed convolution's kernel, dilation, stride and the left padding
            TensorFlow crops; ``s`` is the factor for ``"repeat"``.
    """

    method: str
    n_in: int | None
    n_out: int | None
    k: int = 1
    d: int = 1
    s: int = 1
    p: int | None = 0


@dataclass(frozen=True)
class Remap:
    """Positions remapped per axis (see `AxisRemap`); ``why`` says why no formula applies."""

    axes: tuple[AxisRemap, ...]
    why: str


@dataclass(frozen=True)
class Rearrange:
    """A ``Reshape`` or ``Permute`` that moves values between positions and channels."""

    why: str


@dataclass(frozen=True)
class Reduce:
    """A statistic over spatial axes ``axes`` (0 = the first spatial axis) broadcast back."""

    axes: tuple[int, ...]


@dataclass(frozen=True)
class PlainEffect:
    """A layer effect without per-axis geometry (`POINTWISE`, `GLOBAL`, `FLATTEN`, `MERGE`)."""

    name: str


POINTWISE = PlainEffect("pointwise")
GLOBAL = PlainEffect("global")
FLATTEN = PlainEffect("flatten")
MERGE = PlainEffect("merge")
ADD_CHANNEL_AXIS = PlainEffect("add_channel_axis")

Effect = Window | Remap | Rearrange | Reduce | PlainEffect


@dataclass(frozen=True)
class Channels:
    """What a layer does to channels: ``keep``, ``mix``, ``depthwise`` or ``groups``.

    ``factor`` is the depth multiplier (``depthwise``) or the number of groups (``groups``).
    """

    mode: str
    factor: int = 1


KEEP = Channels("keep")
MIX = Channels("mix")


@dataclass(frozen=True)
class Geometry:
    """The receptive-field record of one layer class: part of its `grader.layers` record.

    Attributes:
        category: which effect, in one word (`GEOMETRY_CATEGORIES`): ``identity`` at inference,
            ``elementwise``, ``channel_mix`` (each position on its own), ``axis`` (local or a
            reduction, by the layer's ``axis``), ``reduce``, ``window`` (k, s, d, p per axis),
            ``remap``, ``rearrange``, ``global``, ``flatten``, ``merge``, or ``refused``.
        effect: reads a layer call (and its input's spatial sizes) and returns its `Effect`;
            raises `ReceptiveFieldError` for configurations without exact geometry.
        channels: reads a layer call and returns its `Channels` effect.
        why: one line for documentation: why the class has this geometry.
    """

    category: str
    effect: Callable[[Node, Shape], Effect]
    channels: Callable[[Node], Channels]
    why: str


GEOMETRY_CATEGORIES = frozenset(
    {
        "identity",
        "elementwise",
        "channel_mix",
        "axis",
        "reduce",
        "window",
        "remap",
        "rearrange",
        "global",
        "flatten",
        "merge",
        "refused",
    }
)


def describe(node: Node) -> str:
    """The Keras-style way to name a layer in a message: "Layer `conv_3` (Conv2D)"."""
    return f"Layer `{node.layer.name}` ({node.layer.class_name})"


def int_tuple(value: Any, rank: int, what: str, node: Node) -> tuple[int, ...]:
    """Read an int or a sequence of ints from a layer config as one int per axis."""
    if isinstance(value, bool):
        value = None
    if isinstance(value, int):
        return (value,) * rank
    if (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(value) == rank
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        return tuple(value)
    raise ReceptiveFieldError(
        f"{describe(node)} has {what}={value!r}. Expected an integer or {rank} integers."
    )


def pair_tuple(value: Any, rank: int, what: str, node: Node) -> tuple[tuple[int, int], ...]:
    """Read ZeroPadding/Cropping amounts as one ``(before, after)`` pair per axis."""
    if isinstance(value, int) and not isinstance(value, bool):
        return ((value, value),) * rank
    if isinstance(value, Sequence) and not isinstance(value, str):
        items = list(value)
        # A 1D layer stores a single (before, after) pair.
        if rank == 1 and len(items) == 2 and all(isinstance(v, int) for v in items):
            return ((items[0], items[1]),)
        if len(items) == rank:
            pairs = []
            for item in items:
                if isinstance(item, int) and not isinstance(item, bool):
                    pairs.append((item, item))
                elif (
                    isinstance(item, Sequence)
                    and len(item) == 2
                    and all(isinstance(v, int) and not isinstance(v, bool) for v in item)
                ):
                    pairs.append((item[0], item[1]))
                else:
                    break
            else:
                return tuple(pairs)
    raise ReceptiveFieldError(
        f"{describe(node)} has {what}={value!r}. Expected an integer or {rank} (before, after) "
        "pairs."
    )


def same_padding(n: int | None, k_eff: int, s: int) -> tuple[int | None, int | None]:
    """The ``(left, total)`` padding TensorFlow adds for ``padding="same"``.

    ``total = max((ceil(n / s) - 1) * s + k_eff - n, 0)`` and the smaller half goes left. With a
    stride of 1 the total is ``k_eff - 1`` whatever ``n`` is; otherwise it needs ``n``.
    """
    if s == 1:
        total = k_eff - 1
        return total // 2, total
    if n is None:
        return None, None
    # An integer ceil: the float n / s can round down past an integer once n exceeds 2**53.
    total = max((-(-n // s) - 1) * s + k_eff - n, 0)
    return total // 2, total


def window_output_length(n: int | None, k_eff: int, s: int, p_total: int | None) -> int | None:
    """Output size of a window of span ``k_eff`` and stride ``s`` over ``n`` padded positions."""
    if n is None or p_total is None:
        return None
    return (n + p_total - k_eff) // s + 1
