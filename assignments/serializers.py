"""API representations. Exact numbers (no rounding, no units): clients format them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cached_property

from django.conf import settings
from django.utils import timezone
from rest_framework import serializers

from assignments.models import Assignment, EpochMetric, Submission
from assignments.presentation import (
    describe_assignment_rules,
    late_penalty,
    log_tail,
    shown_message,
    visible_checks,
)


class ErrorBodySerializer(serializers.Serializer):
    kind = serializers.CharField()
    message = serializers.CharField()


class ErrorSerializer(serializers.Serializer):
    """Every error answer: `{"error": {"kind", "message"}}` (and `existing` for duplicates)."""

    error = ErrorBodySerializer()


class AssignmentSerializer(serializers.ModelSerializer):
    course = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    max_upload_bytes = serializers.SerializerMethodField()

    class Meta:
        model = Assignment
        fields = [
            "slug",
            "title",
            "course",
            "dataset",
            "mode",
            "deadline",
            "late_policy",
            "late_penalty",
            "daily_quota",
            "max_waiting_per_student",
            "leaderboard_policy",
            "rules_version",
            "max_epochs",
            "time_limit_seconds",
            "max_upload_bytes",
        ]

    def get_max_upload_bytes(self, obj: Assignment) -> int:
        return settings.GRADER_MAX_UPLOAD_BYTES


class AssignmentDetailSerializer(AssignmentSerializer):
    """One assignment, with what the requesting student has left today and the rules."""

    submissions_left_today = serializers.SerializerMethodField()
    rules = serializers.SerializerMethodField()

    class Meta(AssignmentSerializer.Meta):
        fields = [*AssignmentSerializer.Meta.fields, "submissions_left_today", "rules"]

    def get_submissions_left_today(self, obj: Assignment) -> int:
        from assignments.services.submissions import submissions_left_today

        return submissions_left_today(assignment=obj, student_id=self.context["request"].user.pk)

    def get_rules(self, obj: Assignment) -> list[dict]:
        return describe_assignment_rules(
            obj.rules_yaml, trains=obj.mode != "evaluate", dataset=obj.dataset
        )


class EpochSerializer(serializers.ModelSerializer):
    class Meta:
        model = EpochMetric
        fields = [
            "epoch",
            "loss",
            "accuracy",
            "val_loss",
            "val_accuracy",
            "learning_rate",
            "seconds",
        ]


@dataclass(frozen=True)
class _StandIn:
    pk: int


def _iso_datetime(value: dt.datetime | None, tz: dt.tzinfo | None) -> str | None:
    """What `serializers.DateTimeField` writes (ISO 8601 in the current time zone, UTC as
    `Z`), without its per-value settings lookups: rows go out by the hundred."""
    if value is None:
        return None
    if tz is not None:
        value = value.astimezone(tz) if timezone.is_aware(value) else timezone.make_aware(value, tz)
    elif timezone.is_aware(value):
        value = timezone.make_naive(value, dt.UTC)
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


class SubmissionListSerializer(serializers.ModelSerializer):
    """A row of a submission list (no log, no per-layer data)."""

    assignment = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    student = serializers.CharField(source="student.username", read_only=True)
    # The file format; the JSON key (and the schema's `KindEnum`) keep their first name.
    kind = serializers.ChoiceField(source="file_format", choices=Submission.FileFormat.choices)
    passed = serializers.SerializerMethodField()
    accuracy = serializers.SerializerMethodField()
    params_total = serializers.SerializerMethodField()
    url = serializers.HyperlinkedIdentityField(view_name="api-submission-detail")

    class Meta:
        model = Submission
        fields = [
            "id",
            "url",
            "assignment",
            "student",
            "original_name",
            "kind",
            "sha256",
            "size_bytes",
            "status",
            "reason",
            "is_late",
            "created_at",
            "finished_at",
            "passed",
            "accuracy",
            "params_total",
        ]

    def to_representation(self, instance) -> dict:
        # A page of 50 rows: DRF's field-by-field walk (and a `reverse()` per row for `url`)
        # cost more than reading the rows. The list's own fields are built directly, with the
        # same values DRF gives (tests compare both); fields a subclass adds go through DRF.
        tz = self._timezone
        slug, username, passed, accuracy, params_total = self._related(instance)
        data = {
            "id": instance.pk,
            "url": self._url_pattern.format(instance.pk),
            "assignment": slug,
            "student": username,
            "original_name": instance.original_name,
            "kind": instance.file_format,
            "sha256": instance.sha256,
            "size_bytes": instance.size_bytes,
            "status": instance.status,
            "reason": instance.reason,
            "is_late": instance.is_late,
            "created_at": _iso_datetime(instance.created_at, tz),
            "finished_at": _iso_datetime(instance.finished_at, tz),
            "passed": passed,
            "accuracy": accuracy,
            "params_total": params_total,
        }
        for field in self._extra_fields:
            value = field.get_attribute(instance)
            data[field.field_name] = None if value is None else field.to_representation(value)
        return data

    @cached_property
    def _timezone(self) -> dt.tzinfo | None:
        return self.fields["created_at"].default_timezone()

    @cached_property
    def _url_pattern(self) -> str:
        # The detail URL of a stand-in whose id is a marker, as a format string: one
        # `reverse()` per answer instead of one per row.
        marker = 9_876_543_210
        url = self.fields["url"].to_representation(_StandIn(pk=marker))
        return url.replace(str(marker), "{}")

    @cached_property
    def _extra_fields(self) -> list:
        own = set(SubmissionListSerializer.Meta.fields)
        return [f for f in self._readable_fields if f.field_name not in own]

    def _related(self, instance) -> tuple:
        """The assignment's slug, the student's name and the result's verdict, accuracy and
        parameters: annotations when the list's selector gave them, else the related rows."""
        if hasattr(instance, "student_username"):  # selectors.API_ROW_ANNOTATIONS
            return (
                instance.assignment_slug,
                instance.student_username,
                instance.result_passed,
                instance.result_accuracy,
                instance.result_params_total,
            )
        result = self._result(instance)
        return (
            instance.assignment.slug,
            instance.student.username,
            result.passed if result else None,
            result.accuracy if result else None,
            result.params_total if result else None,
        )

    def _result(self, obj):
        return getattr(obj, "result", None)

    def get_passed(self, obj) -> bool | None:
        result = self._result(obj)
        return result.passed if result else None

    def get_accuracy(self, obj) -> float | None:
        result = self._result(obj)
        return result.accuracy if result else None

    def get_params_total(self, obj) -> int | None:
        result = self._result(obj)
        return result.params_total if result else None


class ResultSerializer(serializers.Serializer):
    rules_version = serializers.IntegerField()
    passed = serializers.BooleanField(allow_null=True)
    rules = serializers.JSONField()
    accuracy = serializers.FloatField(allow_null=True)
    loss = serializers.FloatField(allow_null=True)
    per_class_accuracy = serializers.JSONField(allow_null=True)
    confusion_matrix = serializers.JSONField(allow_null=True)
    params_total = serializers.IntegerField(allow_null=True)
    params_trainable = serializers.IntegerField(allow_null=True)
    epochs_run = serializers.IntegerField(allow_null=True)
    training_seconds = serializers.FloatField(allow_null=True)
    score = serializers.FloatField(allow_null=True)
    final_score = serializers.FloatField(allow_null=True)
    score_override = serializers.FloatField(allow_null=True)
    checks = serializers.JSONField()


class SubmissionDetailSerializer(SubmissionListSerializer):
    """Stage, reason, timestamps, queue position, rule results, metrics, accuracy."""

    message = serializers.SerializerMethodField(
        help_text="What happened, in words: a failure's reason, a cancellation, or why the "
        "submission waits. An infrastructure error's details are for the course's instructors."
    )
    queue_position = serializers.SerializerMethodField()
    epochs = EpochSerializer(many=True, read_only=True)
    result = serializers.SerializerMethodField()
    log_tail = serializers.SerializerMethodField()
    late_penalty = serializers.SerializerMethodField(
        help_text="Fraction of the computed score removed because the submission is late: the "
        "assignment's penalty under the `penalty` policy, 0 when late submissions are accepted "
        "as is, null when on time."
    )

    class Meta(SubmissionListSerializer.Meta):
        fields = [
            *SubmissionListSerializer.Meta.fields,
            "message",
            "queued_at",
            "building_at",
            "checking_at",
            "training_at",
            "evaluating_at",
            "queue_position",
            "epochs",
            "result",
            "log_tail",
            "late_penalty",
        ]

    def _teaches(self, obj) -> bool:
        from assignments.permissions import is_instructor

        request = self.context.get("request")
        return request is not None and is_instructor(request.user, obj.assignment.course_id)

    def get_message(self, obj) -> str:
        return shown_message(obj, teaches=self._teaches(obj))

    def get_queue_position(self, obj) -> int | None:
        from assignments.selectors import queue_position

        return queue_position(obj)

    def get_result(self, obj) -> dict | None:
        from assignments.permissions import is_instructor

        result = self._result(obj)
        if result is None:
            return None
        data = ResultSerializer(result).data
        data["final_score"] = result.final_score
        request = self.context.get("request")
        teaches = request is not None and is_instructor(request.user, obj.assignment.course_id)
        data["checks"] = visible_checks(data["checks"], teaches=teaches)
        return data

    def get_late_penalty(self, obj) -> float | None:
        return late_penalty(obj)

    def get_log_tail(self, obj) -> str:
        return log_tail(obj.log)


class SubmissionCreateSerializer(serializers.Serializer):
    # The upload service refuses an empty file with its name and what was expected.
    file = serializers.FileField(
        help_text="A .py, .ipynb, .json or .keras model file.", allow_empty_file=True
    )


class BatchSerializer(serializers.Serializer):
    file = serializers.FileField(
        help_text="A zip of model files: `manifest.csv` (file,username) or `<username>.<ext>`."
    )


class LeaderboardEntrySerializer(serializers.Serializer):
    rank = serializers.IntegerField()
    name = serializers.CharField()
    is_you = serializers.BooleanField(source="is_viewer")
    submission_id = serializers.IntegerField()
    accuracy = serializers.FloatField()
    params_total = serializers.IntegerField(source="params", allow_null=True)
    submitted_at = serializers.DateTimeField()

    @cached_property
    def _timezone(self) -> dt.tzinfo | None:
        return self.fields["submitted_at"].default_timezone()

    def to_representation(self, instance) -> dict:
        # A whole leaderboard goes out in one answer: building each row directly costs a
        # tenth of DRF's field-by-field walk (the fields above still document the shape).
        return {
            "rank": instance.rank,
            "name": instance.name,
            "is_you": instance.is_viewer,
            "submission_id": instance.submission_id,
            "accuracy": instance.accuracy,
            "params_total": instance.params,
            "submitted_at": _iso_datetime(instance.submitted_at, self._timezone),
        }
