"""What the hardware allows: memory growth and XLA on a GPU (mixed precision on request)."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Accelerator:
    """What the trainer found and enabled.

    Attributes:
        gpu: a GPU is visible to the Keras backend (TensorFlow or JAX).
        mixed_precision: the Keras dtype policy for hidden layers (None: float32 throughout).
        jit_compile: XLA compilation of the train step.
    """

    gpu: bool
    mixed_precision: str | None
    jit_compile: bool


def configure_accelerator(*, allow_mixed_precision: bool = False) -> Accelerator:
    """Enable memory growth and XLA when a GPU is present, mixed precision on request; CPU stays
    float32.

    Mixed precision is off by default because it slows the models this course grades: on an
    H200, the course's 75k-parameter SeparableConv2D model trained at 0.89x the float32 speed in
    bfloat16 (batch 128; 0.84x at batch 512), and its first epoch took 74 s to compile instead
    of 22 s (`bench/bench_gpu_course_model.py`, Keras 3.15). Such small models are bound by
    kernel launches and memory traffic, which the casts add to; the matrix units bfloat16 buys
    stay idle. With `allow_mixed_precision`, bfloat16 on GPUs of compute capability 8.0 and
    newer (no loss scaling needed), float16 with loss scaling on older ones.

    On the JAX backend the train step is always compiled (XLA is how JAX runs: without it every
    op is dispatched one by one, far slower even on a CPU), and memory growth is
    ``XLA_PYTHON_CLIENT_PREALLOCATE=false``, set by `grader.training.backend.select_backend`.
    """
    import keras

    if keras.backend.backend() == "jax":
        capability = _jax_gpu_capability()
        if capability is None:
            return Accelerator(gpu=False, mixed_precision=None, jit_compile=True)
        return Accelerator(
            gpu=True,
            mixed_precision=_policy(capability) if allow_mixed_precision else None,
            jit_compile=True,
        )

    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return Accelerator(gpu=False, mixed_precision=None, jit_compile=False)
    for gpu in gpus:
        # RuntimeError: already initialised in this process; keep its setting.
        with contextlib.suppress(RuntimeError):
            tf.config.experimental.set_memory_growth(gpu, True)
    policy = None
    if allow_mixed_precision:
        details = tf.config.experimental.get_device_details(gpus[0])
        policy = _policy(tuple(details.get("compute_capability") or (0, 0)))
    return Accelerator(gpu=True, mixed_precision=policy, jit_compile=True)


def _policy(capability: tuple[int, ...]) -> str:
    return "mixed_bfloat16" if tuple(capability) >= (8, 0) else "mixed_float16"


def _jax_gpu_capability() -> tuple[int, ...] | None:
    """The first JAX GPU's compute capability (``(0, 0)`` if unknown); None without a GPU."""
    import jax

    try:
        gpus = jax.devices("gpu")
    except RuntimeError:  # no GPU platform in this jaxlib, or no device
        return None
    if not gpus:
        return None
    text = str(getattr(gpus[0], "compute_capability", "") or "0.0")
    try:
        return tuple(int(part) for part in text.split("."))
    except ValueError:
        return (0, 0)


def with_dtype_policy(model_config: Mapping[str, Any], policy: str) -> dict[str, Any]:
    """A copy of the config whose layers compute in `policy`, outputs kept in float32.

    Keras 3 configs pin every layer's dtype policy, so the global policy alone would not apply.
    Outputs stay float32 so that softmax and the loss are computed at full precision.
    """
    config = copy.deepcopy(dict(model_config))
    body = config.get("config") or {}
    layers = body.get("layers") or []
    if config.get("class_name") == "Sequential":
        outputs = {layers[-1]["config"]["name"]} if layers else set()
    else:
        declared = body.get("output_layers") or []
        # One output is written flat (`["dense", 0, 0]`), several as a list of such triples.
        if declared and isinstance(declared[0], str):
            declared = [declared]
        outputs = {entry[0] for entry in declared}

    def visit(entries: list[dict[str, Any]], top: bool) -> None:
        for entry in entries:
            layer_config = entry.get("config") or {}
            if entry.get("class_name") == "InputLayer":
                continue
            if entry.get("class_name") in ("Sequential", "Functional"):
                visit(layer_config.get("layers") or [], top=False)
                continue
            keep_float32 = top and layer_config.get("name") in outputs
            layer_config["dtype"] = {
                "module": "keras",
                "class_name": "DTypePolicy",
                "config": {"name": "float32" if keep_float32 else policy},
                "registered_name": None,
            }

    visit(layers, top=True)
    return config
