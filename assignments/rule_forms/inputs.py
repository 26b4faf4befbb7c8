"""Parameter inputs: how each type of rule parameter is typed in, read back and shown.

Chosen by the parameter's type (`grader.rules.params`), never per rule: `Int` and `Number` are
number inputs, `Bool` a checkbox, `Choice` a select, `ClassNames` a comma-separated list, `Size`
one number or "height, width", `LayerName` a text input; any other type a one-line YAML value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml
from django import forms

from grader.errors import RuleSetError
from grader.rules import parse_text
from grader.rules.params import (
    Bool,
    Choice,
    ClassNames,
    Int,
    LayerName,
    Number,
    Param,
    ParamTypeError,
    Size,
)


class _Missing(Exception):
    """A required parameter was left empty."""


def _shown(raw: Any) -> str:
    """What the instructor typed, as a message quotes it."""
    text = repr(raw if isinstance(raw, str) else str(raw))
    return text if len(text) <= 60 else text[:56] + "...'"


def _empty(raw: Any, param: Param) -> Any:
    """The value of an empty input: the parameter's default, or `_Missing` when required."""
    if param.required:
        raise _Missing
    return param.default


def _number_attrs(param: Int | Number, step: str) -> dict[str, Any]:
    attrs: dict[str, Any] = {"step": step}
    if param.minimum is not None:
        attrs["min"] = param.minimum
    if param.maximum is not None:
        attrs["max"] = param.maximum
    return attrs


def _parse_int(raw: Any, param: Param) -> Any:
    text = str(raw or "").strip()
    if not text:
        return _empty(raw, param)
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)  # "1e5" or "5.0": the parameter's check decides
    except ValueError:
        raise ParamTypeError(param.expected) from None
    if not math.isfinite(value):
        raise ParamTypeError(param.expected)
    return value


def _parse_number(raw: Any, param: Param) -> Any:
    text = str(raw or "").strip()
    if not text:
        return _empty(raw, param)
    try:
        value = float(text)
    except ValueError:
        raise ParamTypeError(param.expected) from None
    if not math.isfinite(value):
        raise ParamTypeError(param.expected)
    return value


def show_number(value: Any) -> str:
    if value is None:
        return ""
    # repr() of a float reads back to the same float: export -> import stays exact.
    return repr(value) if isinstance(value, float) else str(value)


def _parse_text(raw: Any, param: Param) -> Any:
    text = str(raw or "").strip()
    return text if text else _empty(raw, param)


def _parse_names(raw: Any, param: Param) -> Any:
    names = [n for n in re.split(r"[,\s]+", str(raw or "")) if n]
    return names if names else _empty(raw, param)


def _parse_size(raw: Any, param: Param) -> Any:
    text = str(raw or "").strip()
    if not text:
        return _empty(raw, param)
    parts = [p for p in re.split(r"[,x\s]+", text.strip("[]() ")) if p]
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        raise ParamTypeError(param.expected) from None
    return numbers[0] if len(numbers) == 1 else numbers


def _show_size(value: Any) -> str:
    if value is None:
        return ""
    return ", ".join(str(v) for v in value) if isinstance(value, list | tuple) else str(value)


def _parse_yaml(raw: Any, param: Param) -> Any:
    text = str(raw or "").strip()
    if not text:
        return _empty(raw, param)
    try:
        return parse_text(text)
    except RuleSetError:
        raise ParamTypeError(param.expected) from None


def _show_yaml(value: Any) -> str:
    if value is None:
        return ""
    return (
        yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("\n...")
    )


@dataclass(frozen=True)
class ParamInput:
    """How one kind of parameter is typed in: its widget, how text becomes a value, and back."""

    widget: Callable[[Any], forms.Widget]
    parse: Callable[[Any, Param], Any]
    show: Callable[[Any], Any]


# Checked in order with isinstance, so subclasses of a parameter type get its input.
PARAM_INPUTS: list[tuple[type[Param], ParamInput]] = [
    (Bool, ParamInput(lambda p: forms.CheckboxInput(), lambda raw, p: bool(raw), bool)),
    (
        Int,
        ParamInput(
            lambda p: forms.NumberInput(attrs=_number_attrs(p, "1")), _parse_int, show_number
        ),
    ),
    (
        Number,
        ParamInput(
            lambda p: forms.NumberInput(attrs=_number_attrs(p, "any")),
            _parse_number,
            show_number,
        ),
    ),
    (
        Choice,
        ParamInput(
            lambda p: forms.Select(choices=[(c, c) for c in p.choices]),
            _parse_text,
            lambda v: "" if v is None else str(v),
        ),
    ),
    (
        ClassNames,
        ParamInput(
            lambda p: forms.TextInput(
                attrs={"placeholder": "e.g. MaxPooling2D, Flatten", "spellcheck": "false"}
            ),
            _parse_names,
            lambda v: ", ".join(v or ()),
        ),
    ),
    (
        Size,
        ParamInput(
            lambda p: forms.TextInput(attrs={"placeholder": "32, or 32, 24 for height, width"}),
            _parse_size,
            _show_size,
        ),
    ),
    (
        LayerName,
        ParamInput(
            lambda p: forms.TextInput(
                attrs={
                    "placeholder": "default" if p.default is None else str(p.default),
                    "spellcheck": "false",
                }
            ),
            _parse_text,
            lambda v: "" if v is None else str(v),
        ),
    ),
]
_YAML_INPUT = ParamInput(
    lambda p: forms.TextInput(attrs={"class": "code", "spellcheck": "false"}),
    _parse_yaml,
    _show_yaml,
)


def param_input(param: Param) -> ParamInput:
    """The input of a parameter type; a one-line YAML value for a type not listed."""
    for param_class, spec in PARAM_INPUTS:
        if isinstance(param, param_class):
            return spec
    return _YAML_INPUT


def displayed(param: Param, value: Any) -> Any:
    """A parameter value as its input shows it (the default for a new row when `value` is None
    and the parameter has one)."""
    return param_input(param).show(value)


def rule_label(index: int, rule_id: str) -> str:
    return f"Rule {index + 1} (`{rule_id}`)" if rule_id else f"Rule {index + 1}"


class ParamField(forms.Field):
    """One parameter of one rule: parses the input, then asks the parameter's own `check`.

    Errors name the row, the rule and the parameter, what was expected and what was typed:
    "Rule 2 (`max_params`): `limit` must be an integer >= 1, got 'abc'."
    """

    def __init__(self, *, param: Param, name: str, where: str, **kwargs: Any) -> None:
        self.param = param
        self.param_name = name
        self.where = where
        self.input = param_input(param)
        widget = self.input.widget(param)
        if param.required and not isinstance(param, Bool):
            widget.attrs["required"] = True
        super().__init__(
            required=False,
            widget=widget,
            label=name,
            help_text=param.doc,
            initial=None if param.required else self.input.show(param.default),
            **kwargs,
        )

    def clean(self, value: Any) -> Any:
        try:
            parsed = self.input.parse(value, self.param)
        except _Missing:
            raise forms.ValidationError(
                f"{self.where}: `{self.param_name}` is required. Expected {self.param.expected}.",
                code="required",
            ) from None
        except ParamTypeError as exc:
            raise self._invalid(exc.expected, value) from None
        try:
            return self.param.check(parsed)
        except ParamTypeError as exc:
            raise self._invalid(exc.expected, value) from None

    def _invalid(self, expected: str, value: Any) -> forms.ValidationError:
        return forms.ValidationError(
            f"{self.where}: `{self.param_name}` must be {expected}, got {_shown(value)}.",
            code="invalid",
        )
