"""The rule-set editor of the assignment page: one row per rule, generated from the registry.

A row's inputs come from its rule's typed parameters (`grader.rules.RULES[id].params`): an
`Int` becomes a number input, a `Bool` a checkbox, a `Choice` a select, `ClassNames` a
comma-separated list, and so on; a parameter type this module does not know falls back to a
one-line YAML value. Nothing here is written per rule, so a rule added to the registry shows up
in the editor with proper inputs.

The grading core stays the single judge of a valid rule set: the editor turns what was typed into
values, asks each parameter's own `check`, then `load_ruleset` for the whole set, and only
rephrases the answers so that they name the row as the page numbers it ("Rule 2 (`max_params`)").

Buttons other than Save (add, remove, move, change a rule, import, preset) post the page, which
comes back rebuilt and unsaved: the editor works without JavaScript.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from django import forms
from django.forms import formset_factory
from django.utils.html import escape
from django.utils.safestring import mark_safe

from grader.errors import GraderError, RuleSetError
from grader.rules import RULES, InvalidRule, RuleSet, load_preset, load_ruleset, parse_text
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
from grader.rules.schema import METADATA

PREFIX = "rules"
TOOLS_PREFIX = "ruleset"
MAX_RULES = 100
MAX_IMPORT_BYTES = 256 * 1024

# Rule-set metadata keys that are also assignment settings: a preset fills the assignment's
# fields with them instead of repeating them in the rule set.
SETTING_KEYS = (
    "slug", "title", "description", "dataset", "mode", "max_epochs", "time_limit_seconds",
)  # fmt: skip

_POINTS = Number(default=1.0, minimum=0.0, doc="points the rule is worth")
_ROW_FIELDS = ("rule", "shown_rule", "name", "points")


# --- one parameter: widget, parsing, display -------------------------------------------------


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


def _show_number(value: Any) -> str:
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
            lambda p: forms.NumberInput(attrs=_number_attrs(p, "1")), _parse_int, _show_number
        ),
    ),
    (
        Number,
        ParamInput(
            lambda p: forms.NumberInput(attrs=_number_attrs(p, "any")),
            _parse_number,
            _show_number,
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
    for kind, spec in PARAM_INPUTS:
        if isinstance(param, kind):
            return spec
    return _YAML_INPUT


def displayed(param: Param, value: Any) -> Any:
    """A parameter value as its input shows it (the default for a new row when `value` is None
    and the parameter has one)."""
    return param_input(param).show(value)


def _where(index: int, rule_id: str) -> str:
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


# --- one rule: a row ---------------------------------------------------------------------------


def code_spans(text: str) -> str:
    """Plain text with `backticked` words as <code> elements, everything else escaped."""
    parts = str(escape(text)).split("`")
    html = "".join(f"<code>{part}</code>" if i % 2 else part for i, part in enumerate(parts))
    return mark_safe(html)  # noqa: S308 - built from escaped text only


def rule_choices() -> list[tuple[str, str]]:
    """Every registered rule id, in registry order (rule families together)."""
    return [(rule_id, rule_id) for rule_id in RULES]


def described_rule_choices() -> list[tuple[str, str]]:
    """Every registered rule id with its one-line summary (for the add-rule picker)."""
    return [(rule_id, f"{rule_id}: {d.summary}") for rule_id, d in RULES.items()]


def new_row(rule_id: str) -> dict[str, Any]:
    """The raw values of a new row for rule `rule_id`: defaults filled in, required ones empty."""
    row: dict[str, Any] = {"rule": rule_id, "shown_rule": rule_id, "name": "", "points": "1"}
    for name, param in RULES[rule_id].params.items():
        row[name] = "" if param.required else displayed(param, param.default)
    return row


def row_of(spec: Any) -> dict[str, Any]:
    """The raw values of a row showing a validated `RuleSpec`."""
    row: dict[str, Any] = {
        "rule": spec.id,
        "shown_rule": spec.id,
        "name": spec.name if spec.named else "",
        "points": _show_number(int(spec.points) if spec.points.is_integer() else spec.points),
    }
    for name, param in RULES[spec.id].params.items():
        row[name] = displayed(param, spec.params.get(name))
    return row


class RuleRowForm(forms.Form):
    """One rule: its id, its own parameters (from the registry), an optional name, points.

    `shown_rule` records which rule's parameter inputs the page showed; when the instructor picks
    another id, the row comes back with the new rule's inputs instead of being saved.
    """

    rule = forms.ChoiceField(
        choices=rule_choices, label="Rule id", widget=forms.Select(attrs={"data-rule-select": ""})
    )
    shown_rule = forms.CharField(required=False, widget=forms.HiddenInput)
    name = forms.CharField(
        required=False,
        max_length=200,
        help_text="Needed only to use the same rule twice.",
        widget=forms.TextInput(attrs={"spellcheck": "false"}),
    )

    def __init__(self, *args: Any, index: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.index = index or 0
        self.rule_id = self._displayed_rule()
        where = _where(self.index, self.rule_id)
        self.fields["rule"].error_messages["invalid_choice"] = (
            f"Rule {self.index + 1}: `%(value)s` is not a rule id. Expected one of: "
            f"{', '.join(RULES)}."
        )
        self.fields["points"] = ParamField(param=_POINTS, name="points", where=where)
        self.param_names: list[str] = []
        if self.rule_id:
            for name, param in RULES[self.rule_id].params.items():
                if name in _ROW_FIELDS:  # the schema forbids it; never let it shadow a field
                    continue
                self.fields[name] = ParamField(param=param, name=name, where=where)
                self.param_names.append(name)

    def _displayed_rule(self) -> str:
        """The rule whose parameter inputs this row holds ("" when unknown)."""
        if self.is_bound:
            shown = self.data.get(self.add_prefix("shown_rule")) or self.data.get(
                self.add_prefix("rule")
            )
        else:
            shown = self.initial.get("shown_rule") or self.initial.get("rule")
        return shown if shown in RULES else ""

    @property
    def definition(self) -> Any:
        """The registry's definition of the row's rule (None when unknown)."""
        return RULES.get(self.rule_id)

    @property
    def summary(self) -> str:
        """The rule's one-line summary as HTML, its `parameter` mentions as code."""
        definition = self.definition
        return code_spans(definition.summary) if definition else ""

    @property
    def changed_rule(self) -> str:
        """The id the instructor picked when it differs from the row shown, else ""."""
        if not self.is_bound:
            return ""
        picked = self.data.get(self.add_prefix("rule"), "")
        return picked if picked in RULES and picked != self.rule_id else ""

    def param_fields(self) -> list[forms.BoundField]:
        """The bound fields of the rule's own parameters, in registry order."""
        return [self[name] for name in self.param_names]

    def raw(self) -> dict[str, Any]:
        """What the row's inputs hold, as typed (for rebuilding the page unsaved)."""
        return {name: self[name].data for name in self.fields}

    def rule_mapping(self) -> dict[str, Any]:
        """The rule as a rule set writes it (valid forms only): id, name, parameters, points."""
        data: dict[str, Any] = {"id": self.rule_id}
        if self.cleaned_data.get("name"):
            data["name"] = self.cleaned_data["name"]
        for name in self.param_names:
            data[name] = self.cleaned_data[name]
        data["points"] = self.cleaned_data["points"]
        return data


class BaseRuleRowFormSet(forms.BaseFormSet):
    """The rows, in rule-set order; every posted row is validated (none counts as blank)."""

    def get_form_kwargs(self, index: int | None) -> dict[str, Any]:
        # A row left as added is still a rule: never let the formset skip it as an empty extra.
        return {"index": index, "empty_permitted": False}


RuleRowFormSet = formset_factory(
    RuleRowForm,
    formset=BaseRuleRowFormSet,
    extra=0,
    max_num=MAX_RULES,
    validate_max=True,
    absolute_max=MAX_RULES,
)


# --- the tools: add, preset, import, metadata ------------------------------------------------


def preset_choices() -> list[tuple[str, str]]:
    """Rule-set presets shipped with the grader (empty choice first)."""
    from grader.presets import list_presets

    return [("", "—"), *[(slug, slug) for slug in list_presets()]]


class RuleSetToolsForm(forms.Form):
    """What travels with the rows: the rule set's other keys, and the add/preset/import inputs."""

    metadata = forms.CharField(
        required=False,
        label="Model and training defaults (YAML)",
        help_text="Other keys of the rule set, e.g. input_shape, num_classes and the default "
        "training configuration (optional).",
        widget=forms.Textarea(attrs={"rows": 6, "class": "code", "spellcheck": "false"}),
    )
    add_rule = forms.ChoiceField(
        required=False, choices=described_rule_choices, label="Rule to add"
    )
    preset = forms.ChoiceField(
        required=False,
        choices=preset_choices,
        help_text="Replaces the rules, and fills the dataset, mode and limits.",
    )
    import_file = forms.FileField(required=False, label="YAML file")
    import_text = forms.CharField(
        required=False,
        label="or paste YAML",
        widget=forms.Textarea(attrs={"rows": 6, "class": "code", "spellcheck": "false"}),
    )


# --- the editor --------------------------------------------------------------------------------


SAVE, EXPORT, ADD, REFRESH, PRESET, IMPORT = "save", "export", "add", "refresh", "preset", "import"
_ROW_ACTION = re.compile(r"^(remove|up|down)-(\d+)$")


def _rules_numbered(message: str) -> str:
    """The grading core's ``rules[2]`` (0-based) as the page's "Rule 3" (1-based)."""

    def one(match: re.Match[str]) -> str:
        word = "Rule" if match.start() == 0 else "rule"
        return f"{word} {int(match.group(1)) + 1}"

    return re.sub(r"rules\[(\d+)\]", one, message)


def _metadata_text(metadata: Mapping[str, Any]) -> str:
    if not metadata:
        return ""
    ordered = {key: metadata[key] for key in METADATA if key in metadata}
    return yaml.safe_dump(
        ordered, sort_keys=False, allow_unicode=True, default_flow_style=None, width=100
    )


@dataclass
class EditorUpdate:
    """What a button other than Save did: the rebuilt editor, and settings to fill in."""

    editor: RuleSetEditor
    settings: dict[str, Any] = field(default_factory=dict)


class RuleSetEditor:
    """The rule rows and their tools, bound to a post or showing a rule set.

    Build it with `RuleSetEditor(request.POST, request.FILES)` for a post, or
    `RuleSetEditor.from_text(assignment.rules_yaml)` to show the stored rules.
    """

    def __init__(
        self,
        data: Mapping[str, Any] | None = None,
        files: Mapping[str, Any] | None = None,
        *,
        rows: Sequence[Mapping[str, Any]] = (),
        tools: Mapping[str, Any] | None = None,
        notices: Iterable[str] = (),
        errors: Iterable[str] = (),
    ) -> None:
        self.is_bound = data is not None
        if data is not None:
            self.rows = RuleRowFormSet(data, prefix=PREFIX)
            self.tools = RuleSetToolsForm(data, files, prefix=TOOLS_PREFIX)
            self.action = str(data.get("action") or SAVE)
        else:
            self.rows = RuleRowFormSet(initial=list(rows), prefix=PREFIX)
            self.tools = RuleSetToolsForm(initial=dict(tools or {}), prefix=TOOLS_PREFIX)
            self.action = ""
        self.notices = list(notices)
        self._errors = list(errors)
        self._ruleset: RuleSet | None = None

    # -- showing a rule set

    @classmethod
    def from_ruleset(cls, ruleset: RuleSet, **kwargs: Any) -> RuleSetEditor:
        """An unbound editor showing every rule of `ruleset` and its other keys."""
        return cls(
            rows=[row_of(spec) for spec in ruleset.rules],
            tools={"metadata": _metadata_text(ruleset.metadata)},
            **kwargs,
        )

    @classmethod
    def from_text(cls, text: str) -> RuleSetEditor:
        """An unbound editor showing a stored rule set.

        A stored rule set that no longer loads is put in the import box with the reason, so that
        nothing of it is lost and Save refuses until it is fixed or cleared.
        """
        if not text.strip():
            return cls()
        try:
            ruleset = load_ruleset(text)
        except GraderError as exc:
            return cls(
                tools={"import_text": text},
                errors=[
                    f"The stored rule set does not load: {_rules_numbered(exc.message)} Fix it "
                    "in the import box and press Import YAML."
                ],
            )
        return cls.from_ruleset(ruleset)

    # -- what the post asks for

    @property
    def pending_action(self) -> str:
        """The action to run: Save runs what is pending first (a picked preset, pasted YAML,
        a row whose rule id changed), so that nothing is saved unseen."""
        if self.action not in (SAVE, EXPORT):
            return self.action
        if self.action == EXPORT:
            return REFRESH if self._rule_changed() else EXPORT
        tools = self.tools
        if tools.is_valid():
            if tools.cleaned_data.get("import_text", "").strip() or tools.cleaned_data.get(
                "import_file"
            ):
                return IMPORT
            if tools.cleaned_data.get("preset"):
                return PRESET
        return REFRESH if self._rule_changed() else SAVE

    def _rule_changed(self) -> bool:
        return self._management_ok() and any(form.changed_rule for form in self.rows.forms)

    def _management_ok(self) -> bool:
        return self.rows.management_form.is_valid()

    def apply(self) -> EditorUpdate:
        """Run a button other than Save or Export: the rebuilt, unsaved editor.

        Raises:
            ValueError: the action is Save or Export (validate and save instead).
        """
        action = self.pending_action
        if action in (SAVE, EXPORT):
            raise ValueError(f"`{action}` is not an editing action.")
        rows = [form.raw() for form in self.rows.forms] if self._management_ok() else []
        tools = {
            "metadata": self.tools["metadata"].data or "",
            "add_rule": self.tools["add_rule"].data or "",
            "import_text": self.tools["import_text"].data or "",
        }
        if action == IMPORT:
            return self._import(rows, tools)
        if action == PRESET:
            return self._preset(rows, tools)
        if action == ADD:
            rule_id = tools["add_rule"] if tools["add_rule"] in RULES else next(iter(RULES))
            if len(rows) >= MAX_RULES:
                return self._rebuilt(rows, tools, errors=[f"At most {MAX_RULES} rules."])
            rows.append(new_row(rule_id))
            return self._rebuilt(
                rows, tools, notices=[f"{_where(len(rows) - 1, rule_id)} added. {_UNSAVED}"]
            )
        if action == REFRESH:
            notices = []
            for index, form in enumerate(self.rows.forms):
                if form.changed_rule:
                    rows[index] = new_row(form.changed_rule) | {
                        "name": rows[index].get("name") or "",
                        "points": rows[index].get("points") or "1",
                    }
                    notices.append(
                        f"{_where(index, form.changed_rule)}: the parameters are the rule's "
                        f"defaults now; fill them in. {_UNSAVED}"
                    )
            return self._rebuilt(rows, tools, notices=notices)
        match = _ROW_ACTION.match(action)
        if match:
            verb, index = match.group(1), int(match.group(2))
            if 0 <= index < len(rows):
                if verb == "remove":
                    gone = rows.pop(index)
                    note = f"{_where(index, str(gone.get('shown_rule') or ''))} removed."
                else:
                    other = index - 1 if verb == "up" else index + 1
                    if not 0 <= other < len(rows):
                        return self._rebuilt(rows, tools)
                    rows[index], rows[other] = rows[other], rows[index]
                    note = f"{_where(other, str(rows[other].get('shown_rule') or ''))} moved."
                return self._rebuilt(rows, tools, notices=[f"{note} {_UNSAVED}"])
        return self._rebuilt(rows, tools)

    def _rebuilt(
        self,
        rows: list[dict[str, Any]],
        tools: dict[str, Any],
        *,
        notices: Iterable[str] = (),
        errors: Iterable[str] = (),
    ) -> EditorUpdate:
        return EditorUpdate(
            RuleSetEditor(rows=rows, tools=tools, notices=notices, errors=errors),
        )

    def _import(self, rows: list[dict[str, Any]], tools: dict[str, Any]) -> EditorUpdate:
        upload = self.tools.cleaned_data.get("import_file") if self.tools.is_valid() else None
        text = tools["import_text"]
        if upload is not None:
            if upload.size > MAX_IMPORT_BYTES:
                return self._rebuilt(
                    rows,
                    tools,
                    errors=[
                        f"File `{upload.name}` is {upload.size:,} bytes. Expected at most "
                        f"{MAX_IMPORT_BYTES:,} bytes."
                    ],
                )
            raw = upload.read()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                return self._rebuilt(
                    rows, tools, errors=[f"File `{upload.name}` is not UTF-8 text."]
                )
        try:
            ruleset = load_ruleset(_rule_set_document(text))
        except GraderError as exc:
            tools["import_text"] = text
            return self._rebuilt(
                rows, tools, errors=[f"Nothing imported: {_rules_numbered(exc.message)}"]
            )
        count = len(ruleset.rules)
        return EditorUpdate(
            RuleSetEditor.from_ruleset(
                ruleset,
                notices=[
                    f"Imported {count:,} rule{'' if count == 1 else 's'}; they replace the rows. "
                    f"{_UNSAVED}"
                ],
            )
        )

    def _preset(self, rows: list[dict[str, Any]], tools: dict[str, Any]) -> EditorUpdate:
        slug = self.tools["preset"].data or ""
        try:
            preset = load_preset(slug)
        except GraderError as exc:
            return self._rebuilt(rows, tools, errors=[exc.message])
        metadata = {k: v for k, v in preset.metadata.items() if k not in SETTING_KEYS}
        settings = {k: preset.metadata[k] for k in SETTING_KEYS if k in preset.metadata}
        settings.pop("slug", None)
        count = len(preset.rules)
        return EditorUpdate(
            RuleSetEditor.from_ruleset(
                RuleSet(rules=preset.rules, metadata=metadata),
                notices=[
                    f"Filled {count:,} rule{'' if count == 1 else 's'} from preset `{slug}`, and "
                    f"the dataset, mode and limits. {_UNSAVED}"
                ],
            ),
            settings=settings,
        )

    # -- validating and saving

    def is_valid(self) -> bool:
        """Every row is valid and the grading core accepts the whole rule set."""
        if not self.is_bound:
            return False
        if self._ruleset is not None:
            return True
        rows_ok = self.rows.is_valid()
        tools_ok = self.tools.is_valid()
        if not (rows_ok and tools_ok):
            return False
        try:
            metadata = self._metadata()
        except RuleSetError as exc:
            self.tools.add_error("metadata", exc.message)
            return False
        document = {**metadata, "rules": [form.rule_mapping() for form in self.rows.forms]}
        try:
            self._ruleset = load_ruleset(document)
        except InvalidRule as exc:
            self._place(exc)
            return False
        except RuleSetError as exc:
            self._errors.append(_rules_numbered(exc.message))
            return False
        return True

    def _metadata(self) -> dict[str, Any]:
        text = self.tools.cleaned_data.get("metadata") or ""
        if not text.strip():
            return {}
        data = parse_text(text)
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise RuleSetError(
                "The model and training defaults must be a YAML mapping (key: value lines). "
                f"Received {type(data).__name__}."
            )
        if "rules" in data:
            raise RuleSetError(
                "The model and training defaults contain `rules`. Expected the rules in the rows "
                "above (use Import YAML to replace them from a file)."
            )
        return data

    def _place(self, exc: InvalidRule) -> None:
        """Put the grading core's error next to the input it is about, else above the rows."""
        message = _rules_numbered(exc.message)
        forms_ = self.rows.forms
        if exc.index is not None and 0 <= exc.index < len(forms_):
            form = forms_[exc.index]
            if exc.parameter in form.fields:
                form.add_error(exc.parameter, message)
                return
        if exc.index is None and exc.parameter:
            self.tools.add_error("metadata", message)
            return
        self._errors.append(message)

    @property
    def ruleset(self) -> RuleSet:
        """The validated rule set (after `is_valid()` returned True)."""
        if self._ruleset is None:
            raise ValueError("The rule set was not validated; call is_valid() first.")
        return self._ruleset

    def rules_yaml(self, current: str = "") -> str:
        """The text to store: `current` itself when it holds the same rule set (so that saving
        an unchanged page keeps the rules version), else the rule set as YAML."""
        ruleset = self.ruleset
        if current.strip():
            try:
                if load_ruleset(current) == ruleset:
                    return current
            except GraderError:
                pass  # the stored text no longer loads: replace it
        return ruleset.to_yaml()

    # -- what the page shows

    @property
    def errors(self) -> list[str]:
        """Every error of the editor, each naming its rule and parameter (for a summary)."""
        found = list(self._errors)
        if self.is_bound:
            found.extend(str(e) for e in self.rows.non_form_errors())
            for form in self.rows.forms:
                for messages in form.errors.values():
                    found.extend(str(m) for m in messages)
            for messages in self.tools.errors.values():
                found.extend(str(m) for m in messages)
        return found


_UNSAVED = "Not saved yet: press Save to keep it."


def _rule_set_document(text: str) -> Any:
    """A rule set from pasted text: a rule-set mapping, a bare list of rules, or a whole
    assignment export (whose `rules` is the rule-set mapping)."""
    if not text.strip():
        raise RuleSetError("The YAML is empty. Expected a mapping with a `rules` list.")
    data = parse_text(text)
    if isinstance(data, list):
        return {"rules": data}
    if isinstance(data, dict) and isinstance(data.get("rules"), dict):
        return data["rules"]
    return data
