"""How a layer call moves positions and channels: the receptive-field effects and their readers.

Each supported layer class's record (`grader.layers`) names a `Geometry`: a function that reads a
layer call's config and returns its `Effect` on positions, and one that returns what it does to
channels. `grader.rf.geometry` looks the records up; `grader.rf.fields` and
`grader.rf.footprint` propagate the effects.
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
        kind: ``"repeat"`` (nearest up-sampling by an integer factor: ``u // factor``),
            ``"nearest"``/``"bilinear"`` (TensorFlow's ``tf.image.resize`` with half-pixel
            centres), or ``"transpose"`` (a transposed convolution: output ``o`` receives input
            ``i`` through tap ``t`` when ``o = i * s + t * d - p``).
        n_in: input size along the axis (``None`` when unknown).
        n_out: output size along the axis (``None`` when unknown).
        k, d, s, p: the transposed convolution's kernel, dilation, stride and the left padding
            TensorFlow crops; ``s`` is the factor for ``"repeat"``.
    """

    kind: str
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
class Kind:
    """A layer effect without per-axis geometry (`POINTWISE`, `GLOBAL`, `FLATTEN`, `MERGE`)."""

    name: str


POINTWISE = Kind("pointwise")
GLOBAL = Kind("global")
FLATTEN = Kind("flatten")
MERGE = Kind("merge")
ADD_CHANNEL_AXIS = Kind("add_channel_axis")

Effect = Window | Remap | Rearrange | Reduce | Kind


@dataclass(frozen=True)
class Channels:
    """What a layer does to channels: ``keep``, ``mix``, ``depthwise`` or ``groups``.

    ``factor`` is the depth multiplier (``depthwise``) or the number of groups (``groups``).
    """

    kind: str
    factor: int = 1


KEEP = Channels("keep")
MIX = Channels("mix")


@dataclass(frozen=True)
class Geometry:
    """The receptive-field record of one layer class: part of its `grader.layers` record.

    Attributes:
        kind: which effect, in one word (`EFFECT_KINDS`): ``identity`` at inference,
            ``elementwise``, ``channel_mix`` (each position on its own), ``axis`` (local or a
            reduction, by the layer's ``axis``), ``reduce``, ``window`` (k, s, d, p per axis),
            ``remap``, ``rearrange``, ``global``, ``flatten``, ``merge``, or ``refused``.
        effect: reads a layer call (and its input's spatial sizes) and returns its `Effect`;
            raises `ReceptiveFieldError` for configurations without exact geometry.
        channels: reads a layer call and returns its `Channels` effect.
        why: one line for documentation: why the class has this geometry.
    """

    kind: str
    effect: Callable[[Node, Shape], Effect]
    channels: Callable[[Node], Channels]
    why: str


EFFECT_KINDS = frozenset(
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


def _check_channels_last(node: Node) -> None:
    data_format = node.layer.config.get("data_format")
    if data_format not in (None, "channels_last"):
        raise ReceptiveFieldError(
            f"{describe(node)} has data_format={data_format!r}. Expected 'channels_last': "
            "receptive fields are computed on channels-last tensors only."
        )


def _check_rank(node: Node, dims: Shape, rank: int) -> None:
    if len(dims) != rank:
        raise ReceptiveFieldError(
            f"{describe(node)} slides over {rank} spatial axes. Expected an input with {rank} "
            f"spatial axes and channels; received shape {node.input_shapes[0]}."
        )


def _sliding(
    node: Node,
    dims: Shape,
    kernel: tuple[int, ...],
    strides: tuple[int, ...],
    dilation: tuple[int, ...],
) -> Window:
    padding = str(node.layer.config.get("padding", "valid")).lower()
    _check_rank(node, dims, len(kernel))
    axes = []
    for n, k, s, d in zip(dims, kernel, strides, dilation, strict=True):
        k_eff = d * (k - 1) + 1
        p: int | None
        total: int | None
        if padding == "valid":
            p, total = 0, 0
        elif padding == "same":
            p, total = same_padding(n, k_eff, s)
        elif padding == "causal":
            # Keras pads causal convolutions on the left only, by the dilated kernel span.
            p, total = k_eff - 1, k_eff - 1
        else:
            raise ReceptiveFieldError(
                f"{describe(node)} has padding={padding!r}. Expected 'valid', 'same' or 'causal'."
            )
        axes.append(AxisWindow(k, d, s, p, total, n, window_output_length(n, k_eff, s, total)))
    return Window(tuple(axes))


def _conv(rank: int) -> Callable[[Node, Shape], Effect]:
    def effect(node: Node, dims: Shape) -> Effect:
        _check_channels_last(node)
        config = node.layer.config
        kernel = int_tuple(config.get("kernel_size"), rank, "kernel_size", node)
        strides = int_tuple(config.get("strides", 1), rank, "strides", node)
        dilation = int_tuple(config.get("dilation_rate", 1), rank, "dilation_rate", node)
        return _sliding(node, dims, kernel, strides, dilation)

    return effect


def _pool(rank: int) -> Callable[[Node, Shape], Effect]:
    def effect(node: Node, dims: Shape) -> Effect:
        _check_channels_last(node)
        config = node.layer.config
        pool = int_tuple(config.get("pool_size", 2), rank, "pool_size", node)
        raw_strides = config.get("strides")
        strides = pool if raw_strides is None else int_tuple(raw_strides, rank, "strides", node)
        return _sliding(node, dims, pool, strides, (1,) * rank)

    return effect


def _pad_or_crop(rank: int, sign: int) -> Callable[[Node, Shape], Effect]:
    key = "padding" if sign > 0 else "cropping"

    def effect(node: Node, dims: Shape) -> Effect:
        _check_channels_last(node)
        pairs = pair_tuple(node.layer.config.get(key, 1), rank, key, node)
        if len(dims) != rank:
            raise ReceptiveFieldError(
                f"{describe(node)} pads {rank} spatial axes. Expected an input with {rank} "
                f"spatial axes and channels; received shape {node.input_shapes[0]}."
            )
        axes = []
        for n, (before, after) in zip(dims, pairs, strict=True):
            total = sign * (before + after)
            axes.append(
                AxisWindow(1, 1, 1, sign * before, total, n, window_output_length(n, 1, 1, total))
            )
        return Window(tuple(axes))

    return effect


def _center_crop(node: Node, dims: Shape) -> Effect:
    """Keras' CenterCrop as a crop: ``(n - target) // 2`` positions go first.

    Keras resizes instead when the image is smaller than the target along an axis: refused.
    """
    _check_channels_last(node)
    config = node.layer.config
    targets = (config.get("height"), config.get("width"))
    if len(dims) != 2 or not all(isinstance(t, int) for t in targets):
        raise ReceptiveFieldError(
            f"{describe(node)} has height={targets[0]!r}, width={targets[1]!r}. Expected integer "
            "sizes on an input with two spatial axes."
        )
    if any(n is not None and t is not None and n < t for n, t in zip(dims, targets, strict=True)):
        raise ReceptiveFieldError(
            f"{describe(node)} resizes its input of size {tuple(dims)} up to {targets}, a "
            "fractional jump. Expected an input at least as large as the crop."
        )
    axes = []
    for n, t in zip(dims, targets, strict=True):
        assert isinstance(t, int)
        if n is None:
            # The offset depends on the unknown size, like `same` padding with a stride.
            axes.append(AxisWindow(1, 1, 1, None, None, None, t))
        else:
            axes.append(AxisWindow(1, 1, 1, -((n - t) // 2), t - n, n, t))
    return Window(tuple(axes))


def _random_crop(node: Node, dims: Shape) -> Effect:
    # Keras' RandomCrop returns its input unchanged at inference: exact only when its declared
    # output (the crop size) is the input size.
    if tuple(node.output_shape[:-1]) != tuple(dims):
        raise ReceptiveFieldError(
            f"{describe(node)} resizes its input at inference ({tuple(dims)} to "
            f"{tuple(node.output_shape[:-1])}), a fractional jump. Expected a crop that keeps "
            "the size; use CenterCrop to crop at inference."
        )
    return POINTWISE


def _upsampling(rank: int) -> Callable[[Node, Shape], Effect]:
    def effect(node: Node, dims: Shape) -> Effect:
        _check_channels_last(node)
        _check_rank(node, dims, rank)
        config = node.layer.config
        size = int_tuple(config.get("size", 2), rank, "size", node)
        interpolation = str(config.get("interpolation", "nearest")).lower()
        if interpolation == "nearest":
            axes = tuple(
                AxisRemap("repeat", n, None if n is None else n * f, s=f)
                for n, f in zip(dims, size, strict=True)
            )
            return Remap(axes, "it repeats positions")
        if interpolation == "bilinear":
            axes = tuple(
                AxisRemap("bilinear", n, None if n is None else n * f)
                for n, f in zip(dims, size, strict=True)
            )
            return Remap(axes, "it interpolates between positions")
        raise ReceptiveFieldError(
            f"{describe(node)} has interpolation={interpolation!r}. Expected 'nearest' or "
            "'bilinear', whose positions are known exactly."
        )

    return effect


def _transpose(rank: int) -> Callable[[Node, Shape], Effect]:
    def effect(node: Node, dims: Shape) -> Effect:
        _check_channels_last(node)
        _check_rank(node, dims, rank)
        config = node.layer.config
        kernel = int_tuple(config.get("kernel_size"), rank, "kernel_size", node)
        strides = int_tuple(config.get("strides", 1), rank, "strides", node)
        dilation = int_tuple(config.get("dilation_rate", 1), rank, "dilation_rate", node)
        padding = str(config.get("padding", "valid")).lower()
        if padding not in ("valid", "same"):
            raise ReceptiveFieldError(
                f"{describe(node)} has padding={padding!r}. Expected 'valid' or 'same'."
            )
        outs = tuple(node.output_shape[:-1])
        axes = []
        for n, n_out, k, s, d in zip(dims, outs, kernel, strides, dilation, strict=True):
            # TensorFlow computes a transposed convolution as the input gradient of the
            # convolution from `n_out` positions to `n`: that convolution's left padding is
            # what the transposed one crops.
            k_eff = d * (k - 1) + 1
            p = 0 if padding == "valid" else same_padding(n_out, k_eff, s)[0]
            axes.append(AxisRemap("transpose", n, n_out, k, d, s, p))
        return Remap(tuple(axes), "a transposed convolution spreads each position over a window")

    return effect


def _resizing(node: Node, dims: Shape) -> Effect:
    _check_channels_last(node)
    config = node.layer.config
    interpolation = str(config.get("interpolation", "bilinear")).lower()
    extras = [
        key
        for key in ("antialias", "crop_to_aspect_ratio", "pad_to_aspect_ratio")
        if config.get(key)
    ]
    if interpolation not in ("nearest", "bilinear") or extras or len(dims) != 2:
        what = f"interpolation={interpolation!r}" + "".join(f", {key}=True" for key in extras)
        raise ReceptiveFieldError(
            f"{describe(node)} has {what}. Expected interpolation 'nearest' or 'bilinear' "
            "without antialias or aspect-ratio cropping or padding: only those resize positions "
            "in a way the receptive-field analysis computes exactly."
        )
    outs = tuple(node.output_shape[:-1])
    axes = tuple(AxisRemap(interpolation, n, o) for n, o in zip(dims, outs, strict=True))
    return Remap(axes, "it resamples the image")


def _axis_indices(node: Node, axis: Any, rank: int) -> set[int] | None:
    """Keras ``axis`` (batch axis 0) as indices of the spatial-and-channel axes (0-based)."""
    axes = axis if isinstance(axis, Sequence) and not isinstance(axis, str) else [axis]
    total = rank + 1  # spatial axes plus channels
    out = set()
    for a in axes:
        if not isinstance(a, int) or isinstance(a, bool):
            return None
        index = a - 1 if a >= 0 else total + a
        if not 0 <= index < total:
            return None
        out.add(index)
    return out


def _axis_dependent(node: Node, dims: Shape) -> Effect:
    rank = len(dims)
    indices = _axis_indices(node, node.layer.config.get("axis", -1), rank)
    if indices is None:
        raise ReceptiveFieldError(
            f"{describe(node)} has axis={node.layer.config.get('axis')!r}. Expected axis "
            f"indices of a tensor with {rank} spatial axes and channels."
        )
    spatial = tuple(sorted(i for i in indices if i < rank))
    return Reduce(spatial) if spatial else POINTWISE


def _axis_channels(node: Node) -> Channels:
    rank = len(node.output_shape) - 1
    indices = _axis_indices(node, node.layer.config.get("axis", -1), rank)
    return MIX if indices is None or rank in indices else KEEP


def _every_spatial_axis(node: Node, dims: Shape) -> Effect:
    return Reduce(tuple(range(len(dims))))


def _reshape(node: Node, dims: Shape) -> Effect:
    in_shape, out_shape = tuple(node.input_shapes[0]), tuple(node.output_shape)
    if out_shape == in_shape:
        return POINTWISE
    if out_shape == (*in_shape, 1):
        return ADD_CHANNEL_AXIS
    return Rearrange(
        f"it rearranges values from shape {in_shape} to {out_shape}, so neighbouring units "
        "no longer sit a constant jump apart"
    )


def _permute(node: Node, dims: Shape) -> Effect:
    order = list(node.layer.config.get("dims", []))
    if order[: len(dims)] == list(range(1, len(dims) + 1)):
        return POINTWISE
    return Rearrange(f"it permutes axes {order}")


def _embedding(node: Node, dims: Shape) -> Effect:
    raise ReceptiveFieldError(
        f"{describe(node)} looks up integer ids on a tensor that depends on the image. "
        "Expected image features here; an Embedding belongs on a token input."
    )


def _concatenate_channels(node: Node) -> Channels:
    return KEEP  # concatenation keeps each channel's dependencies (see the footprint's merge)


def _conv_channels(node: Node) -> Channels:
    config = node.layer.config
    name = node.layer.class_name
    if name.startswith("DepthwiseConv"):
        multiplier = config.get("depth_multiplier", 1)
        base = Channels("depthwise", multiplier if isinstance(multiplier, int) else 1)
    elif name.startswith(("Conv", "Convolution")) and not name.endswith("Transpose"):
        groups = config.get("groups", 1)
        base = Channels("groups", groups) if isinstance(groups, int) and groups > 1 else MIX
    else:
        base = MIX
    return _with_activation(node, base)


def _with_activation(node: Node, base: Channels) -> Channels:
    # A softmax activation normalises over the channel axis.
    activation = node.layer.config.get("activation")
    if isinstance(activation, str) and activation.lower() in ("softmax", "log_softmax"):
        return MIX
    return base


def _keep(node: Node) -> Channels:
    return _with_activation(node, KEEP)


def _mix(node: Node) -> Channels:
    return MIX


def _group_channels(node: Node) -> Channels:
    groups = node.layer.config.get("groups", 32)
    return Channels("groups", groups) if isinstance(groups, int) and groups > 0 else MIX


def _constant(effect: Effect) -> Callable[[Node, Shape], Effect]:
    def read(node: Node, dims: Shape) -> Effect:
        return effect

    return read


_POINTWISE = _constant(POINTWISE)

# ---------------------------------------------------------------------------------------------
# The geometries the layer records (`grader.layers`) name.

INFERENCE_IDENTITY = Geometry("identity", _POINTWISE, _keep, "the identity at inference")
ELEMENTWISE = Geometry("elementwise", _POINTWISE, _keep, "a function of each value alone")
CHANNEL_MIX = Geometry("channel_mix", _POINTWISE, _mix, "mixes the channels of each position")
MASKING = Geometry("channel_mix", _POINTWISE, _mix, "masks a position from all its channels")
RANDOM_CROP = Geometry("identity", _random_crop, _keep, "the identity at inference")
CENTER_CROP = Geometry("window", _center_crop, _keep, "crops (n - size) // 2 positions first")
AXIS_NORMALIZATION = Geometry("axis", _axis_dependent, _axis_channels, "normalises over its `axis`")
GROUP_NORMALIZATION = Geometry(
    "reduce", _every_spatial_axis, _group_channels, "normalises over positions and channel groups"
)
AUTO_CONTRAST = Geometry(
    "reduce", _every_spatial_axis, _keep, "rescales each channel by its minimum and maximum"
)
RESIZING = Geometry("remap", _resizing, _keep, "resamples positions")
GLOBAL_POOLING = Geometry("global", _constant(GLOBAL), _keep, "pools every position")
FLATTENING = Geometry("flatten", _constant(FLATTEN), _keep, "folds positions into features")
# Only reached after a global or flattened tensor: every output repeats all of it.
REPEAT_VECTOR = Geometry("global", _constant(GLOBAL), _keep, "repeats a feature vector")
MERGING = Geometry("merge", _constant(MERGE), _concatenate_channels, "the union of its inputs")
RESHAPE = Geometry("rearrange", _reshape, _keep, "moves values between positions and channels")
PERMUTE = Geometry("rearrange", _permute, _keep, "moves values between axes")
EMBEDDING = Geometry("refused", _embedding, _mix, "reads integer ids, not image features")


def conv_window(rank: int) -> Geometry:
    """A convolution over `rank` spatial axes (plain, depthwise or separable)."""
    return Geometry("window", _conv(rank), _conv_channels, "a sliding window")


def pool_window(rank: int) -> Geometry:
    """Max or average pooling over `rank` spatial axes."""
    return Geometry("window", _pool(rank), _keep, "a sliding window per channel")


def zero_padding(rank: int) -> Geometry:
    """``ZeroPadding{rank}D``."""
    return Geometry("window", _pad_or_crop(rank, 1), _keep, "pads zeros: a window of one")


def cropping(rank: int) -> Geometry:
    """``Cropping{rank}D``."""
    return Geometry(
        "window", _pad_or_crop(rank, -1), _keep, "drops edge positions: a window of one"
    )


def upsampling(rank: int) -> Geometry:
    """``UpSampling{rank}D``."""
    return Geometry("remap", _upsampling(rank), _keep, "repeats or interpolates positions")


def transposed_conv(rank: int) -> Geometry:
    """``Conv{rank}DTranspose``."""
    return Geometry(
        "remap", _transpose(rank), _conv_channels, "spreads each position over a window"
    )
