"""Dense (on inputs of any rank >= 2, batch included) and Embedding.

``Dense`` applies to the last axis: kernel ``(in, units)``; ``Embedding`` has one
``(input_dim, output_dim)`` table. With ``lora_rank`` set, Keras freezes the kernel (or table) and
trains two low-rank factors instead; both are counted, as for ConvND.

Refused: ``quantization_config`` (a quantized layer holds integer weights and scales) and
Embedding's initial ``weights`` (a model is graded and trained from fresh weights). The other
arguments (activation, initializers, regularizers, constraints, ``lora_alpha``, ``mask_zero``,
the deprecated ``input_length``) never change the weights.
"""

from __future__ import annotations

from collections.abc import Sequence

from grader.graph import Shape
from grader.layers.base import (
    BUILTIN,
    NO_FAMILY,
    NO_ZERO_RULE,
    Config,
    LayerSpec,
    Refusal,
    SpecError,
    WeightSpec,
    arguments,
    flag,
    is_null,
    linear_in,
    lora_rank,
    positive_int,
    require_known,
    single_input,
    with_lora,
)
from grader.rf.readers import CHANNEL_MIX, EMBEDDING

DENSE_ARGUMENTS = arguments(
    "units",
    "activation",
    "use_bias",
    "kernel_initializer",
    "bias_initializer",
    "kernel_regularizer",
    "bias_regularizer",
    "activity_regularizer",
    "kernel_constraint",
    "bias_constraint",
    "lora_rank",
    "lora_alpha",
    "quantization_config",
)
EMBEDDING_ARGUMENTS = arguments(
    "input_dim",
    "output_dim",
    "embeddings_initializer",
    "embeddings_regularizer",
    "embeddings_constraint",
    "mask_zero",
    "weights",
    "lora_rank",
    "lora_alpha",
    "quantization_config",
    "input_length",  # deprecated; Keras pops and ignores it
)

NOT_QUANTIZED = Refusal(
    "quantization_config",
    is_null,
    "null",
    "quantization settings are for deployment, and models are counted and trained in float "
    "here; quantize after grading.",
)
NO_INITIAL_WEIGHTS = Refusal(
    "weights",
    is_null,
    "null",
    "models are graded and trained from freshly initialized weights, so initial values in a "
    "config are not accepted; use `embeddings_initializer` to choose how they start.",
)


def _units(config: Config) -> int:
    return positive_int(config, "units")


def _dense_output(config: Config, input_shapes: Sequence[Shape]) -> Shape:
    shape = single_input(input_shapes)
    if len(shape) < 1:
        raise SpecError("Expected an input of rank >= 2 (batch axis included). Received (None,).")
    return (*shape[:-1], _units(config))


def _dense_weights(config: Config, input_shapes: Sequence[Shape]) -> list[WeightSpec]:
    shape = single_input(input_shapes)
    if len(shape) < 1:
        raise SpecError("Expected an input of rank >= 2 (batch axis included). Received (None,).")
    in_dim = require_known(shape[-1], "last axis of the input")
    units = _units(config)
    lora = lora_rank(config, "kernel_constraint")
    kernel, *adapters = with_lora(WeightSpec("kernel", (in_dim, units)), lora)
    bias = [WeightSpec("bias", (units,))] if flag(config, "use_bias", True) else []
    return [kernel, *bias, *adapters]


def _embedding_output(config: Config, input_shapes: Sequence[Shape]) -> Shape:
    return (*single_input(input_shapes), positive_int(config, "output_dim"))


def _embedding_weights(config: Config, input_shapes: Sequence[Shape]) -> list[WeightSpec]:
    input_dim, output_dim = positive_int(config, "input_dim"), positive_int(config, "output_dim")
    lora = lora_rank(config, "embeddings_constraint")
    return with_lora(
        WeightSpec("embeddings", (input_dim, output_dim)),
        lora,
        names=("lora_embeddings_a", "lora_embeddings_b"),
    )


SPECS = [
    LayerSpec(
        "Dense",
        _dense_output,
        _dense_weights,
        arguments=DENSE_ARGUMENTS,
        refusals=(NOT_QUANTIZED,),
        geometry=CHANNEL_MIX,
        families=NO_FAMILY,
        safety=BUILTIN,
        zeros=linear_in("kernel"),
    ),
    LayerSpec(
        "Embedding",
        _embedding_output,
        _embedding_weights,
        arguments=EMBEDDING_ARGUMENTS,
        refusals=(NOT_QUANTIZED, NO_INITIAL_WEIGHTS),
        geometry=EMBEDDING,
        families=NO_FAMILY,
        safety=BUILTIN,
        zeros=NO_ZERO_RULE,
    ),
]
