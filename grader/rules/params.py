"""Typed parameters of rules: each knows what it accepts, how to say so, and how to normalise.

A parameter's `check` returns the normalised value or raises `ParamTypeError` whose ``expected``
phrase completes the sentence "Expected ...", so the schema can name the rule and parameter.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

_CLASS_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LAYER_NAME = re.compile(r"^[^\s]+$")


class ParamTypeError(ValueError):
    """A value of the wrong type or range; ``expected`` is a phrase like "an integer >= 1"."""

    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.expected = expected


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


def describe(value: Any) -> str:
    """A received value as a message shows it: ``'100k' (str)``, ``[3, 3] (list)``."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


@dataclass(frozen=True)
class Param:
    """Base parameter: a default (or `REQUIRED`) and a one-line description for docs."""

    default: Any = REQUIRED
    doc: str = ""

    @property
    def required(self) -> bool:
        """True when a rule must give this parameter (no default)."""
        return self.default is REQUIRED

    @property
    def expected(self) -> str:
        """What the parameter accepts, completing "Expected ...": ``"an integer >= 1"``."""
        raise NotImplementedError

    def check(self, value: Any) -> Any:
        """The value normalised; raises `ParamTypeError` when it is not acceptable."""
        raise NotImplementedError


@dataclass(frozen=True)
class Int(Param):
    """An integer within bounds; integral floats (``100000.0`` from a JSON form) are accepted."""

    minimum: int | None = None
    maximum: int | None = None

    @property
    def expected(self) -> str:
        return "an integer" + _bounds(self.minimum, self.maximum)

    def check(self, value: Any) -> int | None:
        if value is None and self.default is None:
            return None  # an optional parameter written out as null
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamTypeError(self.expected)
        _check_bounds(value, self.minimum, self.maximum, self.expected)
        return value


@dataclass(frozen=True)
class Number(Param):
    """A real number within bounds (an integer is accepted and kept as a float)."""

    minimum: float | None = None
    maximum: float | None = None

    @property
    def expected(self) -> str:
        return "a number" + _bounds(self.minimum, self.maximum)

    def check(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            raise ParamTypeError(self.expected)
        _check_bounds(value, self.minimum, self.maximum, self.expected)
        return float(value)


@dataclass(frozen=True)
class Bool(Param):
    """``true`` or ``false``; strings like ``"yes"`` are refused rather than guessed."""

    @property
    def expected(self) -> str:
        return "true or false"

    def check(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise ParamTypeError(self.expected)
        return value


@dataclass(frozen=True)
class Choice(Param):
    """One of a fixed set of strings."""

    choices: tuple[str, ...] = ()

    @property
    def expected(self) -> str:
        return "one of " + ", ".join(f"'{c}'" for c in self.choices)

    def check(self, value: Any) -> str:
        if not isinstance(value, str) or value not in self.choices:
            raise ParamTypeError(self.expected)
        return value


@dataclass(frozen=True)
class LayerName(Param):
    """The name of a layer in the submitted model (checked against the model when evaluated)."""

    @property
    def expected(self) -> str:
        return "a layer name (a non-empty string without spaces)"

    def check(self, value: Any) -> str | None:
        if value is None and self.default is None:
            return None
        if not isinstance(value, str) or not _LAYER_NAME.match(value):
            raise ParamTypeError(self.expected)
        return value


@dataclass(frozen=True)
class ClassNames(Param):
    """A non-empty list of Keras layer class names (``[MaxPooling2D, Lambda]``), no repeats."""

    @property
    def expected(self) -> str:
        return "a non-empty list of Keras layer class names, e.g. ['MaxPooling2D']"

    def check(self, value: Any) -> list[str]:
        if isinstance(value, str) or not isinstance(value, Sequence) or not value:
            raise ParamTypeError(self.expected)
        names = list(value)
        if not all(isinstance(n, str) and _CLASS_NAME.match(n) for n in names):
            raise ParamTypeError(self.expected)
        if len(set(names)) != len(names):
            raise ParamTypeError(self.expected + " without repeats")
        known = known_layer_classes()
        for name in names:
            if name not in known:
                # A typo would silently turn the rule into one that always passes.
                close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
                suggestion = f" (did you mean `{close[0]}`?)" if close else ""
                raise ParamTypeError(
                    f"Keras layer class names; `{name}` is not a Keras layer class{suggestion}"
                )
        return names


def known_layer_classes() -> frozenset[str]:
    """Every Keras layer class name a rule may mention: built-ins and what the grader supports."""
    from grader.layers import supported_classes
    from grader.layers.keras_classes import CODE_CARRYING_CLASSES, KERAS_BUILTIN_LAYERS

    return KERAS_BUILTIN_LAYERS | CODE_CARRYING_CLASSES | frozenset(supported_classes())


@dataclass(frozen=True)
class Size(Param):
    """A size in pixels: one positive integer (square) or ``[height, width]``."""

    @property
    def expected(self) -> str:
        return "a positive integer or a [height, width] pair of positive integers"

    def check(self, value: Any) -> int | list[int]:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 1:
                raise ParamTypeError(self.expected)
            return value
        if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
            pair = [Int(minimum=1).check(v) if _is_int(v) else None for v in value]
            if None not in pair:
                return [int(v) for v in pair if v is not None]
        raise ParamTypeError(self.expected)


def _is_int(v: Any) -> bool:
    try:
        Int(minimum=1).check(v)
    except ParamTypeError:
        return False
    return True


def _bounds(minimum: float | None, maximum: float | None) -> str:
    if minimum is not None and maximum is not None:
        return f" between {minimum:g} and {maximum:g}"
    if minimum is not None:
        return f" >= {minimum:g}"
    if maximum is not None:
        return f" <= {maximum:g}"
    return ""


def _check_bounds(
    value: float, minimum: float | None, maximum: float | None, expected: str
) -> None:
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ParamTypeError(expected)
