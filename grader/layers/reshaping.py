"""Reshaping layers: Flatten, Reshape, Permute, RepeatVector, ZeroPadding, Cropping, UpSampling.

None has weights; they only move, pad, crop or repeat values.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from grader.graph import Shape
from grader.layers.base import (
    BUILTIN,
    IMAGE_PRESERVING,
    NO_FAMILY,
    PRESERVES_ZERO,
    Config,
    LayerSpec,
    SpecError,
    arguments,
    data_format,
    format_shape,
    int_tuple,
    join_channels,
    require_rank,
    single_input,
    split_channels,
)
from grader.limits import MAX_SIZE
from grader.rf.readers import (
    FLATTENING,
    PERMUTE,
    REPEAT_VECTOR,
    RESHAPE,
    cropping,
    upsampling,
    zero_padding,
)


def _product(dims: Sequence[int | None]) -> int | None:
    total = 1
    for d in dims:
        if d is None:
            return None
        total *= d
    return total


def _flatten(config: Config, input_shapes: Sequence[Shape]) -> Shape:
    return (_product(single_input(input_shapes)),)


def _reshape(config: Config, input_shapes: Sequence[Shape]) -> Shape:
    shape = single_input(input_shapes)
    target = list(config.get("target_shape") or [])
    if not all(isinstance(d, int) and (d > 0 or d == -1) for d in target):
        raise SpecError(
            f"Expected `target_shape` of positive ints and at most one -1. Received {target!r}."
        )
    unknown = [i for i, d in enumerate(target) if d == -1]
    if len(unknown) > 1:
        raise SpecError(f"Expected at most one -1 in `target_shape`. Received {target!r}.")
    total = _product(shape)
    known = _product([d for d in target if d != -1]) or 1
    if known > MAX_SIZE:
        # Not printed: the product of a long target can pass what Python prints (4,300 digits).
        raise SpecError(
            f"`target_shape` of {len(target)} axes holds more than {MAX_SIZE:,} values. "
            "Expected a model that fits in memory."
        )
    if unknown:
        if total is not None:
            if total % known:
                raise SpecError(
                    f"Cannot reshape an input of shape {format_shape(shape)} to "
                    f"{format_shape(tuple(target))}: {total} values are not a multiple of {known}."
                )
            target[unknown[0]] = total // known
            return tuple(target)
        return tuple(None if d == -1 else d for d in target)
    if total is not None and total != known:
        raise SpecError(
            f"Cannot reshape an input of shape {format_shape(shape)} ({total} values) to "
            f"{format_shape(tuple(target))} ({known} values)."
        )
    return tuple(target)


def _permute(config: Config, input_shapes: Sequence[Shape]) -> Shape:
    shape = single_input(input_shapes)
    dims = list(config.get("dims") or [])
    if sorted(dims) != list(range(1, len(shape) + 1)):
        raise SpecError(
            f"Expected `dims` to be a permutation of 1..{len(shape)} for an input of shape "
            f"{format_shape(shape)}. Received {dims!r}."
        )
    return tuple(shape[d - 1] for d in dims)


def _repeat_vector(config: Config, input_shapes: Sequence[Shape]) -> Shape:
    shape = single_input(input_shapes)
    require_rank(shape, 1)
    n = config.get("n")
    if not isinstance(n, int) or n <= 0:
        raise SpecError(f"Expected `n` to be a positive int. Received {n!r}.")
    return (n, shape[0])


def _pairs(value: Any, rank: int, name: str) -> tuple[tuple[int, int], ...]:
    """Keras' padding/cropping forms: int, per-axis ints, or per-axis (before, after) pairs.

    Negative amounts are refused in every form: Keras refuses them for cropping and for 1D
    padding (a 2D or 3D padding of -1 would silently crop), and the grader's shapes must be
    the ones the trainer builds.
    """
    pairs = _pair_form(value, rank)
    if pairs is not None and all(a >= 0 and b >= 0 for a, b in pairs):
        return pairs
    raise SpecError(
        f"Expected `{name}` to be an int, {rank} ints or {rank} pairs of non-negative ints. "
        f"Received {value!r}."
    )


def _pair_form(value: Any, rank: int) -> tuple[tuple[int, int], ...] | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return ((value, value),) * rank
    if isinstance(value, (list, tuple)):
        if (
            rank == 1
            and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        ):
            return ((int(value[0]), int(value[1])),)
        if len(value) == rank:
            out = []
            for v in value:
                if isinstance(v, int) and not isinstance(v, bool):
                    out.append((v, v))
                elif (
                    isinstance(v, (list, tuple))
                    and len(v) == 2
                    and all(isinstance(x, int) for x in v)
                ):
                    out.append((int(v[0]), int(v[1])))
                else:
                    return None
            return tuple(out)
    return None


# Keras' defaults when a config leaves the amount out: not the same for every class.
_PAD_CROP_DEFAULTS: dict[str, Any] = {
    "ZeroPadding1D": 1,
    "ZeroPadding2D": 1,
    "ZeroPadding3D": 1,
    "Cropping1D": 1,
    "Cropping2D": 0,
    "Cropping3D": 1,
}


def _pad_crop_spec(class_name: str, rank: int, key: str, sign: int) -> LayerSpec:
    # Cropping1D is the one class of these without a `data_format` argument.
    own = (key,) if class_name == "Cropping1D" else (key, "data_format")
    default = _PAD_CROP_DEFAULTS[class_name]

    def output_shape(config: Config, input_shapes: Sequence[Shape]) -> Shape:
        shape = single_input(input_shapes)
        require_rank(shape, rank + 1)
        fmt = data_format(config)
        pairs = _pairs(config.get(key, default), rank, key)
        spatial, channels = split_channels(shape, fmt)
        out: list[int | None] = []
        for size, (before, after) in zip(spatial, pairs, strict=True):
            if size is None:
                out.append(None)
                continue
            new = size + sign * (before + after)
            if new <= 0:
                raise SpecError(
                    f"`{key}` {pairs} removes all of an axis of size {size} of the input "
                    f"{format_shape(shape)}."
                )
            out.append(new)
        return join_channels(out, channels, fmt)

    return LayerSpec(
        class_name,
        output_shape,
        arguments=arguments(*own),
        geometry=zero_padding(rank) if sign > 0 else cropping(rank),
        families=frozenset({IMAGE_PRESERVING}),
        safety=BUILTIN,
        zeros=PRESERVES_ZERO,
    )


def _upsampling_spec(class_name: str, rank: int) -> LayerSpec:
    def output_shape(config: Config, input_shapes: Sequence[Shape]) -> Shape:
        shape = single_input(input_shapes)
        require_rank(shape, rank + 1)
        fmt = data_format(config)
        size = int_tuple(config.get("size", 2), rank, "size")
        if any(s <= 0 for s in size):
            raise SpecError(f"Expected positive `size`. Received {size}.")
        spatial, channels = split_channels(shape, fmt)
        out = tuple(None if d is None else d * s for d, s in zip(spatial, size, strict=True))
        return join_channels(out, channels, fmt)

    own = {1: ("size",), 2: ("size", "data_format", "interpolation"), 3: ("size", "data_format")}
    return LayerSpec(
        class_name,
        output_shape,
        arguments=arguments(*own[rank]),
        geometry=upsampling(rank),
        families=NO_FAMILY,
        safety=BUILTIN,
        zeros=PRESERVES_ZERO,
    )


SPECS = [
    LayerSpec(
        "Flatten",
        _flatten,
        arguments=arguments("data_format"),
        geometry=FLATTENING,
        families=NO_FAMILY,
        safety=BUILTIN,
        zeros=PRESERVES_ZERO,
    ),
    LayerSpec(
        "Reshape",
        _reshape,
        arguments=arguments("target_shape"),
        geometry=RESHAPE,
        families=NO_FAMILY,
        safety=BUILTIN,
        zeros=PRESERVES_ZERO,
    ),
    LayerSpec(
        "Permute",
        _permute,
        arguments=arguments("dims"),
        geometry=PERMUTE,
        families=NO_FAMILY,
        safety=BUILTIN,
        zeros=PRESERVES_ZERO,
    ),
    LayerSpec(
        "RepeatVector",
        _repeat_vector,
        arguments=arguments("n"),
        geometry=REPEAT_VECTOR,
        families=NO_FAMILY,
        safety=BUILTIN,
        zeros=PRESERVES_ZERO,
    ),
    *(_pad_crop_spec(f"ZeroPadding{r}D", r, "padding", +1) for r in (1, 2, 3)),
    *(_pad_crop_spec(f"Cropping{r}D", r, "cropping", -1) for r in (1, 2, 3)),
    *(_upsampling_spec(f"UpSampling{r}D", r) for r in (1, 2, 3)),
]
