"""Pooling: Max/AveragePoolingND and Global{Max,Average}PoolingND. None has weights."""

from __future__ import annotations

from collections.abc import Sequence

from grader.graph import Shape
from grader.layers.base import (
    BUILTIN,
    GLOBAL_AVERAGE_POOLING,
    GLOBAL_MAX_POOLING,
    NO_FAMILY,
    PRESERVES_ZERO,
    Config,
    LayerSpec,
    SpecError,
    arguments,
    conv_output_length,
    data_format,
    flag,
    int_tuple,
    join_channels,
    require_rank,
    single_input,
    split_channels,
)
from grader.rf.readers import GLOBAL_POOLING, pool_window


def pooling_spec(class_name: str, rank: int) -> LayerSpec:
    """Spec of ``MaxPooling{rank}D`` / ``AveragePooling{rank}D``."""

    def output_shape(config: Config, input_shapes: Sequence[Shape]) -> Shape:
        shape = single_input(input_shapes)
        require_rank(shape, rank + 1)
        fmt = data_format(config)
        pool = int_tuple(config.get("pool_size", 2), rank, "pool_size")
        raw_strides = config.get("strides")
        # Keras: strides default to the pool size.
        strides = pool if raw_strides is None else int_tuple(raw_strides, rank, "strides")
        if any(p <= 0 for p in pool) or any(s <= 0 for s in strides):
            raise SpecError(
                f"Expected positive `pool_size` and `strides`. Received pool_size={pool}, "
                f"strides={strides}."
            )
        padding = str(config.get("padding", "valid")).lower()
        if padding not in ("valid", "same"):
            raise SpecError(f"Expected `padding` 'valid' or 'same'. Received {padding!r}.")
        spatial, channels = split_channels(shape, fmt)
        out = tuple(
            conv_output_length(spatial[i], pool[i], padding, strides[i]) for i in range(rank)
        )
        return join_channels(out, channels, fmt)

    # `pool_mode` and `pool_dimensions` are fixed by each class: Keras refuses them in a config.
    return LayerSpec(
        class_name,
        output_shape,
        arguments=arguments("pool_size", "strides", "padding", "data_format"),
        geometry=pool_window(rank),
        families=NO_FAMILY,
        safety=BUILTIN,
        zeros=PRESERVES_ZERO,
    )


def global_pooling_spec(class_name: str, rank: int) -> LayerSpec:
    """Spec of ``Global{Max,Average}Pooling{rank}D`` (``keepdims`` included)."""

    def output_shape(config: Config, input_shapes: Sequence[Shape]) -> Shape:
        shape = single_input(input_shapes)
        require_rank(shape, rank + 1)
        fmt = data_format(config)
        _, channels = split_channels(shape, fmt)
        if flag(config, "keepdims", False):
            return join_channels((1,) * rank, channels, fmt)
        return (channels,)

    family = GLOBAL_MAX_POOLING if class_name.startswith("GlobalMax") else GLOBAL_AVERAGE_POOLING
    return LayerSpec(
        class_name,
        output_shape,
        arguments=arguments("data_format", "keepdims"),
        geometry=GLOBAL_POOLING,
        families=frozenset({family}),
        safety=BUILTIN,
        zeros=PRESERVES_ZERO,
        # Keras' 1D global average pooling averages over the unmasked steps only.
        call_takes_mask=class_name == "GlobalAveragePooling1D",
    )


SPECS = [
    *(pooling_spec(f"{op}Pooling{r}D", r) for op in ("Max", "Average") for r in (1, 2, 3)),
    *(
        global_pooling_spec(f"Global{op}Pooling{r}D", r)
        for op in ("Max", "Average")
        for r in (1, 2, 3)
    ),
]
