"""The built-in Keras objects a layer argument may hold, and their arguments (Keras 3.15).

Tables for the allow-list of nested objects (`grader.layer_arguments`): activations by name,
the activation layers (from the layer records' safety, `grader.layers`), initializers,
regularizers, constraints and dtype policies with the arguments each takes, the keywords and
number ranges Keras checks, and what each argument position accepts in words
(`accepted_objects`, for the "Supported layers" page). Nothing here imports Keras;
`tests/grader/layers/test_layer_arguments.py` checks these tables against the installed Keras.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from grader.errors import InvalidModelConfig, UnsupportedLayer
from grader.layers import REGISTRY

#: Built-in activations by the names `keras.activations.get` accepts (Keras 3.15).
ACTIVATIONS = frozenset(
    {
        "celu",
        "elu",
        "exponential",
        "gelu",
        "glu",
        "hard_shrink",
        "hard_sigmoid",
        "hard_silu",
        "hard_swish",
        "hard_tanh",
        "leaky_relu",
        "linear",
        "log_sigmoid",
        "log_softmax",
        "mish",
        "relu",
        "relu6",
        "selu",
        "sigmoid",
        "silu",
        "soft_shrink",
        "softmax",
        "softplus",
        "softsign",
        "sparse_plus",
        "sparse_sigmoid",
        "sparsemax",
        "squareplus",
        "swish",
        "tanh",
        "tanh_shrink",
        "threshold",
    }
)
# The activations' own function names: the serialized function form resolves only these, not
# the aliases `swish` and `hard_swish`.
FUNCTION_NAMES = ACTIVATIONS - {"swish", "hard_swish"}
# Built-in, but refused: `glu` halves the last axis (the analysis infers the layer's own output
# shape), and `threshold` needs arguments an activation is never given (Keras fails calling it).
ACTIVATION_PROBLEMS = {
    "glu": (
        UnsupportedLayer,
        "halves the last axis, which the analysis does not model. Expected a shape-preserving "
        "activation such as 'relu'",
    ),
    "threshold": (
        InvalidModelConfig,
        "needs a threshold and a default value that an activation is never given. Expected "
        "another activation, or a ReLU layer with `threshold=` after this layer",
    ),
}

# Weight-free, shape-preserving activation layers Keras accepts as an `activation` object
# (`activation=keras.layers.LeakyReLU(0.1)`), with the arguments each takes: from the layer
# records' safety (`grader.layers`).
LAYER_KEYS = ("name", "trainable", "dtype")
ACTIVATION_LAYERS: dict[str, tuple[str, ...]] = {
    name: spec.safety.activation_arguments
    for name, spec in REGISTRY.items()
    if spec.safety is not None and spec.safety.activation_arguments is not None
}

_SEEDED = ("seed", "input_axes", "output_axes")
#: Built-in initializers and their arguments (Keras 3.15 `keras.initializers`).
INITIALIZERS: dict[str, tuple[str, ...]] = {
    "Constant": ("value",),
    "Zeros": (),
    "Ones": (),
    "Identity": ("gain",),
    "Orthogonal": ("gain", "seed"),
    "RandomNormal": ("mean", "stddev", "seed"),
    "RandomUniform": ("minval", "maxval", "seed"),
    "TruncatedNormal": ("mean", "stddev", "seed"),
    "VarianceScaling": ("scale", "mode", "distribution", *_SEEDED),
    "GlorotNormal": _SEEDED,
    "GlorotUniform": _SEEDED,
    "HeNormal": _SEEDED,
    "HeUniform": _SEEDED,
    "LecunNormal": _SEEDED,
    "LecunUniform": _SEEDED,
}
#: Built-in regularizers and their arguments (`keras.regularizers`).
REGULARIZERS: dict[str, tuple[str, ...]] = {
    "L1": ("l1",),
    "L2": ("l2",),
    "L1L2": ("l1", "l2"),
    "OrthogonalRegularizer": ("factor", "mode"),
}
#: Built-in constraints and their arguments (`keras.constraints`).
CONSTRAINTS: dict[str, tuple[str, ...]] = {
    "MaxNorm": ("max_value", "axis"),
    "MinMaxNorm": ("min_value", "max_value", "rate", "axis"),
    "NonNeg": (),
    "UnitNorm": ("axis",),
}

# The other names Keras resolves to those classes (`ALL_OBJECTS_DICT`: snake_case and aliases).
_INITIALIZER_ALIASES = {
    "IdentityInitializer": "Identity",
    "OrthogonalInitializer": "Orthogonal",
    "normal": "RandomNormal",
    "uniform": "RandomUniform",
    "one": "Ones",
    "zero": "Zeros",
}


def _snake(name: str) -> str:
    out = ""
    for index, char in enumerate(name):
        if char.isupper() and index and not name[index - 1].isupper():
            out += "_"
        out += char.lower()
    return out


def _names(classes: Mapping[str, Any], aliases: Mapping[str, str] | None = None) -> dict[str, str]:
    names = {name: name for name in classes}
    names.update({_snake(name): name for name in classes})
    names.update(aliases or {})
    return names


INITIALIZER_NAMES = _names(INITIALIZERS, _INITIALIZER_ALIASES)
REGULARIZER_NAMES = _names(REGULARIZERS)
CONSTRAINT_NAMES = _names(CONSTRAINTS)

#: Dtype names a layer may compute in; an InputLayer may also take integers and booleans.
FLOAT_DTYPES = frozenset(
    {"float16", "float32", "float64", "bfloat16", "mixed_float16", "mixed_bfloat16"}
)
INPUT_DTYPES = FLOAT_DTYPES | frozenset(
    {"uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64", "bool"}
)
QUANTIZATION_MODES = ("int8", "int4", "float8", "gptq", "awq")

# Keywords some arguments take, and number ranges, exactly as Keras checks them (a value Keras
# would refuse must be refused here, before any sandbox runs).
KEYWORDS = {
    ("VarianceScaling", "mode"): frozenset({"fan_in", "fan_out", "fan_avg"}),
    ("VarianceScaling", "distribution"): frozenset(
        {"uniform", "normal", "truncated_normal", "untruncated_normal"}
    ),
    ("OrthogonalRegularizer", "mode"): frozenset({"rows", "columns"}),
}
NON_NEGATIVE = frozenset({("L1", "l1"), ("L2", "l2"), ("L1L2", "l1"), ("L1L2", "l2")})
NON_NEGATIVE |= {("OrthogonalRegularizer", "factor")}
POSITIVE = frozenset({("VarianceScaling", "scale")})
DTYPE_POLICIES = frozenset(
    {
        "DTypePolicy",
        "FloatDTypePolicy",
        "DTypePolicyMap",
        "QuantizedDTypePolicy",
        "QuantizedFloat8DTypePolicy",
        "Int4DTypePolicy",
        "GPTQDTypePolicy",
        "AWQDTypePolicy",
    }
)
QUANTIZED_POLICIES = DTYPE_POLICIES - {"DTypePolicy", "FloatDTypePolicy", "DTypePolicyMap"}
# Axis arguments: an integer, or a short list of them.
AXES = frozenset({"axis", "input_axes", "output_axes"})
MAX_AXES = 8

OBJECT_KEYS = frozenset({"module", "class_name", "config", "registered_name", "shared_object_id"})

EXPECTED = {
    "activation": (
        "a built-in activation by name, e.g. activation='relu' (or a ReLU, LeakyReLU or ELU "
        "layer object); to apply any other layer, add it after this layer instead"
    ),
    "initializer": (
        "a built-in initializer with hyperparameters only, e.g. 'he_normal', "
        "RandomNormal(stddev=0.05) or Constant(0.1)"
    ),
    "regularizer": (
        "a built-in regularizer with number arguments: L1, L2, L1L2 or OrthogonalRegularizer, "
        "e.g. L2(0.0001)"
    ),
    "constraint": (
        "a built-in constraint with number arguments: MaxNorm, MinMaxNorm, NonNeg or UnitNorm"
    ),
    "dtype": "a dtype name such as 'float32' or 'mixed_float16' (or a DTypePolicy naming one)",
    "array": "a number, or a list of numbers (one per channel)",
}


def accepted_objects() -> list[tuple[str, str]]:
    """What each argument position accepts, in words, for the "Supported layers" page.

    Returns:
        ``(argument, accepted)`` pairs, the catch-all last.
    """
    shown = sorted(ACTIVATIONS - set(ACTIVATION_PROBLEMS))
    return [
        (
            "activation",
            f"a built-in activation by name ({', '.join(repr(n) for n in shown)}), or a "
            f"{', '.join(ACTIVATION_LAYERS)} layer object; any other layer goes after the layer",
        ),
        (
            "*_initializer",
            f"{', '.join(INITIALIZERS)} (or their names, e.g. 'he_normal'), with numbers, "
            "keywords and an integer seed only: Constant(0.1), never an array",
        ),
        ("*_regularizer", f"{', '.join(REGULARIZERS)}, with number arguments"),
        ("*_constraint", f"{', '.join(CONSTRAINTS)}, with number arguments"),
        ("dtype", f"a float dtype or policy name: {', '.join(sorted(FLOAT_DTYPES))}"),
        (
            "any other argument",
            "plain values (numbers, strings, lists): no serialized Keras object, no initial "
            "weights",
        ),
    ]
