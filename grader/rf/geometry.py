"""How each Keras layer moves a receptive field: the per-axis window it slides, or its kind.

Every layer in a `ModelGraph` is classified into one `Effect`:

- `Window`: a sliding window per spatial axis (convolutions, pooling, zero padding, cropping),
  described by kernel ``k``, dilation ``d``, stride ``s`` and the padding added on the left
  ``p`` (negative for cropping), as in Araujo, Norris and Sim, "Computing Receptive Fields of
  Convolutional Neural Networks", Distill 2019.
- `POINTWISE`: each output position depends on the same input position only (activations,
  normalisation over channels, dropout and noise, ``Dense`` on the channel axis, the random
  augmentation layers, which are the identity at inference).
- `GLOBAL`: every output depends on every input position (global pooling, ``Dense`` after
  ``Flatten``, normalisation whose statistics span the spatial axes).
- `FLATTEN`: positions are folded into one feature axis; each feature still depends on one
  position, but no spatial layout remains.
- `MERGE`: element-wise merges and channel concatenation (the union over the inputs).
- `ADD_CHANNEL_AXIS`: a ``Reshape`` appending a channel axis of 1, as in ``(28, 28) ->
  (28, 28, 1)``: the old channel axis becomes spatial (only right after the image input).

Layers whose geometry cannot be expressed with an integer jump (``UpSampling``, transposed
convolutions) and reshapes of spatial axes are refused with a `ReceptiveFieldError` naming the
layer: refusing beats a silently wrong number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from grader.errors import ReceptiveFieldError
from grader.graph import Node, Shape

CONV_CLASSES = {
    f"{prefix}{rank}D": rank
    for prefix in ("Conv", "SeparableConv", "DepthwiseConv", "Convolution", "SeparableConvolution")
    for rank in (1, 2, 3)
}
POOL_CLASSES = {
    f"{name}{rank}D": rank
    for name in ("MaxPooling", "AveragePooling", "MaxPool", "AvgPool")
    for rank in (1, 2, 3)
}
ZERO_PADDING_CLASSES = {f"ZeroPadding{rank}D": rank for rank in (1, 2, 3)}
CROPPING_CLASSES = {f"Cropping{rank}D": rank for rank in (1, 2, 3)}
GLOBAL_POOL_CLASSES = {
    f"Global{name}{rank}D"
    for name in ("AveragePooling", "MaxPooling", "AvgPool", "MaxPool")
    for rank in (1, 2, 3)
}
REFUSED_FRACTIONAL = {
    **{f"UpSampling{rank}D": "it repeats positions (a fractional jump)" for rank in (1, 2, 3)},
    **{
        f"Conv{rank}DTranspose": "a transposed convolution has a fractional jump"
        for rank in (1, 2, 3)
    },
    **{
        f"Convolution{rank}DTranspose": "a transposed convolution has a fractional jump"
        for rank in (2, 3)
    },
    "Resizing": "it resamples the image (a fractional jump)",
}
MERGE_CLASSES = {"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate"}

# Layers that never mix positions. The random augmentation layers are the identity at inference,
# which is when a grader's receptive field matters; `RandomCrop` changes the size at inference
# and is checked separately.
POINTWISE_CLASSES = {
    "InputLayer",
    "Activation",
    "ReLU",
    "LeakyReLU",
    "PReLU",
    "ELU",
    "ThresholdedReLU",
    "BatchNormalization",
    "Dropout",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "SpatialDropout3D",
    "GaussianNoise",
    "GaussianDropout",
    "AlphaDropout",
    "ActivityRegularization",
    "Rescaling",
    "Normalization",
    "Identity",
    "Masking",
    "Dense",
    "RandomFlip",
    "RandomRotation",
    "RandomTranslation",
    "RandomZoom",
    "RandomContrast",
    "RandomBrightness",
    "RandomHeight",
    "RandomWidth",
    "RandomCrop",
}
# Pointwise unless their `axis` covers a spatial axis, in which case they are global.
AXIS_DEPENDENT_CLASSES = {"Softmax", "LayerNormalization", "UnitNormalization"}
GLOBAL_CLASSES = {"GroupNormalization"}


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
class Kind:
    """A layer effect without per-axis geometry (`POINTWISE`, `GLOBAL`, `FLATTEN`, `MERGE`)."""

    name: str


POINTWISE = Kind("pointwise")
GLOBAL = Kind("global")
FLATTEN = Kind("flatten")
MERGE = Kind("merge")
ADD_CHANNEL_AXIS = Kind("add_channel_axis")

Effect = Window | Kind


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


def _sliding(
    node: Node,
    dims: Shape,
    kernel: tuple[int, ...],
    strides: tuple[int, ...],
    dilation: tuple[int, ...],
) -> Window:
    padding = str(node.layer.config.get("padding", "valid")).lower()
    if len(dims) != len(kernel):
        raise ReceptiveFieldError(
            f"{describe(node)} slides over {len(kernel)} spatial axes. Expected an input with "
            f"{len(kernel)} spatial axes and channels; received shape {node.input_shapes[0]}."
        )
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


def _conv(node: Node, dims: Shape, rank: int) -> Window:
    config = node.layer.config
    kernel = int_tuple(config.get("kernel_size"), rank, "kernel_size", node)
    strides = int_tuple(config.get("strides", 1), rank, "strides", node)
    dilation = int_tuple(config.get("dilation_rate", 1), rank, "dilation_rate", node)
    return _sliding(node, dims, kernel, strides, dilation)


def _pool(node: Node, dims: Shape, rank: int) -> Window:
    config = node.layer.config
    pool = int_tuple(config.get("pool_size", 2), rank, "pool_size", node)
    raw_strides = config.get("strides")
    strides = pool if raw_strides is None else int_tuple(raw_strides, rank, "strides", node)
    return _sliding(node, dims, pool, strides, (1,) * rank)


def _pad_or_crop(node: Node, dims: Shape, rank: int, sign: int) -> Window:
    key = "padding" if sign > 0 else "cropping"
    pairs = pair_tuple(node.layer.config.get(key, 1), rank, key, node)
    if len(dims) != rank:
        raise ReceptiveFieldError(
            f"{describe(node)} pads {rank} spatial axes. Expected an input with {rank} spatial "
            f"axes and channels; received shape {node.input_shapes[0]}."
        )
    axes = []
    for n, (before, after) in zip(dims, pairs, strict=True):
        total = sign * (before + after)
        axes.append(
            AxisWindow(1, 1, 1, sign * before, total, n, window_output_length(n, 1, 1, total))
        )
    return Window(tuple(axes))


def _center_crop(node: Node, dims: Shape) -> Window:
    """Keras' CenterCrop as a crop: ``(n - target) // 2`` positions go first.

    Keras resizes instead when the image is smaller than the target along an axis: refused.
    """
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


def _axes_cover_spatial(axis: Any, rank: int) -> bool:
    """Whether a layer's ``axis`` config touches a spatial axis of a rank-``rank`` tensor."""
    axes = axis if isinstance(axis, Sequence) and not isinstance(axis, str) else [axis]
    total = rank + 1  # spatial axes plus channels; the batch axis is 0 in Keras' numbering
    for a in axes:
        if not isinstance(a, int):
            return True
        index = a if a >= 0 else total + 1 + a  # with the batch axis
        if index != total:
            return True
    return False


def classify(node: Node, dims: Shape) -> Effect:
    """The effect of one layer call on a receptive field.

    Args:
        node: the layer call.
        dims: spatial sizes of the node's input (``None`` where unknown); empty when the input
            is not spatial.

    Returns:
        A `Window` for sliding-window layers, else one of the `Kind` constants.

    Raises:
        ReceptiveFieldError: the layer is unknown, refused, or its config cannot be read.
    """
    class_name = node.layer.class_name
    config: Mapping[str, Any] = node.layer.config
    spatial_rank = len(dims)
    if class_name in REFUSED_FRACTIONAL:
        raise ReceptiveFieldError(
            f"{describe(node)} cannot be analysed: {REFUSED_FRACTIONAL[class_name]}. Receptive "
            "fields are computed for layers with integer strides only; choose an end-point "
            "before this layer with `end_point=`."
        )
    if class_name in MERGE_CLASSES:
        return MERGE
    if class_name in GLOBAL_POOL_CLASSES or class_name in GLOBAL_CLASSES:
        return GLOBAL
    if class_name == "Flatten":
        return FLATTEN
    if class_name in AXIS_DEPENDENT_CLASSES:
        if spatial_rank and _axes_cover_spatial(config.get("axis", -1), spatial_rank):
            return GLOBAL
        return POINTWISE
    if class_name == "RandomCrop" and tuple(node.output_shape[:-1]) != tuple(dims):
        raise ReceptiveFieldError(
            f"{describe(node)} resizes its input at inference ({tuple(dims)} to "
            f"{tuple(node.output_shape[:-1])}), a fractional jump. Expected a crop that keeps "
            "the size; choose an end-point before this layer."
        )
    if class_name in POINTWISE_CLASSES:
        return POINTWISE
    for table, builder in (
        (CONV_CLASSES, _conv),
        (POOL_CLASSES, _pool),
    ):
        if class_name in table:
            _check_channels_last(node)
            return builder(node, dims, table[class_name])
    if class_name == "CenterCrop":
        _check_channels_last(node)
        return _center_crop(node, dims)
    if class_name in ZERO_PADDING_CLASSES:
        _check_channels_last(node)
        return _pad_or_crop(node, dims, ZERO_PADDING_CLASSES[class_name], 1)
    if class_name in CROPPING_CLASSES:
        _check_channels_last(node)
        return _pad_or_crop(node, dims, CROPPING_CLASSES[class_name], -1)
    if class_name in {"Reshape", "Permute"}:
        # Identity on positions only when the shape is unchanged (Reshape) or the spatial axes
        # stay in place (Permute); anything else scrambles positions.
        in_shape, out_shape = tuple(node.input_shapes[0]), tuple(node.output_shape)
        if class_name == "Reshape" and out_shape == in_shape:
            return POINTWISE
        if class_name == "Reshape" and out_shape == (*in_shape, 1):
            return ADD_CHANNEL_AXIS
        if class_name == "Permute":
            order = list(config.get("dims", []))
            if order[:spatial_rank] == list(range(1, spatial_rank + 1)):
                return POINTWISE
        raise ReceptiveFieldError(
            f"{describe(node)} rearranges spatial positions: input shape "
            f"{tuple(node.input_shapes[0])}, output shape {tuple(node.output_shape)}. Expected "
            "the spatial axes to stay in place; choose an end-point before this layer."
        )
    raise ReceptiveFieldError(
        f"{describe(node)} is not supported by the receptive-field analysis. Supported: "
        "convolutions, pooling, zero padding, cropping, merges, point-wise layers, global pooling "
        "and Flatten."
    )
