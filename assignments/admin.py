"""Django admin for every model: a back door for staff, with the heavy columns kept read-only.

Grade-affecting edits belong in the instructor pages (they audit); the admin shows the audit
trail read-only so it cannot be rewritten.
"""

from django import forms
from django.contrib import admin

from assignments.models import (
    Assignment,
    AuditEntry,
    Course,
    Enrollment,
    EpochMetric,
    Result,
    Standing,
    Submission,
    WorkerPresence,
)
from assignments.services.assignment_settings import assignment_problems
from assignments.services.courses import EDITABLE_FIELDS, validate_dataset, validate_rules
from grader.errors import GraderError


class EnrollmentInline(admin.TabularInline):
    model = Enrollment
    extra = 0
    raw_id_fields = ["user"]


@admin.register(Course)
class CourseAdmin(admin.ModelAdmin):
    list_display = ["slug", "title", "created_at"]
    search_fields = ["slug", "title"]
    inlines = [EnrollmentInline]


@admin.register(Enrollment)
class EnrollmentAdmin(admin.ModelAdmin):
    list_display = ["user", "course", "role", "display_name", "pseudonym"]
    list_filter = ["role", "course"]
    search_fields = ["user__username", "display_name", "pseudonym"]
    raw_id_fields = ["user"]


class AssignmentAdminForm(forms.ModelForm):
    """The admin's back door gets the services' checks: rules that load, a known dataset, and
    settings the pipeline can run (`assignment_problems`), each error on its field."""

    class Meta:
        model = Assignment
        fields = ["course", "slug", *EDITABLE_FIELDS]

    def clean(self):
        cleaned = super().clean()
        ruleset = None
        if "rules_yaml" in cleaned:
            try:
                ruleset = validate_rules(cleaned["rules_yaml"])
            except GraderError as exc:
                self.add_error("rules_yaml", exc.message)
        if "dataset" in cleaned:
            try:
                validate_dataset(cleaned["dataset"])
            except GraderError as exc:
                self.add_error("dataset", exc.message)
        values = {name: cleaned[name] for name in EDITABLE_FIELDS if name in cleaned}
        for key, messages in assignment_problems(values=values, ruleset=ruleset).items():
            # A rule-set key (`rules.num_classes`) is about the rules' text.
            self.add_error(key if key in self.fields else "rules_yaml", messages)
        return cleaned


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    form = AssignmentAdminForm
    list_display = ["slug", "title", "course", "dataset", "mode", "deadline", "rules_version"]
    list_filter = ["course", "mode", "dataset", "is_published"]
    search_fields = ["slug", "title"]
    readonly_fields = ["rules_version", "created_at", "updated_at"]


class EpochInline(admin.TabularInline):
    model = EpochMetric
    extra = 0
    can_delete = False
    readonly_fields = [
        "epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds",
    ]  # fmt: skip


@admin.register(Submission)
class SubmissionAdmin(admin.ModelAdmin):
    list_display = ["id", "assignment", "student", "status", "reason", "is_late", "created_at"]
    list_filter = ["status", "reason", "assignment__course", "is_late"]
    search_fields = ["student__username", "original_name", "sha256"]
    raw_id_fields = ["student"]
    list_select_related = ["assignment", "student"]
    readonly_fields = [
        "sha256", "size_bytes", "file", "created_at", "queued_at", "building_at", "checking_at",
        "training_at", "evaluating_at", "finished_at", "heartbeat_at", "worker", "attempts",
        "model_config", "training_config", "log",
    ]  # fmt: skip
    inlines = [EpochInline]


@admin.register(Result)
class ResultAdmin(admin.ModelAdmin):
    list_display = ["submission", "passed", "accuracy", "params_total", "score", "score_override"]
    list_filter = ["passed"]
    raw_id_fields = ["submission"]
    list_select_related = ["submission"]
    readonly_fields = ["checks", "rules", "rules_yaml", "created_at", "updated_at"]


@admin.register(Standing)
class StandingAdmin(admin.ModelAdmin):
    """Read-only: database triggers keep these rows (see the model)."""

    list_display = [
        "assignment", "policy", "student", "submission", "accuracy", "params_total", "created_at",
    ]  # fmt: skip
    list_filter = ["assignment", "policy"]
    list_select_related = ["submission", "assignment", "student"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(EpochMetric)
class EpochMetricAdmin(admin.ModelAdmin):
    list_display = ["submission", "epoch", "loss", "accuracy", "val_loss", "val_accuracy"]
    raw_id_fields = ["submission"]


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ["created_at", "actor", "action", "assignment", "submission"]
    list_filter = ["action"]
    list_select_related = ["actor", "assignment", "submission"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # the audit trail is append-only

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(WorkerPresence)
class WorkerPresenceAdmin(admin.ModelAdmin):
    """What workers reported about themselves: read-only (a worker rewrites it every 30 s)."""

    list_display = ["node", "queues", "sandbox", "gpus", "last_seen", "stopped_at"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_add_permission(self, request) -> bool:
        return False
