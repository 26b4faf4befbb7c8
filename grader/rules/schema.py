"""Rule sets: parsing YAML or JSON, validating every rule against the registry, round-tripping.

A rule set is a mapping with a ``rules`` list; each rule is a mapping with an ``id``, that rule's
parameters, and the common keys ``points`` (default 1) and ``name`` (needed to repeat an id).
Presets add assignment metadata (``slug``, ``title``, ``dataset``, ...). Anything unexpected is
refused with a `RuleSetError` naming the rule (index and id), the parameter, what was expected
and what was received: a typo must never silently turn a rule off.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from grader.errors import RuleSetError

from .params import (
    REQUIRED,
    Bool,
    Choice,
    Int,
    Param,
    ParamTypeError,
    describe,
)
from .registry import RULES
from .spec import DEFAULT_POINTS as _POINTS
from .spec import RuleSpec

COMMON_KEYS = ("id", "name", "points")


class InvalidRule(RuleSetError):
    """A rule of a rule set is invalid; carries where, for editors that highlight the line."""

    def __init__(
        self, message: str, *, index: int | None = None, rule_id: str = "", parameter: str = ""
    ) -> None:
        super().__init__(message)
        self.index = index
        self.rule_id = rule_id
        self.parameter = parameter


@dataclass(frozen=True)
class _Shape(Param):
    """An input shape: a list of 1 to 4 positive integers (batch axis excluded)."""

    @property
    def expected(self) -> str:
        return "a list of 1 to 4 positive integers, e.g. [32, 32, 3]"

    def check(self, value: Any) -> list[int]:
        if isinstance(value, str) or not isinstance(value, Sequence) or not 1 <= len(value) <= 4:
            raise ParamTypeError(self.expected)
        try:
            return [int(Int(minimum=1).check(v) or 0) for v in value]
        except ParamTypeError:
            raise ParamTypeError(self.expected) from None


@dataclass(frozen=True)
class _Text(Param):
    single_line: bool = True

    @property
    def expected(self) -> str:
        return "a single-line string" if self.single_line else "a string (Markdown)"

    def check(self, value: Any) -> str:
        if not isinstance(value, str) or (self.single_line and ("\n" in value.strip())):
            raise ParamTypeError(self.expected)
        return value.strip() if self.single_line else value


@dataclass(frozen=True)
class _Slug(Param):
    @property
    def expected(self) -> str:
        return "a slug of lowercase letters, digits and hyphens, e.g. 'cifar10-separable'"

    def check(self, value: Any) -> str:
        import re

        if not isinstance(value, str) or not re.fullmatch(r"[a-z0-9]+(?:-[a-z0-9]+)*", value):
            raise ParamTypeError(self.expected)
        return value


@dataclass(frozen=True)
class _Mapping(Param):
    @property
    def expected(self) -> str:
        return "a mapping (training configuration keys and values)"

    def check(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise ParamTypeError(self.expected)
        return dict(value)


# Assignment metadata a rule set may carry (presets carry all of it): it seeds an assignment.
METADATA: dict[str, Param] = {
    "slug": _Slug(doc="identifier of the assignment or preset"),
    "title": _Text(doc="title shown to students"),
    "description": _Text(single_line=False, doc="Markdown shown on the assignment page"),
    "dataset": _Text(doc="dataset name in grader.datasets, e.g. 'cifar10'"),
    "input_shape": _Shape(doc="model input shape without the batch axis"),
    "num_classes": Int(minimum=2, doc="number of classes of the dataset"),
    "mode": Choice(choices=("train", "evaluate"), doc="train submitted models, or evaluate"),
    "max_epochs": Int(minimum=1, doc="epochs the grader trains at most"),
    "time_limit_seconds": Int(minimum=1, doc="wall-clock limit of one grading"),
    "min_batch_size": Int(
        minimum=1,
        doc="smallest batch size a training may declare: with `max_epochs` it bounds the "
        "optimizer steps (the training budget), refused at the static check",
    ),
    "training": _Mapping(doc="default training configuration"),
    "allow_frozen_layers": Bool(
        doc="whether layers may be frozen (trainable=False); when false (the default), every "
        "layer of a model the grader trains must train (rule `all_layers_trainable`)"
    ),
}
PRESET_REQUIRED = tuple(METADATA)


@dataclass(frozen=True)
class RuleSet:
    """A validated rule set, with the assignment metadata it carries (possibly none)."""

    rules: tuple[RuleSpec, ...]
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __getattr__(self, key: str) -> Any:
        # Metadata as attributes (ruleset.slug, ruleset.input_shape): None when not given.
        if key in METADATA:
            return self.metadata.get(key)
        raise AttributeError(key)

    @property
    def total_points(self) -> float:
        """The points of all rules together."""
        return sum(r.points for r in self.rules)

    def rule(self, name: str) -> RuleSpec:
        """The rule with this name (the id when the rule set gave no name)."""
        for spec in self.rules:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form; `load_ruleset(ruleset.to_dict())` gives an equal rule set."""
        data = {key: self.metadata[key] for key in METADATA if key in self.metadata}
        data["rules"] = [spec.to_dict() for spec in self.rules]
        return data

    def to_yaml(self) -> str:
        """YAML text that loads back to an equal rule set (metadata first, then the rules)."""
        return yaml.dump(
            self.to_dict(),
            Dumper=_Dumper,
            sort_keys=False,
            allow_unicode=True,
            default_flow_style=None,
            width=100,
        )

    def to_json(self) -> str:
        """JSON text that loads back to an equal rule set."""
        return json.dumps(self.to_dict(), indent=2)


class _Dumper(yaml.SafeDumper):
    """SafeDumper writing multi-line strings (Markdown descriptions) as literal blocks."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader refusing duplicate keys, which PyYAML would silently let the last one win."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            mark = key_node.start_mark
            raise RuleSetError(
                f"The rule set repeats the key `{key}` (line {mark.line + 1}, column "
                f"{mark.column + 1}). Expected each key once per mapping."
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_text(text: str | bytes) -> Any:
    """Parse YAML (JSON is accepted too) into plain Python data, refusing duplicate keys."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RuleSetError(f"The rule set is not UTF-8 text: {exc}.") from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise RuleSetError(
            f"The rule set is not valid YAML or JSON{where}: {exc.problem}."
        ) from None
    except yaml.YAMLError as exc:
        raise RuleSetError(f"The rule set is not valid YAML or JSON: {exc}.") from None


def load_ruleset(source: str | bytes | Mapping[str, Any] | RuleSet) -> RuleSet:
    """Parse and validate a rule set.

    Args:
        source: YAML or JSON text, or an already parsed mapping (or a `RuleSet`, returned as is).

    Returns:
        The validated `RuleSet`, every rule's defaults filled in.

    Raises:
        RuleSetError: the text does not parse, or a rule or metadata key is invalid; the message
            names the rule (``rules[2] (`max_params`)``), the parameter, what was expected and
            what was received.
    """
    if isinstance(source, RuleSet):
        return source
    data = parse_text(source) if isinstance(source, str | bytes) else source
    if not isinstance(data, Mapping):
        raise RuleSetError(
            f"A rule set must be a mapping with a `rules` list. Received: {describe(data)}."
        )
    unknown = [k for k in data if k != "rules" and k not in METADATA]
    if unknown:
        raise InvalidRule(
            f"The rule set has an unknown key `{unknown[0]}`."
            f"{_suggest(str(unknown[0]), [*METADATA, 'rules'])} "
            f"Expected `rules` and optionally: {', '.join(METADATA)}.",
            parameter=str(unknown[0]),
        )
    if "rules" not in data:
        raise RuleSetError("The rule set has no `rules` key. Expected a list of rules.")
    rules = data["rules"]
    if isinstance(rules, str) or not isinstance(rules, Sequence):
        raise RuleSetError(f"`rules` must be a list of rules. Received: {describe(rules)}.")

    metadata: dict[str, Any] = {}
    for key, param in METADATA.items():
        if key in data:
            try:
                metadata[key] = param.check(data[key])
            except ParamTypeError as exc:
                raise InvalidRule(
                    f"The rule set's `{key}` is {describe(data[key])}. Expected {exc.expected}.",
                    parameter=key,
                ) from None

    specs = tuple(_load_rule(index, raw) for index, raw in enumerate(rules))
    _check_names(specs)
    _check_consistency(specs, metadata)
    return RuleSet(rules=specs, metadata=metadata)


def _load_rule(index: int, raw: Any) -> RuleSpec:
    where = f"rules[{index}]"
    if not isinstance(raw, Mapping):
        raise InvalidRule(
            f"{where} must be a mapping with an `id`. Received: {describe(raw)}.", index=index
        )
    rule_id = raw.get("id")
    if not isinstance(rule_id, str) or not rule_id:
        raise InvalidRule(
            f"{where} has no `id`. Expected one of: {', '.join(sorted(RULES))}.", index=index
        )
    if rule_id not in RULES:
        raise InvalidRule(
            f"{where} has an unknown id `{rule_id}`.{_suggest(rule_id, RULES)} "
            f"Expected one of: {', '.join(sorted(RULES))}.",
            index=index,
            rule_id=rule_id,
        )
    where = f"{where} (`{rule_id}`)"
    definition = RULES[rule_id]
    allowed = list(definition.params) + list(COMMON_KEYS)
    for key in raw:
        if key not in allowed:
            raise InvalidRule(
                f"{where} has an unknown parameter `{key}`.{_suggest(str(key), allowed)} "
                f"Expected parameters: {', '.join(definition.params) or 'none'} "
                "(and the common `name`, `points`).",
                index=index,
                rule_id=rule_id,
                parameter=str(key),
            )
    params: dict[str, Any] = {}
    for key, param in definition.params.items():
        if key not in raw:
            if param.required:
                raise InvalidRule(
                    f"{where} is missing the required parameter `{key}`. "
                    f"Expected {param.expected}.",
                    index=index,
                    rule_id=rule_id,
                    parameter=key,
                )
            params[key] = param.default
            continue
        params[key] = _check(param, raw[key], where, key, index, rule_id)

    points = _check(_POINTS_PARAM, raw.get("points", _POINTS), where, "points", index, rule_id)
    name = raw.get("name")
    if name is not None:
        name = _check(_NAME_PARAM, name, where, "name", index, rule_id)
    return RuleSpec(
        id=rule_id,
        params=params,
        points=points,
        name=name or rule_id,
        index=index,
        named=name is not None,
    )


class _NumberPoints(Param):
    @property
    def expected(self) -> str:
        return "a number >= 0"

    def check(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
            raise ParamTypeError(self.expected)
        return float(value)


_POINTS_PARAM = _NumberPoints()
_NAME_PARAM = _Text()


def _check(param: Param, value: Any, where: str, key: str, index: int, rule_id: str) -> Any:
    try:
        return param.check(value)
    except ParamTypeError as exc:
        raise InvalidRule(
            f"{where} has `{key}` = {describe(value)}. Expected {exc.expected}.",
            index=index,
            rule_id=rule_id,
            parameter=key,
        ) from None


def _check_names(specs: Sequence[RuleSpec]) -> None:
    """Repeated ids need distinct names: results and scores are keyed by name."""
    seen: dict[str, RuleSpec] = {}
    for spec in specs:
        if spec.name in seen:
            first = seen[spec.name]
            if spec.named:
                problem = f"repeats the name `{spec.name}` of rules[{first.index}]"
            else:
                problem = f"repeats the id of rules[{first.index}]"
            raise InvalidRule(
                f"rules[{spec.index}] (`{spec.id}`) {problem}. Expected a distinct `name` on "
                "each rule that shares an id.",
                index=spec.index,
                rule_id=spec.id,
                parameter="name",
            )
        seen[spec.name] = spec


def _check_consistency(specs: Sequence[RuleSpec], metadata: Mapping[str, Any]) -> None:
    """Cross-field checks: a declared training default may not break the rule set's own rules."""
    training = metadata.get("training") or {}
    epochs = training.get("epochs")
    for spec in specs:
        if spec.id == "max_epochs" and isinstance(epochs, int) and epochs > spec.params["limit"]:
            raise InvalidRule(
                f"The default training config trains {epochs} epochs but rules[{spec.index}] "
                f"(`max_epochs`) allows at most {spec.params['limit']}. Expected `training."
                "epochs` within the limit.",
                index=spec.index,
                rule_id=spec.id,
                parameter="limit",
            )
    if metadata.get("allow_frozen_layers") is True:
        for spec in specs:
            if spec.id == "all_layers_trainable":
                raise InvalidRule(
                    f"The rule set allows frozen layers (`allow_frozen_layers: true`) but "
                    f"rules[{spec.index}] (`all_layers_trainable`) requires every layer to "
                    "train. Expected one of the two.",
                    index=spec.index,
                    rule_id=spec.id,
                    parameter="allow_frozen_layers",
                )
    batch = training.get("batch_size")
    min_batch = metadata.get("min_batch_size")
    if (
        isinstance(batch, int)
        and not isinstance(batch, bool)
        and isinstance(min_batch, int)
        and batch < min_batch
    ):
        raise InvalidRule(
            f"The default training config uses batches of {batch}. Expected at least "
            f"`min_batch_size` = {min_batch}.",
            parameter="training",
        )
    max_epochs = metadata.get("max_epochs")
    if isinstance(epochs, int) and isinstance(max_epochs, int) and epochs > max_epochs:
        raise InvalidRule(
            f"The default training config trains {epochs} epochs. Expected at most "
            f"`max_epochs` = {max_epochs}.",
            parameter="training",
        )


def _suggest(word: str, options: Any) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" Did you mean `{close[0]}`?" if close else ""


__all__ = [
    "METADATA",
    "PRESET_REQUIRED",
    "REQUIRED",
    "InvalidRule",
    "RuleSet",
    "RuleSpec",
    "load_ruleset",
    "parse_text",
]
