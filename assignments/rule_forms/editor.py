"""The editor: the rule rows with their tools, the buttons that rebuild them, and validation.

Buttons other than Save (add, remove, move, change a rule, import, preset) post the page, which
comes back rebuilt and unsaved, so the editor works without JavaScript. Save validates every row,
then asks the grading core (`load_ruleset`) about the whole set; its errors are placed next to
the input they are about.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from django import forms

from assignments.services.assignment_settings import RULES_SETTING_KEYS
from grader.errors import GraderError, RuleSetError
from grader.rules import RULES, InvalidRule, RuleSet, load_preset, load_ruleset, parse_text
from grader.rules.schema import METADATA

from .inputs import rule_label
from .rows import MAX_RULES, RuleRowFormSet, described_rule_choices, new_row, row_of

PREFIX = "rules"
TOOLS_PREFIX = "ruleset"
MAX_IMPORT_BYTES = 256 * 1024

# Rule-set metadata keys that are also assignment settings: a preset fills the assignment's
# fields with them instead of repeating them in the rule set.
SETTING_KEYS = ("slug", "title", "description", *RULES_SETTING_KEYS)


def preset_choices() -> list[tuple[str, str]]:
    """Rule-set presets shipped with the grader (empty choice first)."""
    from grader.presets import list_presets

    return [("", "—"), *[(slug, slug) for slug in list_presets()]]


class RuleSetToolsForm(forms.Form):
    """What travels with the rows: the rule set's other keys, and the add/preset/import inputs."""

    metadata = forms.CharField(
        required=False,
        label="Model and training defaults (YAML)",
        help_text="Other keys of the rule set, e.g. input_shape, num_classes, the default "
        "training configuration, allow_frozen_layers: true (optional).",
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
                rows, tools, notices=[f"{rule_label(len(rows) - 1, rule_id)} added. {_UNSAVED}"]
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
                        f"{rule_label(index, form.changed_rule)}: the parameters are the rule's "
                        f"defaults now; fill them in. {_UNSAVED}"
                    )
            return self._rebuilt(rows, tools, notices=notices)
        match = _ROW_ACTION.match(action)
        if match:
            verb, index = match.group(1), int(match.group(2))
            if 0 <= index < len(rows):
                if verb == "remove":
                    gone = rows.pop(index)
                    note = f"{rule_label(index, str(gone.get('shown_rule') or ''))} removed."
                else:
                    other = index - 1 if verb == "up" else index + 1
                    if not 0 <= other < len(rows):
                        return self._rebuilt(rows, tools)
                    rows[index], rows[other] = rows[other], rows[index]
                    note = f"{rule_label(other, str(rows[other].get('shown_rule') or ''))} moved."
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
        where = f"File `{upload.name}`" if upload is not None else "The pasted YAML"
        size = upload.size if upload is not None else len(text.encode("utf-8"))
        if size > MAX_IMPORT_BYTES:
            return self._rebuilt(
                rows,
                tools,
                errors=[f"{where} is {size:,} bytes. Expected at most {MAX_IMPORT_BYTES:,} bytes."],
            )
        if upload is not None:
            try:
                text = upload.read().decode("utf-8")
            except UnicodeDecodeError:
                return self._rebuilt(rows, tools, errors=[f"{where} is not UTF-8 text."])
        try:
            ruleset = load_ruleset(_rule_set_document(text))
        except GraderError as exc:
            tools["import_text"] = text
            return self._rebuilt(
                rows, tools, errors=[f"Nothing imported: {_rules_numbered(exc.message)}"]
            )
        count = len(ruleset.rules)
        if count > MAX_RULES:
            return self._rebuilt(
                rows,
                tools,
                errors=[
                    f"Nothing imported: {where} has {count:,} rules. Expected at most {MAX_RULES}."
                ],
            )
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
