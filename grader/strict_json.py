"""JSON as the database stores it: no NaN, no Infinity, no float too large for a double.

Python's `json` reads ``NaN``, ``Infinity`` and ``1e400`` (as infinity); PostgreSQL's ``jsonb``
refuses them, and a NaN compares false with every rule limit. Every reader of untrusted JSON
(model configs, notebooks, what a sandbox wrote) goes through `loads_strict`, which refuses them
with `NonFiniteNumber`. Standard library only: the sandbox runner may import it.
"""

from __future__ import annotations

import json
import math
from typing import Any


class NonFiniteNumber(ValueError):
    """A number JSON cannot hold: ``NaN``, ``Infinity``, or a float literal past a double.

    Attributes:
        literal: the number as written (at most 40 characters).
    """

    def __init__(self, literal: str, reason: str) -> None:
        super().__init__(f"{literal} {reason}")
        self.literal = literal


def _refuse_constant(literal: str) -> Any:
    raise NonFiniteNumber(literal, "is not a JSON number")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):  # `1e400` reads as infinity
        raise NonFiniteNumber(literal[:40], "is out of range")
    return value


def loads_strict(text: str | bytes) -> Any:
    """`json.loads` that refuses the numbers JSON cannot hold.

    Raises:
        NonFiniteNumber: ``NaN``, ``Infinity``, ``-Infinity`` or a float past a double.
        ValueError: anything else `json.loads` refuses (`json.JSONDecodeError`, an integer
            past Python's digit limit, bytes that are not UTF-8).
        RecursionError: nesting deeper than the interpreter's stack.
    """
    return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
