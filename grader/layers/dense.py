"""Dense (on inputs of any rank >= 2, batch included) and Embedding.

``Dense`` applies to the last axis: kernel ``(in, units)``. A LoRA-enabled Dense freezes its kernel
and trains ``lora_kernel_a (in, rank)`` and ``lora_kernel_b (rank, units)``, as Keras does.
"""

from __future__ import annotations

from collections.abc import Sequence

from grader.graph import Shape
from grader.layers.base import (
    Config,
    LayerSpec,
    SpecError,
    SpecUnsupported,
    WeightSpec,
    flag,
    positive_int,
    require_known,
    single_input,
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
    if config.get("quantization_config") or config.get("quantization_mode"):
        raise SpecUnsupported("Quantized Dense layers are not supported.")
    in_dim = require_known(shape[-1], "last axis of the input")
    units = _units(config)
    lora_rank = positive_int(config, "lora_rank") if config.get("lora_rank") else 0
    weights = [WeightSpec("kernel", (in_dim, units), trainable=not lora_rank)]
    if flag(config, "use_bias", True):
        weights.append(WeightSpec("bias", (units,)))
    if lora_rank:
        weights += [
            WeightSpec("lora_kernel_a", (in_dim, lora_rank)),
            WeightSpec("lora_kernel_b", (lora_rank, units)),
        ]
    return weights


def _embedding_output(config: Config, input_shapes: Sequence[Shape]) -> Shape:
    return (*single_input(input_shapes), positive_int(config, "output_dim"))


def _embedding_weights(config: Config, input_shapes: Sequence[Shape]) -> list[WeightSpec]:
    input_dim, output_dim = positive_int(config, "input_dim"), positive_int(config, "output_dim")
    if config.get("lora_rank") or config.get("quantization_config"):
        raise SpecUnsupported("LoRA or quantized Embedding layers are not supported.")
    return [WeightSpec("embeddings", (input_dim, output_dim))]


SPECS = [
    LayerSpec("Dense", _dense_output, _dense_weights),
    LayerSpec("Embedding", _embedding_output, _embedding_weights),
]
