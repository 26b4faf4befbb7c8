"""What every layer spec provides: the one record of what the grader knows about a layer class.

A record (`LayerSpec`) holds a class's arguments, output-shape inference and weights, its
receptive-field geometry (`grader.rf.effects.Geometry`), the rule families it belongs to
(`RULE_FAMILIES`, read by `grader.rules.families`) and its safety record (`Safety`, read by
`grader.config_safety` and `grader.layer_arguments`). Every other table of layer classes is
built from the records; `tests/grader/layers/test_layer_records.py` checks that each record
is complete.

A spec is pure Python: it reads a layer's Keras config and the shapes of its inputs (batch axis
excluded, ``None`` for unknown sizes) and answers like Keras' ``compute_output_shape`` and
``build`` would, without importing Keras. Problems raise `SpecError` with a message that the graph
builder prefixes with the layer's name and class.

Each spec also lists every config key its Keras class accepts (``LayerSpec.arguments``, one table
per family module). Keras builds a layer with ``cls(**config)``, so a key outside that list makes
Keras refuse the whole model; the analysis refuses it too (`SpecError`) instead of ignoring it
and reporting numbers for a model that can never be trained. Argument values that add or change
weights in ways the analysis does not model are refused by name (`Refusal`, `SpecUnsupported`);
every other argument either has no effect on the weights or is counted by the spec's
``infer_weights``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from grader.graph import Shape
from grader.rf.effects import Geometry

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


# Keys every Keras layer's config may carry through ``Layer.__init__``. ``input_shape`` and
# ``input_dim`` declare the input of a Sequential model's first layer; Keras ignores them
# elsewhere. A class that passes one of these itself, or has no ``**kwargs``, lists its own set.
LAYER_ARGUMENTS = frozenset(
    {"name", "trainable", "dtype", "autocast", "activity_regularizer", "input_shape", "input_dim"}
)

# Keras' quantization modes: a dtype policy named "<mode>_from_<dtype>" quantizes the layer,
# which then holds integer kernels and scales instead of float weights.
QUANTIZATION_MODES = ("int8", "int4", "float8", "gptq", "awq")


def arguments(*own: str, base: frozenset[str] = LAYER_ARGUMENTS) -> frozenset[str]:
    """The config keys a Keras layer class accepts: its own arguments and the `base` ones."""
    return frozenset(own) | base


@dataclass(frozen=True)
class Refusal:
    """An argument value the analysis refuses instead of modelling (`SpecUnsupported`).

    Attributes:
        argument: the config key.
        allowed: ``value -> bool``; False refuses the layer.
        expected: what to write instead, completing "Expected ...".
        reason: why, for the student.
    """

    argument: str
    allowed: Callable[[Any], bool]
    expected: str
    reason: str

    def check(self, config: Config) -> None:
        """Raise `SpecUnsupported` if `config` gives this argument a refused value."""
        if self.argument in config and not self.allowed(config[self.argument]):
            raise SpecUnsupported(
                f"`{self.argument}` is {_brief(config[self.argument])}. Expected "
                f"{self.expected}: {self.reason}"
            )


def _brief(value: Any) -> str:
    """A config value as a message quotes it, cut short (weights can be megabytes long)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def is_null(value: Any) -> bool:
    """True for an unset option (``null`` in JSON)."""
    return value is None


def _float_dtype(value: Any) -> bool:
    """False for a quantized dtype policy, by name or by its serialized form."""
    name = value
    if isinstance(value, Mapping):
        if "Quantized" in str(value.get("class_name")):
            return False
        inner = value.get("config")
        name = inner.get("name") if isinstance(inner, Mapping) else None
    return not (isinstance(name, str) and name.startswith(QUANTIZATION_MODES))


# Refused for every layer class.
COMMON_REFUSALS = (
    Refusal(
        "dtype",
        _float_dtype,
        "a float dtype policy such as 'float32' or 'mixed_float16'",
        "a quantized layer stores integer weights and scales, not the float weights that are "
        "counted and trained here; quantize after grading.",
    ),
)


# The families of layer classes that rules and hints ask about (`grader.rules.families`).
PLAIN_CONV = "plain_conv"  # ConvND and ConvNDTranspose
SEPARABLE_CONV = "separable_conv"
DEPTHWISE_CONV = "depthwise_conv"
DROPOUT = "dropout"  # its `rate` is a dropout probability
GLOBAL_AVERAGE_POOLING = "global_average_pooling"
GLOBAL_MAX_POOLING = "global_max_pooling"
# After it the tensor is still "the image" for the first-convolution exemption: it maps every
# position on its own or only moves, pads, crops or resamples positions without learned weights.
IMAGE_PRESERVING = "image_preserving"
RULE_FAMILIES = frozenset(
    {
        PLAIN_CONV,
        SEPARABLE_CONV,
        DEPTHWISE_CONV,
        DROPOUT,
        GLOBAL_AVERAGE_POOLING,
        GLOBAL_MAX_POOLING,
        IMAGE_PRESERVING,
    }
)
NO_FAMILY: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Safety:
    """What the config safety screen accepts of a layer class.

    Attributes:
        builtin: Keras exports the class from `keras.layers` under this name and rebuilds it
            without running code from the config; only such classes are supported. The
            built-in list (`grader.layers.keras_classes.KERAS_BUILTIN_LAYERS`) is built from it.
        activation_arguments: the arguments the class takes when another layer's
            ``activation`` holds it as an object (``activation=LeakyReLU(0.1)``), or None when
            it may not be an activation (`grader.keras_objects.ACTIVATION_LAYERS`).
        array_arguments: arguments that may hold a one-dimensional array of numbers
            (Rescaling's ``scale`` and ``offset``); elsewhere data is refused.
    """

    builtin: bool = True
    activation_arguments: tuple[str, ...] | None = None
    array_arguments: tuple[str, ...] = ()


BUILTIN = Safety()


@dataclass(frozen=True)
class Zeros:
    """What a call does with zeros: can a branch through it still change the model's output?

    Read by `grader.graph_effect`, which finds calls whose output is a constant (a rule must not
    count them as computing anything).

    Attributes:
        preserves_zero: an all-zero input gives an all-zero output, whatever the weights.
        data_weights: the weights on the data path: zero them (a constraint, a frozen zero
            initializer) and the output no longer depends on the input.
        linear: linear in its input, so zero in gives zero out when it has no bias.
    """

    preserves_zero: bool = False
    data_weights: tuple[str, ...] = ()
    linear: bool = False


#: Neither preserves zeros nor has weights that can cut its input off (decided case by case
#: in `grader.graph_effect`, or never constant).
NO_ZERO_RULE = Zeros()
#: Zero in, zero out, whatever its weights (dropout, pooling, reshaping, padding, merges).
PRESERVES_ZERO = Zeros(preserves_zero=True)


def linear_in(*weights: str) -> Zeros:
    """A weighted layer linear in its input through `weights` (convolutions, Dense)."""
    return Zeros(data_weights=weights, linear=True)


def scaled_by(*weights: str) -> Zeros:
    """A layer whose output depends on its input only through `weights` (normalizations)."""
    return Zeros(data_weights=weights)


@dataclass(frozen=True)
class LayerSpec:
    """How to analyse one Keras layer class.

    Attributes:
        class_name: the Keras class name.
        infer_output_shape: ``(config, input_shapes) -> output shape``.
        infer_weights: ``(config, input_shapes) -> weight specs`` at build time (first call).
        multi_input: True for merge layers, which take a list of tensors.
        arguments: every config key the Keras class accepts (see `arguments`).
        refusals: argument values refused for this class, besides `COMMON_REFUSALS`.
        geometry: how a call moves positions and channels (the receptive-field record).
        families: the rule families the class belongs to (`RULE_FAMILIES`; may be empty).
        safety: what the safety screen accepts of the class.
        call_takes_mask: whether the class's ``call`` takes a ``mask`` argument, so that a
            recorded ``mask=None`` is accepted (`grader.keras_config.CALL_TAKES_MASK`).
        zeros: what a call does with zeros (`Zeros`, read by `grader.graph_effect`).

    The last three default to None only so that a record missing one is caught by the
    completeness test instead of silently meaning "nothing".
    """

    class_name: str
    infer_output_shape: OutputShapeFn
    infer_weights: WeightsFn = no_weights
    multi_input: bool = False
    arguments: frozenset[str] = LAYER_ARGUMENTS
    refusals: tuple[Refusal, ...] = ()
    geometry: Geometry | None = None
    families: frozenset[str] | None = None
    safety: Safety | None = None
    call_takes_mask: bool = False
    zeros: Zeros | None = None

    def check_config(self, config: Config) -> None:
        """Refuse keys the Keras class does not accept and argument values not modelled.

        Raises:
            SpecError: a key Keras refuses (Keras would not build the model).
            SpecUnsupported: a value in `refusals` or `COMMON_REFUSALS`.
        """
        for key in config:
            if key not in self.arguments:
                raise SpecError(self._unknown_argument(key))
        for refusal in (*COMMON_REFUSALS, *self.refusals):
            refusal.check(config)

    def _unknown_argument(self, key: Any) -> str:
        text = str(key)
        close = (
            difflib.get_close_matches(text, sorted(self.arguments), n=1) if len(text) < 60 else []
        )
        hint = f" (did you mean `{close[0]}`?)" if close else ""
        shown = text if len(text) < 60 else text[:57] + "..."
        return (
            f"Keras' {self.class_name} has no argument `{shown}`, so Keras cannot build this "
            f"model. Expected only {self.class_name}'s own arguments{hint}."
        )

    def output_shape(self, config: Config, input_shapes: Sequence[Shape]) -> Shape:
        """The output shape of a call on `input_shapes`, once the config is checked.

        Raises:
            SpecError: invalid config or input shapes.
            SpecUnsupported: an argument value the analysis does not model.
        """
        self.check_config(config)
        return self.infer_output_shape(config, input_shapes)

    def weights(self, config: Config, input_shapes: Sequence[Shape]) -> list[WeightSpec]:
        """The weights the layer creates when first called on `input_shapes`.

        Raises:
            SpecError: invalid config or input shapes.
            SpecUnsupported: an argument value the analysis does not model.
        """
        self.check_config(config)
        return self.infer_weights(config, input_shapes)


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
    value_type = type(value)
    if value_type is int:
        return (value,) * n
    if (value_type is list or value_type is tuple) and len(value) == n:
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


def lora_rank(config: Config, constraint: str) -> int:
    """The rank of a layer's LoRA adapters, 0 without them, read as Keras reads ``lora_rank``.

    Keras enables LoRA when ``lora_rank`` is truthy; it refuses LoRA on a layer whose kernel has
    a constraint (`constraint` names that argument).
    """
    if not config.get("lora_rank"):
        return 0
    rank = positive_int(config, "lora_rank")
    if config.get(constraint) is not None:
        raise SpecError(
            f"LoRA (`lora_rank` {rank}) cannot be combined with `{constraint}`; Keras refuses "
            f"it. Expected `lora_rank` null or `{constraint}` null."
        )
    return rank


def with_lora(
    kernel: WeightSpec, rank: int, names: tuple[str, str] = ("lora_kernel_a", "lora_kernel_b")
) -> list[WeightSpec]:
    """`kernel`, frozen, and its two trainable LoRA factors when `rank` > 0 (``enable_lora``).

    The factors are ``kernel.shape[:-1] + (rank,)`` and ``(rank, kernel.shape[-1])``; Keras then
    trains only them and keeps the kernel as a non-trainable weight.
    """
    if not rank:
        return [kernel]
    return [
        WeightSpec(kernel.name, kernel.shape, trainable=False),
        WeightSpec(names[0], (*kernel.shape[:-1], rank)),
        WeightSpec(names[1], (rank, kernel.shape[-1])),
    ]
