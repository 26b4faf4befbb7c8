"""One rule of the editor: a row whose parameter inputs come from the rule's definition."""

from __future__ import annotations

from typing import Any

from django import forms
from django.forms import formset_factory
from django.utils.html import escape
from django.utils.safestring import mark_safe

from grader.rules import RULES
from grader.rules.params import Number

from .inputs import ParamField, displayed, rule_label, show_number

MAX_RULES = 100
POINTS = Number(default=1.0, minimum=0.0, doc="points the rule is worth")
ROW_FIELDS = ("rule", "shown_rule", "name", "points")


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
        "points": show_number(int(spec.points) if spec.points.is_integer() else spec.points),
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
        where = rule_label(self.index, self.rule_id)
        self.fields["rule"].error_messages["invalid_choice"] = (
            f"Rule {self.index + 1}: `%(value)s` is not a rule id. Expected one of: "
            f"{', '.join(RULES)}."
        )
        self.fields["name"].error_messages["max_length"] = (
            f"{where}: `name` must be at most %(limit_value)d characters, got %(show_value)d."
        )
        self.fields["points"] = ParamField(param=POINTS, name="points", where=where)
        self.param_names: list[str] = []
        if self.rule_id:
            for name, param in RULES[self.rule_id].params.items():
                if name in ROW_FIELDS:  # the schema forbids it; never let it shadow a field
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
