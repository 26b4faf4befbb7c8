"""What a layer config says is zero: constraints and initializers that zero a weight, numbers.

Read by `grader.graph_effect`, which decides whether a branch can change a model's output: a
weight an initializer fills with zeros, or a constraint forces to zero, makes its layer output a
constant. Pure functions over config values; no Keras.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def config_of(spec: Mapping[str, Any]) -> Mapping[str, Any]:
    inner = spec.get("config")
    return inner if isinstance(inner, Mapping) else {}


def zeroing_constraint(spec: Any) -> str | None:
    """A description of `spec` when it may force a weight to zero, else None."""
    if spec is None or isinstance(spec, str):
        return None  # by name: Keras' defaults (MaxNorm(2), ...), never zero
    if not isinstance(spec, Mapping):
        return f"{spec!r}"
    cls = spec.get("class_name")
    cfg = config_of(spec)
    if cls in ("NonNeg", "UnitNorm", "Constraint"):
        return None
    if cls == "MaxNorm":
        top = cfg.get("max_value", 2)
        if as_number(top) is None or as_number(top) <= 0:  # type: ignore[operator]
            return f"MaxNorm(max_value={show_value(top)})"
        return None
    if cls == "MinMaxNorm":
        top, rate = cfg.get("max_value", 1.0), cfg.get("rate", 1.0)
        top_n, rate_n = as_number(top), as_number(rate)
        if top_n is None or rate_n is None or (top_n <= 0 and rate_n > 0):
            return f"MinMaxNorm(max_value={show_value(top)}, rate={show_value(rate)})"
        return None
    return f"{cls}(...)"  # a constraint the grader does not know: it could zero the weight


# Random initializers that draw only zeros when both bounds (Keras' defaults shown) are 0.
ZERO_SPREAD: dict[str, tuple[tuple[str, float], ...]] = {
    "RandomNormal": (("mean", 0.0), ("stddev", 0.05)),
    "TruncatedNormal": (("mean", 0.0), ("stddev", 0.05)),
    "RandomUniform": (("minval", -0.05), ("maxval", 0.05)),
}


def zero_initializer(spec: Any) -> bool:
    """True when initializer `spec` fills a weight with zeros."""
    if isinstance(spec, str):
        return spec.lower() in ("zeros", "zero", "constant")  # Constant() defaults to 0
    if not isinstance(spec, Mapping):
        return False
    cls = spec.get("class_name")
    cfg = config_of(spec)
    if cls == "Zeros":
        return True
    if cls == "Constant":
        return is_zero(cfg.get("value", 0.0))
    if cls in ZERO_SPREAD:
        return all(is_zero(cfg.get(key, default)) for key, default in ZERO_SPREAD[cls])
    if cls in ("Orthogonal", "Identity"):
        return is_zero(cfg.get("gain", 1.0))
    return False


def as_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def is_zero(value: Any) -> bool:
    return as_number(value) == 0.0


def numbers_in(value: Any) -> list[float] | None:
    """Every number in a scalar, a (nested) list, or a serialized array; None if not numbers."""
    if isinstance(
        value, Mapping
    ):  # a serialized NumPy array: {"class_name": ..., "config": {"value": ...}}
        inner = value.get("config")
        return numbers_in(inner.get("value")) if isinstance(inner, Mapping) else None
    if isinstance(value, list | tuple):
        out: list[float] = []
        for item in value:
            numbers = numbers_in(item)
            if numbers is None:
                return None
            out.extend(numbers)
        return out
    number = as_number(value)
    return None if number is None else [number]


def show_value(value: Any) -> str:
    numbers = numbers_in(value)
    if numbers is not None and len(set(numbers)) == 1:
        return f"{numbers[0]:g}" if numbers[0] != 0 else "0.0"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
