"""Forms: field validation for pages. Business rules stay in the services they call."""

from __future__ import annotations

from django import forms
from django.conf import settings

from assignments.models import Assignment, Submission
from assignments.services.courses import EDITABLE_FIELDS, validate_rules
from grader.errors import GraderError


class UploadForm(forms.Form):
    """One model file: `.py` (defines build_model), `.json` (model config) or `.keras`."""

    file = forms.FileField(
        help_text="A .py file defining build_model(input_shape, num_classes), a model .json, "
        "or a .keras archive.",
        widget=forms.ClearableFileInput(attrs={"accept": ".py,.json,.keras"}),
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


def preset_choices() -> list[tuple[str, str]]:
    """Rule set presets shipped with the grader (empty choice first)."""
    try:
        from grader.presets import list_presets
    except ImportError:
        return [("", "—")]
    return [("", "—"), *[(slug, slug) for slug in list_presets()]]


class AssignmentForm(forms.ModelForm):
    """Create or edit an assignment; the rule set is YAML validated by `grader.rules`."""

    preset = forms.ChoiceField(
        required=False,
        help_text="Start from a preset rule set (replaces the rules below).",
    )

    class Meta:
        model = Assignment
        fields = ["slug", *EDITABLE_FIELDS]
        widgets = {
            # A datetime-local input shows and sends "2026-12-01T23:59"; any other format
            # would show an empty field, and saving would silently clear the deadline.
            "deadline": forms.DateTimeInput(
                attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"
            ),
            "description": forms.Textarea(attrs={"rows": 8}),
            "rules_yaml": forms.Textarea(
                attrs={"rows": 14, "class": "code", "spellcheck": "false"}
            ),
        }
        labels = {"rules_yaml": "Rules (YAML)"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["dataset"] = forms.ChoiceField(choices=dataset_choices())
        self.fields["preset"].choices = preset_choices()
        self.fields["rules_yaml"].required = False
        if self.instance.pk:
            self.fields["slug"].disabled = True

    def clean(self):
        cleaned = super().clean()
        preset = cleaned.get("preset")
        if preset:
            from grader.presets import preset_text

            try:
                cleaned["rules_yaml"] = preset_text(preset)
            except GraderError as exc:
                self.add_error("preset", exc.message)
        rules = cleaned.get("rules_yaml") or ""
        try:
            validate_rules(rules)
        except GraderError as exc:
            self.add_error("rules_yaml" if not preset else "preset", exc.message)
        return cleaned

    def service_fields(self) -> dict:
        """The cleaned values the services take (slug excluded)."""
        return {name: self.cleaned_data[name] for name in EDITABLE_FIELDS}


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
