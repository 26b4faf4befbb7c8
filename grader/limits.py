"""Bounds on what an untrusted model config may hold, so every number the analysis reports is sane.

Python's integers never overflow, so an absurd config (``kernel_size: 10**9``, a padding of
``2**60``) would be analysed "exactly", and then break what reads the numbers: a parameter count
past 2**63 overflows the database's bigint, one past 4,300 digits cannot even be printed
(``ValueError``), and JavaScript readers of the JSON round anything past 2**53. So every integer
in a config, every tensor and weight size, the parameter total and every receptive-field size is
held to `MAX_SIZE`; nothing trainable comes near it.

`check_values` also refuses what JSON or the database cannot store: NaN and infinities (Python's
``json`` reads them, PostgreSQL's ``jsonb`` refuses them, and a NaN rate compares false with
every rule limit), NUL characters and lone surrogates (refused by PostgreSQL text and UTF-8).
"""

from __future__ import annotations

import math
import re
from typing import Any

from grader.errors import InvalidModelConfig

#: The largest size the analysis reports: 2**53 - 1, exact in every JSON reader.
MAX_SIZE = 2**53 - 1

_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")


def _bad_leaf(value: Any) -> bool:
    value_type = type(value)
    if value_type is str:
        return _BAD_TEXT.search(value) is not None
    if value_type is int:
        return value > MAX_SIZE or value < -MAX_SIZE
    if value_type is float:
        return not math.isfinite(value)
    return False


def check_values(config: Any) -> None:
    """Refuse a config holding a value the analysis or the database cannot handle.

    Args:
        config: parsed JSON (dicts, lists, strings, numbers, booleans, nulls).

    Raises:
        InvalidModelConfig: naming the layer and the path of the first such value.
    """
    # One tight pass over the whole config (every upload pays it); the offending value is
    # located and described only when there is one.
    stack = [config]
    pop, push = stack.pop, stack.append
    bad = False
    while stack and not bad:
        item = pop()
        value_type = type(item)
        if value_type is dict:
            for key, child in item.items():
                child_type = type(child)
                if _bad_leaf(key):
                    bad = True
                    break
                if child_type is dict or child_type is list:
                    push(child)
                elif _bad_leaf(child):
                    bad = True
                    break
        elif value_type is list:
            for child in item:
                child_type = type(child)
                if child_type is dict or child_type is list:
                    push(child)
                elif _bad_leaf(child):
                    bad = True
                    break
        elif _bad_leaf(item):
            bad = True
    if bad:
        raise InvalidModelConfig(_describe(config))


def _printable(text: str) -> str:
    return _BAD_TEXT.sub(lambda m: ascii(m.group())[1:-1], text)


def _what(value: Any) -> str:
    if type(value) is str:
        char = _BAD_TEXT.search(value)
        assert char is not None
        return (
            f"text containing {char.group()!a}. Expected text without NUL characters or "
            "lone surrogates, which cannot be stored"
        )
    if type(value) is int:
        return (
            f"an integer beyond \u00b1{MAX_SIZE:,}. Expected integers (sizes, counts) of at most "
            f"{MAX_SIZE:,}"
        )
    return f"the number {value!r}. Expected finite numbers: NaN and Infinity are not JSON"


def _describe(config: Any) -> str:
    """Where the first bad value is: its layer (the innermost named object) and its path."""
    stack: list[tuple[Any, str, str | None]] = [(config, "", None)]
    while stack:
        item, path, layer = stack.pop()
        if type(item) is dict:
            inner = item.get("config")
            name = item.get("name")
            if name is None and type(inner) is dict:
                name = inner.get("name")
            if type(name) is str and "class_name" in item:
                layer = name
            for key, child in reversed(list(item.items())):
                if _bad_leaf(key):
                    return _message(layer, path or "(top level)", key)
                stack.append((child, f"{path}.{key}" if path else str(key), layer))
        elif type(item) is list:
            for index in reversed(range(len(item))):
                stack.append((item[index], f"{path}[{index}]", layer))
        elif _bad_leaf(item):
            return _message(layer, path, item)
    return "The model config holds a value that cannot be analysed."  # not reached


def _message(layer: str | None, path: str, value: Any) -> str:
    where = f"Layer `{_printable(layer)}`" if layer is not None else "The model config"
    return f"{where} has, at `{_printable(path)}`, {_what(value)}."
