"""Read a layer call into its receptive-field effect; the geometries the layer records name.

Each function here reads one layer call's config (and its input's spatial sizes) and returns
its `grader.rf.effects.Effect`, or what it does to channels, raising `ReceptiveFieldError` for a
configuration without exact geometry. The `Geometry` values at the end pair them up; each
supported class's record in `grader.layers` names one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from grader.errors import ReceptiveFieldError
from grader.graph import Node, Shape
from grader.rf.effects import (
    ADD_CHANNEL_AXIS,
    FLATTEN,
    GLOBAL,
    KEEP,
    MERGE,
    MIX,
    POINTWISE,
    AxisRemap,
    AxisWindow,
    Channels,
    Effect,
    Geometry,
    Rearrange,
    Reduce,
    Remap,
    Window,
    describe,
    int_tuple,
    pair_tuple,
    same_padding,
    window_output_length,
)


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
