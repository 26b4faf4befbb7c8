"""What every layer spec provides: output-shape inference and the shapes of its weights.

A spec is pure Python: it reads a layer's Keras config and the shapes of its inputs (batch axis
excluded, ``None`` for unknown sizes) and answers like Keras' ``compute_output_shape`` and
``build`` would, without importing Keras. Problems raise `SpecError` with a message that the graph
builder prefixes with the layer's name and class.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from grader.graph import Shape

Config = Mapping[str, Any]


class SpecError(ValueError):
    """A layer's config or input shapes are invalid; the caller adds which layer it is."""


class SpecUnsupported(ValueError):
    """A layer option the analysis cannot reproduce exactly: refused, never guessed."""


@dataclass(frozen=True)
class WeightSpec:
    """One weight variable a layer creates when built.

    Attributes:
        name: Keras' variable name (``"kernel"``, ``"moving_mean"``, ...).
        shape: the variable's shape.
        trainable: False for statistics Keras never trains (``moving_mean``, ``count``, ...).
    """

    name: str
    shape: tuple[int, ...]
    trainable: bool = True

    @property
    def size(self) -> int:
        """Number of scalars in the variable."""
        size = 1
        for dim in self.shape:
            size *= dim
        return size


OutputShapeFn = Callable[[Config, Sequence[Shape]], Shape]
WeightsFn = Callable[[Config, Sequence[Shape]], list[WeightSpec]]


def no_weights(config: Config, input_shapes: Sequence[Shape]) -> list[WeightSpec]:
    """The weights of a layer that has none."""
    return []


@dataclass(frozen=True)
class LayerSpec:
    """How to analyse one Keras layer class.

    Attributes:
        class_name: the Keras class name.
        output_shape: ``(config, input_shapes) -> output shape``.
        weights: ``(config, input_shapes) -> weight specs`` at build time (first call).
        multi_input: True for merge layers, which take a list of tensors.
    """

    class_name: str
    output_shape: OutputShapeFn
    weights: WeightsFn = no_weights
    multi_input: bool = False


# ---------------------------------------------------------------------------------------------
# Helpers shared by the families.


def single_input(input_shapes: Sequence[Shape]) -> Shape:
    """The one input shape of a single-input layer."""
    if len(input_shapes) != 1:
        raise SpecError(f"Expected exactly 1 input. Received {len(input_shapes)} inputs.")
    return input_shapes[0]


def require_rank(shape: Shape, rank: int, what: str = "input") -> None:
    """Check that a shape (batch axis excluded) has `rank` axes; Keras counts the batch axis."""
    if len(shape) != rank:
        raise SpecError(
            f"Expected {what} of rank {rank + 1} (batch axis included). "
            f"Received shape {format_shape(shape)}."
        )


def require_known(dim: int | None, what: str) -> int:
    """A size that must be known to build weights (e.g. the channel axis of a convolution)."""
    if dim is None:
        raise SpecError(f"The {what} must be known to build the layer's weights. Received None.")
    return dim


def format_shape(shape: Sequence[int | None]) -> str:
    """Keras-style shape text with the batch axis: ``(None, 32, 32, 3)``."""
    dims = ["None", *("None" if d is None else str(d) for d in shape)]
    return "(" + ", ".join(dims) + ")"


def int_tuple(value: Any, n: int, name: str) -> tuple[int, ...]:
    """Normalize an int or a sequence of ints to an ``n``-tuple, as Keras' argument validation."""
    # Exact type checks: bool is an int subclass and must be refused; this runs for every
    # convolution and pooling call, so it avoids generic isinstance machinery.
    kind = type(value)
    if kind is int:
        return (value,) * n
    if (kind is list or kind is tuple) and len(value) == n:
        for v in value:
            if type(v) is not int:
                break
        else:
            return tuple(value)
    raise SpecError(f"Expected `{name}` to be an int or a tuple of {n} ints. Received {value!r}.")


def positive_int(config: Config, key: str, default: Any = None) -> int:
    """A config value that must be a positive int (``filters``, ``units``, ``groups``...)."""
    value = config.get(key, default)
    if type(value) is not int or value <= 0:
        raise SpecError(f"Expected `{key}` to be a positive int. Received {value!r}.")
    return value


def flag(config: Config, key: str, default: bool) -> bool:
    """A boolean option (``use_bias``, ``center``...): anything but true/false is refused."""
    value = config.get(key, default)
    if value is None:
        return default
    if type(value) is not bool:
        raise SpecError(f"Expected `{key}` to be true or false. Received {value!r}.")
    return value


def data_format(config: Config) -> str:
    """The layer's ``data_format``; Keras' default image data format is channels_last."""
    value = config.get("data_format") or "channels_last"
    if value not in ("channels_last", "channels_first"):
        raise SpecError(
            f"Expected `data_format` 'channels_last' or 'channels_first'. Received {value!r}."
        )
    return str(value)


def split_channels(shape: Shape, fmt: str) -> tuple[tuple[int | None, ...], int | None]:
    """Spatial axes and channel size of an image-like shape in `fmt` layout."""
    if fmt == "channels_first":
        return tuple(shape[1:]), shape[0]
    return tuple(shape[:-1]), shape[-1]


def join_channels(spatial: Sequence[int | None], channels: int | None, fmt: str) -> Shape:
    """Inverse of `split_channels`."""
    if fmt == "channels_first":
        return (channels, *spatial)
    return (*spatial, channels)


def conv_output_length(
    length: int | None, kernel: int, padding: str, stride: int, dilation: int = 1
) -> int | None:
    """Output length of a convolution or pooling along one axis (Keras' formula)."""
    if length is None:
        return None
    effective = (kernel - 1) * dilation + 1
    if padding == "same":
        return (length + stride - 1) // stride
    if padding == "valid":
        out = (length - effective) // stride + 1
        if out <= 0:
            raise SpecError(
                f"The window ({effective}, dilation included) is larger than the input "
                f"({length}) with padding 'valid': the output would be empty."
            )
        return out
    if padding == "causal":
        return (length + stride - 1) // stride
    raise SpecError(f"Expected `padding` 'valid' or 'same'. Received {padding!r}.")


def deconv_output_length(
    length: int | None,
    kernel: int,
    padding: str,
    stride: int,
    dilation: int = 1,
    output_padding: int | None = None,
) -> int | None:
    """Output length of a transposed convolution along one axis (Keras' formula)."""
    if length is None:
        return None
    kernel = kernel + (kernel - 1) * (dilation - 1)
    if output_padding is None:
        if padding == "valid":
            return length * stride + max(kernel - stride, 0)
        if padding == "same":
            return length * stride
        raise SpecError(f"Expected `padding` 'valid' or 'same'. Received {padding!r}.")
    pad = {"same": kernel // 2, "valid": 0}.get(padding)
    if pad is None:
        raise SpecError(f"Expected `padding` 'valid' or 'same'. Received {padding!r}.")
    return (length - 1) * stride + kernel - 2 * pad + output_padding


def normalize_axes(axis: Any, rank: int, name: str = "axis") -> tuple[int, ...]:
    """Axes of a full shape (batch axis = 0) as non-negative ints, as Keras resolves them."""
    axes = axis if isinstance(axis, (list, tuple)) else [axis]
    full_rank = rank + 1
    out: list[int] = []
    for a in axes:
        if not isinstance(a, int) or isinstance(a, bool) or not -full_rank <= a < full_rank:
            raise SpecError(
                f"Expected `{name}` in [{-full_rank}, {full_rank}) for an input of rank "
                f"{full_rank}. Received {axis!r}."
            )
        out.append(a % full_rank)
    if 0 in out:
        raise SpecError(f"`{name}` cannot be the batch axis. Received {axis!r}.")
    return tuple(out)


def dim_of(shape: Shape, full_axis: int, what: str) -> int:
    """The known size of a full-shape axis (batch axis = 0) of a batchless shape."""
    return require_known(shape[full_axis - 1], what)
