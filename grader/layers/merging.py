"""Merge layers: Add, Subtract, Multiply, Average, Maximum, Minimum and Concatenate.

The element-wise ones broadcast like Keras' ``_Merge``; none has weights, whatever its arguments.
"""

from __future__ import annotations

from collections.abc import Sequence

from grader.graph import Shape
from grader.layers.base import (
    BUILTIN,
    LAYER_ARGUMENTS,
    NO_FAMILY,
    PRESERVES_ZERO,
    Config,
    LayerSpec,
    SpecError,
    arguments,
    format_shape,
    normalize_axes,
)
from grader.rf.readers import MERGING


def _at_least(input_shapes: Sequence[Shape], n: int) -> None:
    if len(input_shapes) < n:
        raise SpecError(f"Expected a list of at least {n} inputs. Received {len(input_shapes)}.")


def _broadcast(a: Shape, b: Shape) -> Shape:
    """Keras' `_Merge` rule: align from the right, 1 broadcasts, None stays unknown."""
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return a
    out: list[int | None] = list(a[: len(a) - len(b)])
    for i, j in zip(a[len(a) - len(b) :], b, strict=True):
        if i is None or j is None:
            out.append(None)
        elif i == 1:
            out.append(j)
        elif j == 1 or i == j:
            out.append(i)
        else:
            raise SpecError(
                f"Inputs must have compatible shapes. Received {format_shape(a)} and "
                f"{format_shape(b)}."
            )
    return tuple(out)


def _elementwise_spec(class_name: str, exactly: int | None = None) -> LayerSpec:
    def output_shape(config: Config, input_shapes: Sequence[Shape]) -> Shape:
        if exactly is not None and len(input_shapes) != exactly:
            raise SpecError(
                f"Expected a list of exactly {exactly} inputs. Received {len(input_shapes)}."
            )
        _at_least(input_shapes, 1)
        out = input_shapes[0]
        for shape in input_shapes[1:]:
            out = _broadcast(out, shape)
        return out

    return LayerSpec(
        class_name,
        output_shape,
        multi_input=True,
        arguments=LAYER_ARGUMENTS,
        geometry=MERGING,
        families=NO_FAMILY,
        safety=BUILTIN,
        zeros=PRESERVES_ZERO,
    )


def _concatenate(config: Config, input_shapes: Sequence[Shape]) -> Shape:
    _at_least(input_shapes, 1)
    ranks = {len(s) for s in input_shapes}
    if len(ranks) != 1:
        raise SpecError(
            "Expected inputs of the same rank. Received shapes "
            + ", ".join(format_shape(s) for s in input_shapes)
            + "."
        )
    rank = ranks.pop()
    axes = normalize_axes(config.get("axis", -1), rank)
    if len(axes) != 1:
        raise SpecError(f"Expected one concatenation `axis`. Received {config.get('axis')!r}.")
    axis = axes[0]
    axis -= 1  # batchless index
    out: list[int | None] = list(input_shapes[0])
    for shape in input_shapes[1:]:
        for i, (have, new) in enumerate(zip(out, shape, strict=True)):
            if i == axis:
                out[i] = None if have is None or new is None else have + new
            elif have is None:
                out[i] = new
            elif new is not None and new != have:
                raise SpecError(
                    "Inputs must match on every axis except the concatenation axis "
                    f"({config.get('axis', -1)}). Received shapes "
                    + ", ".join(format_shape(s) for s in input_shapes)
                    + "."
                )
    return tuple(out)


SPECS = [
    _elementwise_spec("Add"),
    _elementwise_spec("Subtract", exactly=2),
    _elementwise_spec("Multiply"),
    _elementwise_spec("Average"),
    _elementwise_spec("Maximum"),
    _elementwise_spec("Minimum"),
    LayerSpec(
        "Concatenate",
        _concatenate,
        multi_input=True,
        arguments=arguments("axis"),
        geometry=MERGING,
        families=NO_FAMILY,
        safety=BUILTIN,
        zeros=PRESERVES_ZERO,
    ),
]
