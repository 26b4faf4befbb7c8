"""What a convolution call's kernel actually computes, axis by axis.

A kernel filters spatially along an axis only when, at some output position, at least two of its
taps read the input rather than padding. A 1-wide kernel never does (a 1x1 convolution is
pointwise; a 1x1 depthwise kernel is a per-channel scale), and neither does a wider kernel on an
input too small for it: a 3x3 kernel with ``padding="same"`` on a 1x1 input reads one position
(its centre) and padding, as does a 3x3 kernel with dilation 64 on an 8x8 input. Dilation only
means something along an axis where the kernel filters spatially.

Transposed convolutions are judged by their kernel size alone (a kernel larger than 1 spreads
each input position over several outputs).
"""

from __future__ import annotations

from dataclasses import dataclass

from grader.graph import Node

from .families import as_tuple, format_kernel, spatial_rank

_TRANSPOSED = frozenset({"Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"})


@dataclass(frozen=True)
class KernelAxis:
    """One spatial axis of one convolution call.

    Attributes:
        kernel: the kernel's extent along the axis (the depthwise kernel's, for a separable
            convolution).
        dilation: the dilation rate along the axis.
        stride: the stride along the axis.
        length: the input's length along the axis, None when unknown.
        filters: True when, at some output position, at least two taps read the input (not
            padding): the kernel combines neighbouring positions along this axis.
    """

    kernel: int
    dilation: int
    stride: int
    length: int | None
    filters: bool

    @property
    def dilated(self) -> bool:
        """A dilation above 1 along an axis where the kernel filters spatially."""
        return self.dilation > 1 and self.filters


def kernel_axes(node: Node) -> tuple[KernelAxis, ...]:
    """The spatial axes of a convolution call (Conv*, SeparableConv*, DepthwiseConv*, ...).

    Args:
        node: one call of a convolution layer.

    Returns:
        One `KernelAxis` per spatial axis, in the layer's axis order.
    """
    layer = node.layer
    config = layer.config
    rank = spatial_rank(layer.class_name)
    kernel = as_tuple(config.get("kernel_size", 1), rank)
    strides = as_tuple(config.get("strides", 1), rank)
    dilation = as_tuple(config.get("dilation_rate", 1), rank)
    padding = str(config.get("padding", "valid")).lower()
    lengths = _input_lengths(node, rank)
    transposed = layer.class_name in _TRANSPOSED
    return tuple(
        KernelAxis(
            kernel=kernel[i],
            dilation=dilation[i],
            stride=strides[i],
            length=lengths[i],
            filters=kernel[i] > 1
            if transposed
            else window_filters(lengths[i], kernel[i], strides[i], dilation[i], padding),
        )
        for i in range(rank)
    )


def _input_lengths(node: Node, rank: int) -> tuple[int | None, ...]:
    shape = node.input_shapes[0] if node.input_shapes else None
    if shape is None or len(shape) != rank + 1:
        return (None,) * rank
    if node.layer.config.get("data_format") == "channels_first":
        return tuple(shape[1:])
    return tuple(shape[:-1])


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def window_filters(
    length: int | None, kernel: int, stride: int, dilation: int, padding: str
) -> bool:
    """Whether a sliding window ever reads two input positions (not padding) at once.

    Tap ``i`` of output position ``o`` reads input ``o * stride - pad_before + i * dilation``
    (TensorFlow's padding: ``same`` puts the smaller half of the padding first, ``causal`` all of
    it). Two taps read the input at once exactly when two adjacent ones do, so the question is
    whether some ``p = o * stride + i * dilation`` with ``i <= kernel - 2`` lies in
    ``[pad_before, pad_before + length - 1 - dilation]``: solved in closed form, since Keras
    refuses a stride and a dilation both above 1.

    Args:
        length: the input's length along the axis (None: unknown, the kernel size decides).
        kernel: the kernel's extent.
        stride: the stride.
        dilation: the dilation rate.
        padding: ``valid``, ``same`` or ``causal``.

    Returns:
        True when at least two taps read the input at some output position.
    """
    if kernel < 2:
        return False
    if length is None:
        return True
    extent = (kernel - 1) * dilation + 1
    if padding == "valid":
        before, outputs = 0, (length - extent) // stride + 1
    else:
        outputs = _ceil_div(length, stride)
        if padding == "causal":
            before = extent - 1
        else:
            before = max((outputs - 1) * stride + extent - length, 0) // 2
    if outputs <= 0:
        return False
    low, high = before, before + length - 1 - dilation
    if high < low:
        return False  # the input is shorter than one dilation step: one tap at most
    if stride == 1:
        first = max(0, _ceil_div(low - (outputs - 1), dilation))
        return first <= min(kernel - 2, high // dilation)
    if dilation == 1:
        first = max(0, _ceil_div(low - (kernel - 2), stride))
        return first <= min(outputs - 1, high // stride)
    return True  # stride and dilation both above 1: refused by the analysis before this


def filters_spatially(node: Node) -> bool:
    """True when the call's kernel combines neighbouring positions along some axis."""
    return any(axis.filters for axis in kernel_axes(node))


def dilated(node: Node) -> bool:
    """True when the call has a dilation above 1 along an axis where its kernel filters."""
    return any(axis.dilated for axis in kernel_axes(node))


def _size(axes: tuple[KernelAxis, ...]) -> str:
    return format_kernel(tuple(a.kernel for a in axes))


def _input(axes: tuple[KernelAxis, ...]) -> str:
    return "x".join("?" if a.length is None else str(a.length) for a in axes)


def describe_kernel(node: Node) -> str:
    """``"3x3"``, ``"3x3, dilation 2x2"``: a call's kernel as messages show it."""
    axes = kernel_axes(node)
    text = _size(axes)
    if any(a.dilation > 1 for a in axes):
        text += ", dilation " + format_kernel(tuple(a.dilation for a in axes))
    return text


def why_not_spatial(node: Node) -> str:
    """Why a call's kernel filters along no axis (for a call where `filters_spatially` fails)."""
    axes = kernel_axes(node)
    if all(a.kernel == 1 for a in axes):
        return f"its kernel is {_size(axes)}"
    return (
        f"its {_size(axes)} window reads one position of its {_input(axes)} input at a time "
        "(the other taps fall on padding)"
    )


def why_not_dilated(node: Node) -> str | None:
    """Why a call with a dilation rate above 1 does not count as dilated; None if it does."""
    axes = kernel_axes(node)
    if not any(a.dilation > 1 for a in axes) or dilated(node):
        return None
    rates = format_kernel(tuple(a.dilation for a in axes))
    if all(a.kernel == 1 for a in axes if a.dilation > 1):
        if all(a.kernel == 1 for a in axes):
            return f"dilation rate {rates} on a {_size(axes)} kernel: nothing to dilate"
        return (
            f"dilation rate {rates} on a {_size(axes)} kernel: the kernel is 1 wide along every "
            "dilated axis, nothing to dilate"
        )
    return (
        f"dilation rate {rates} on a {_size(axes)} kernel over a {_input(axes)} input: "
        "the dilated taps fall on padding, one tap reads the input at a time"
    )
