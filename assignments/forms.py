"""Forms: field validation for pages. Business rules stay in the services they call."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django import forms
from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator

from assignments.models import Assignment, Submission
from assignments.services.assignment_settings import LABELS, assignment_problems
from assignments.services.courses import EDITABLE_FIELDS

if TYPE_CHECKING:
    from assignments.rule_forms import RuleSetEditor

# The settings the assignment form edits; the rule set has its own editor (`rule_forms`).
SETTING_FIELDS = tuple(name for name in EDITABLE_FIELDS if name != "rules_yaml")


class UploadForm(forms.Form):
    """One model file: `.py` or `.ipynb` (defines build_model), `.json` (config) or `.keras`."""

    file = forms.FileField(
        help_text="A .py file or a Jupyter notebook (.ipynb) defining "
        "build_model(input_shape, num_classes), a model .json, or a .keras archive.",
        widget=forms.ClearableFileInput(attrs={"accept": ".py,.ipynb,.json,.keras"}),
        # The upload service refuses an empty file with its name and what was expected.
        allow_empty_file=True,
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        limit = settings.GRADER_MAX_UPLOAD_BYTES
        # Checked before reading the file into memory; the service checks again on the bytes.
        if upload.size > limit:
            raise forms.ValidationError(
                f"File `{upload.name}` is {upload.size:,} bytes. Expected at most {limit:,} bytes."
            )
        return upload


def dataset_choices() -> list[tuple[str, str]]:
    """Registered datasets as form choices, described for people."""
    from grader.datasets import DATASETS

    return [(name, f"{name}: {source.description}") for name, source in sorted(DATASETS.items())]


class AssignmentForm(forms.ModelForm):
    """Create or edit an assignment's settings; its rules come from `rule_forms.RuleSetEditor`."""

    # How the page groups the settings (a field left out of every group is shown last).
    GROUPS = (
        ("Assignment", ("slug", "title", "description", "is_published")),
        ("Grading", ("dataset", "mode", "stop_on_static_failure", "allow_custom_training")),
        ("Limits", ("time_limit_seconds", "memory_limit_mb", "max_epochs")),
        (
            "Deadline and submissions",
            (
                "deadline",
                "late_policy",
                "late_penalty",
                "daily_quota",
                "max_waiting_per_student",
                "max_waiting_per_staff",
            ),
        ),
        ("Leaderboard", ("leaderboard_policy", "hide_names_until_deadline")),
    )

    class Meta:
        model = Assignment
        fields = ["slug", *SETTING_FIELDS]
        widgets = {
            # A datetime-local input shows and sends "2026-12-01T23:59"; any other format
            # would show an empty field, and saving would silently clear the deadline.
            "deadline": forms.DateTimeInput(
                attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"
            ),
            "description": forms.Textarea(attrs={"rows": 8}),
        }
        labels = {
            "time_limit_seconds": "Time limit (seconds)",
            "memory_limit_mb": "Memory limit (MB)",
            "max_epochs": "Epochs at most",
            "daily_quota": "Submissions per student per day",
            "max_waiting_per_student": "Unfinished submissions per student at once",
            "max_waiting_per_staff": "Unfinished test submissions per staff member at once",
        }
        help_texts = {
            "max_waiting_per_student": "Queued or being graded. Past it an upload is refused "
            "until one ends or is cancelled, so that one student's uploads never hold back "
            "the rest of the course (2: one graded, one waiting).",
            "max_waiting_per_staff": "The same for the course's instructors trying the "
            "assignment; their submissions wait in the same fair order as the students'.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["dataset"] = forms.ChoiceField(choices=dataset_choices())
        if self.instance.pk:
            self.fields["slug"].disabled = True
        # The service judges these ranges (`assignment_problems`, in `clean`); the columns' own
        # bounds would answer first with a message that does not say what is allowed.
        for name in LABELS:
            field = self.fields[name]
            field.validators = [
                v
                for v in field.validators
                if not isinstance(v, MinValueValidator | MaxValueValidator)
            ]
            field.widget.attrs.pop("min", None)
            field.widget.attrs.pop("max", None)
        # Left empty (or not posted by an older client), a limit keeps its current value.
        for name in self.OPTIONAL_LIMITS:
            self.fields[name].required = False

    #: Settings that keep their current (or default) value when the form leaves them empty.
    OPTIONAL_LIMITS = ("max_waiting_per_student", "max_waiting_per_staff")

    def clean(self):
        cleaned = super().clean()
        for name in self.OPTIONAL_LIMITS:
            if cleaned.get(name) is None:
                cleaned[name] = getattr(self.instance, name)
        values = {name: cleaned[name] for name in SETTING_FIELDS if name in cleaned}
        for name, messages in assignment_problems(values=values).items():
            self.add_error(name, messages)
        return cleaned

    def groups(self) -> list[tuple[str, list[forms.BoundField]]]:
        """The settings as the page shows them: (title, bound fields) per group."""
        out = []
        placed: set[str] = set()
        for title, names in self.GROUPS:
            present = [name for name in names if name in self.fields]
            placed.update(present)
            out.append((title, [self[name] for name in present]))
        rest = [self[name] for name in self.fields if name not in placed]
        if rest:
            out.append(("Other", rest))
        return out

    def redisplayed(self, updates: dict | None = None) -> AssignmentForm:
        """An unbound copy showing what was typed, with `updates` filled in: a page rebuilt by a
        rules button shows no error before the instructor presses Save."""
        values = {name: self[name].value() for name in self.fields}
        for name, value in (updates or {}).items():
            if name not in values:
                continue
            if name in ("title", "description") and values.get(name):
                continue  # a preset never overwrites what the instructor wrote
            values[name] = value
        return AssignmentForm(initial=values, instance=self.instance if self.instance.pk else None)

    def service_fields(self) -> dict:
        """The cleaned values the services take (slug and rules excluded)."""
        return {name: self.cleaned_data[name] for name in SETTING_FIELDS}

    def add_service_errors(self, errors: dict[str, list[str]], editor: RuleSetEditor) -> None:
        """Put a service's errors by key next to their inputs: a setting's on its field, a
        rule-set key's (``rules.num_classes``) on the rules editor's defaults box."""
        for key, messages in errors.items():
            if key in self.fields:
                self.add_error(key, messages)
            elif key.startswith("rules."):
                editor.tools.add_error("metadata", messages)
            else:
                self.add_error(None, messages)


class AssignmentImportForm(forms.Form):
    """An assignment YAML exported earlier (creates it, or updates the one with its slug)."""

    file = forms.FileField(required=False, help_text="An exported assignment .yaml file.")
    text = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 10}))

    def clean(self):
        cleaned = super().clean()
        upload = cleaned.get("file")
        if upload:
            if upload.size > 256 * 1024:
                raise forms.ValidationError(
                    f"File `{upload.name}` is {upload.size:,} bytes. Expected at most 262,144."
                )
            cleaned["text"] = upload.read().decode("utf-8", errors="replace")
        if not cleaned.get("text", "").strip():
            raise forms.ValidationError("Choose a YAML file or paste its text.")
        return cleaned


class OverrideForm(forms.Form):
    """A manual score (blank clears the override) and the reason, which is required."""

    score = forms.FloatField(required=False)
    reason = forms.CharField(max_length=1000, widget=forms.Textarea(attrs={"rows": 2}))
    share_reason = forms.BooleanField(required=False)


class SubmissionFilterForm(forms.Form):
    """Filters and sorting of the instructor's submissions table."""

    status = forms.ChoiceField(
        required=False, choices=[("", "any status"), *Submission.Status.choices]
    )
    reason = forms.ChoiceField(
        required=False,
        choices=[("", "any reason"), *[c for c in Submission.Reason.choices if c[0]]],
    )
    student = forms.CharField(required=False, max_length=150)
    sort = forms.ChoiceField(
        required=False,
        choices=[
            ("newest", "newest first"),
            ("oldest", "oldest first"),
            ("accuracy", "accuracy"),
            ("student", "student"),
            ("status", "status"),
        ],
    )
