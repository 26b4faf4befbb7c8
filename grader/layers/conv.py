"""Convolutions: ConvND, DepthwiseConvND, SeparableConvND and ConvNDTranspose.

Weight shapes follow Keras 3's ``build``: ``kernel`` is ``kernel_size + (in // groups, filters)``
for a convolution and ``kernel_size + (filters, in)`` for a transposed one; depthwise kernels are
``kernel_size + (in, depth_multiplier)``; a separable convolution adds a 1x..x1 pointwise kernel.

Arguments that change the weights: ``filters``, ``kernel_size``, ``groups``, ``depth_multiplier``,
``use_bias``, ``data_format`` (which axis holds the input channels) and, on ConvND only,
``lora_rank``: LoRA freezes the kernel and adds two trainable factors, counted exactly as for
Dense. The others (strides, padding, dilation, activation, initializers, regularizers,
constraints, ``lora_alpha``) change values or shapes of outputs, never the weights.
"""

from __future__ import annotations

from collections.abc import Sequence

from grader.graph import Shape
from grader.layers.base import (
    BUILTIN,
    DEPTHWISE_CONV,
    PLAIN_CONV,
    SEPARABLE_CONV,
    Config,
    LayerSpec,
    SpecError,
    WeightSpec,
    arguments,
    conv_output_length,
    data_format,
    deconv_output_length,
    flag,
    int_tuple,
    join_channels,
    linear_in,
    lora_rank,
    positive_int,
    require_known,
    require_rank,
    single_input,
    split_channels,
    with_lora,
)
from grader.rf.readers import conv_window, transposed_conv

_COMMON = (
    "kernel_size",
    "strides",
    "padding",
    "data_format",
    "dilation_rate",
    "activation",
    "use_bias",
    "bias_initializer",
    "bias_regularizer",
    "activity_regularizer",
    "bias_constraint",
)
_KERNEL = ("kernel_initializer", "kernel_regularizer", "kernel_constraint")
_DEPTHWISE = ("depthwise_initializer", "depthwise_regularizer", "depthwise_constraint")
_POINTWISE = ("pointwise_initializer", "pointwise_regularizer", "pointwise_constraint")
# Keras' BaseConv (ConvND) accepts LoRA through **kwargs; the other convolution bases do not.
CONV_ARGUMENTS = arguments(*_COMMON, *_KERNEL, "filters", "groups", "lora_rank", "lora_alpha")
TRANSPOSE_ARGUMENTS = arguments(*_COMMON, *_KERNEL, "filters", "output_padding")
DEPTHWISE_ARGUMENTS = arguments(*_COMMON, *_DEPTHWISE, "depth_multiplier")
SEPARABLE_ARGUMENTS = arguments(*_COMMON, *_DEPTHWISE, *_POINTWISE, "filters", "depth_multiplier")


def _geometry(
    config: Config, rank: int
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    kernel = int_tuple(config.get("kernel_size"), rank, "kernel_size")
    strides = int_tuple(config.get("strides", 1), rank, "strides")
    dilation = int_tuple(config.get("dilation_rate", 1), rank, "dilation_rate")
    if any(k <= 0 for k in kernel) or any(s <= 0 for s in strides) or any(d <= 0 for d in dilation):
        raise SpecError(
            f"Expected positive `kernel_size`, `strides` and `dilation_rate`. Received "
            f"kernel_size={kernel}, strides={strides}, dilation_rate={dilation}."
        )
    if any(s > 1 for s in strides) and any(d > 1 for d in dilation):
        raise SpecError(
            f"`strides` > 1 is not compatible with `dilation_rate` > 1. Received "
            f"strides={strides} and dilation_rate={dilation}."
        )
    return kernel, strides, dilation


def _padding(config: Config, rank: int) -> str:
    padding = str(config.get("padding", "valid")).lower()
    allowed = ("valid", "same", "causal") if rank == 1 else ("valid", "same")
    if padding not in allowed:
        raise SpecError(f"Expected `padding` in {allowed}. Received {padding!r}.")
    return padding


def _in_channels(config: Config, input_shapes: Sequence[Shape], rank: int) -> tuple[Shape, int]:
    shape = single_input(input_shapes)
    require_rank(shape, rank + 1)
    _, channels = split_channels(shape, data_format(config))
    return shape, require_known(channels, "channel axis of the input")


def _conv_spatial(config: Config, shape: Shape, rank: int) -> tuple[int | None, ...]:
    kernel, strides, dilation = _geometry(config, rank)
    padding = _padding(config, rank)
    spatial, _ = split_channels(shape, data_format(config))
    return tuple(
        conv_output_length(spatial[i], kernel[i], padding, strides[i], dilation[i])
        for i in range(rank)
    )


def _positive(config: Config, key: str) -> int:
    return positive_int(config, key)


def _bias(config: Config, size: int) -> list[WeightSpec]:
    return [WeightSpec("bias", (size,))] if flag(config, "use_bias", True) else []


def conv_spec(class_name: str, rank: int) -> LayerSpec:
    """Spec of ``Conv{rank}D`` (grouped convolutions included)."""

    def output_shape(config: Config, input_shapes: Sequence[Shape]) -> Shape:
        shape = single_input(input_shapes)
        require_rank(shape, rank + 1)
        filters = _positive(config, "filters")
        return join_channels(_conv_spatial(config, shape, rank), filters, data_format(config))

    def weights(config: Config, input_shapes: Sequence[Shape]) -> list[WeightSpec]:
        _, channels = _in_channels(config, input_shapes, rank)
        kernel, _, _ = _geometry(config, rank)
        filters = _positive(config, "filters")
        groups = positive_int(config, "groups", 1)
        if channels % groups or filters % groups:
            raise SpecError(
                f"The number of input channels ({channels}) and `filters` ({filters}) must both "
                f"be divisible by `groups` ({groups})."
            )
        lora = lora_rank(config, "kernel_constraint")
        kernel_weight, *adapters = with_lora(
            WeightSpec("kernel", (*kernel, channels // groups, filters)), lora
        )
        return [kernel_weight, *_bias(config, filters), *adapters]

    return LayerSpec(
        class_name,
        output_shape,
        weights,
        arguments=CONV_ARGUMENTS,
        geometry=conv_window(rank),
        families=frozenset({PLAIN_CONV}),
        safety=BUILTIN,
        zeros=linear_in("kernel"),
    )


def depthwise_spec(class_name: str, rank: int) -> LayerSpec:
    """Spec of ``DepthwiseConv{rank}D``: one filter stack per input channel."""

    def output_shape(config: Config, input_shapes: Sequence[Shape]) -> Shape:
        shape = single_input(input_shapes)
        require_rank(shape, rank + 1)
        fmt = data_format(config)
        _, channels = split_channels(shape, fmt)
        multiplier = positive_int(config, "depth_multiplier", 1)
        out_channels = None if channels is None else channels * multiplier
        return join_channels(_conv_spatial(config, shape, rank), out_channels, fmt)

    def weights(config: Config, input_shapes: Sequence[Shape]) -> list[WeightSpec]:
        _, channels = _in_channels(config, input_shapes, rank)
        kernel, _, _ = _geometry(config, rank)
        multiplier = positive_int(config, "depth_multiplier", 1)
        return [
            WeightSpec("kernel", (*kernel, channels, multiplier)),
            *_bias(config, channels * multiplier),
        ]

    return LayerSpec(
        class_name,
        output_shape,
        weights,
        arguments=DEPTHWISE_ARGUMENTS,
        geometry=conv_window(rank),
        families=frozenset({DEPTHWISE_CONV}),
        safety=BUILTIN,
        zeros=linear_in("depthwise"),
    )


def separable_spec(class_name: str, rank: int) -> LayerSpec:
    """Spec of ``SeparableConv{rank}D``: depthwise then 1x1 pointwise convolution."""

    def output_shape(config: Config, input_shapes: Sequence[Shape]) -> Shape:
        shape = single_input(input_shapes)
        require_rank(shape, rank + 1)
        filters = _positive(config, "filters")
        return join_channels(_conv_spatial(config, shape, rank), filters, data_format(config))

    def weights(config: Config, input_shapes: Sequence[Shape]) -> list[WeightSpec]:
        _, channels = _in_channels(config, input_shapes, rank)
        kernel, _, _ = _geometry(config, rank)
        multiplier = positive_int(config, "depth_multiplier", 1)
        filters = _positive(config, "filters")
        return [
            WeightSpec("depthwise_kernel", (*kernel, channels, multiplier)),
            WeightSpec("pointwise_kernel", (*(1,) * rank, channels * multiplier, filters)),
            *_bias(config, filters),
        ]

    return LayerSpec(
        class_name,
        output_shape,
        weights,
        arguments=SEPARABLE_ARGUMENTS,
        geometry=conv_window(rank),
        families=frozenset({SEPARABLE_CONV}),
        safety=BUILTIN,
        zeros=linear_in("depthwise", "pointwise"),
    )


def transpose_spec(class_name: str, rank: int) -> LayerSpec:
    """Spec of ``Conv{rank}DTranspose``."""

    def output_shape(config: Config, input_shapes: Sequence[Shape]) -> Shape:
        shape = single_input(input_shapes)
        require_rank(shape, rank + 1)
        fmt = data_format(config)
        kernel, strides, dilation = _geometry(config, rank)
        padding = _padding(config, 2)  # transposed convolutions have no 'causal' padding
        raw_output_padding = config.get("output_padding")
        output_padding: tuple[int | None, ...] = (
            (None,) * rank
            if raw_output_padding is None
            else int_tuple(raw_output_padding, rank, "output_padding")
        )
        for pad, stride in zip(output_padding, strides, strict=True):
            if pad is not None and pad >= stride:
                raise SpecError(
                    f"`output_padding` must be smaller than `strides`. Received "
                    f"output_padding={raw_output_padding!r}, strides={strides}."
                )
        spatial, _ = split_channels(shape, fmt)
        out = tuple(
            deconv_output_length(
                spatial[i], kernel[i], padding, strides[i], dilation[i], output_padding[i]
            )
            for i in range(rank)
        )
        return join_channels(out, _positive(config, "filters"), fmt)

    def weights(config: Config, input_shapes: Sequence[Shape]) -> list[WeightSpec]:
        _, channels = _in_channels(config, input_shapes, rank)
        kernel, _, _ = _geometry(config, rank)
        filters = _positive(config, "filters")
        return [WeightSpec("kernel", (*kernel, filters, channels)), *_bias(config, filters)]

    return LayerSpec(
        class_name,
        output_shape,
        weights,
        arguments=TRANSPOSE_ARGUMENTS,
        geometry=transposed_conv(rank),
        families=frozenset({PLAIN_CONV}),
        safety=BUILTIN,
        zeros=linear_in("kernel"),
    )


SPECS = [
    conv_spec("Conv1D", 1),
    conv_spec("Conv2D", 2),
    conv_spec("Conv3D", 3),
    depthwise_spec("DepthwiseConv1D", 1),
    depthwise_spec("DepthwiseConv2D", 2),
    separable_spec("SeparableConv1D", 1),
    separable_spec("SeparableConv2D", 2),
    transpose_spec("Conv1DTranspose", 1),
    transpose_spec("Conv2DTranspose", 2),
    transpose_spec("Conv3DTranspose", 3),
]
