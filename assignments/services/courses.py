"""Courses, enrollments, assignments and their rule sets; manual score overrides.

Every change that affects grades leaves an `AuditEntry`: who, what, before and after.
"""

from __future__ import annotations

import enum
from typing import Any

import yaml
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from assignments.models import Assignment, AuditEntry, Course, Enrollment, Result
from assignments.services.assignment_settings import (
    RULES_SETTING_KEYS,
    AssignmentInvalid,
    validate_assignment_settings,
)
from grader.errors import RuleSetError

# Computed scores run from 0 to 100 (`grader.rules.score`); an override stays on that scale.
MAX_SCORE = 100.0

# The assignment fields an instructor edits (and that YAML export/import round-trips).
EDITABLE_FIELDS = (
    "title",
    "description",
    "dataset",
    "mode",
    "rules_yaml",
    "time_limit_seconds",
    "memory_limit_mb",
    "max_epochs",
    "deadline",
    "late_policy",
    "late_penalty",
    "daily_quota",
    "max_waiting_per_student",
    "max_waiting_per_staff",
    "leaderboard_policy",
    "hide_names_until_deadline",
    "stop_on_static_failure",
    "allow_custom_training",
    "is_published",
)


def validate_rules(rules_yaml: str) -> Any:
    """Parse a rule set with `grader.rules`, the single judge of what a valid rule set is.

    Returns:
        The `grader.rules.RuleSet`.

    Raises:
        RuleSetError: the rule set is invalid; the message names the rule and parameter.
    """
    from grader.rules import load_ruleset

    if not rules_yaml.strip():
        raise RuleSetError("The rule set is empty. Expected a YAML mapping with a `rules` list.")
    return load_ruleset(rules_yaml)


def validate_dataset(name: str) -> None:
    """Refuse a dataset the grader does not know (its files may still be missing on a host).

    Raises:
        DatasetUnavailable: no dataset of that name is registered.
    """
    from grader.datasets import get_source

    get_source(name)


def _normalized(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def _audit(*, actor, action: str, assignment=None, submission=None, **details) -> AuditEntry:
    return AuditEntry.objects.create(
        actor=actor, action=action, assignment=assignment, submission=submission, details=details
    )


def _settings_of(assignment: Assignment) -> dict[str, Any]:
    return {name: getattr(assignment, name) for name in EDITABLE_FIELDS}


def _stored_ruleset(assignment: Assignment) -> Any:
    """The stored rule set, or None when it no longer loads (the rules editor says why)."""
    try:
        return validate_rules(assignment.rules_yaml)
    except RuleSetError:
        return None


def _full_clean(assignment: Assignment) -> None:
    try:
        assignment.full_clean()
    except ValidationError as exc:
        parts = [f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items()]
        raise AssignmentInvalid(
            "Invalid assignment settings. " + "; ".join(parts), errors=exc.message_dict
        ) from exc


@transaction.atomic
def create_course(*, slug: str, title: str, description: str = "") -> Course:
    """Create a course."""
    course = Course(slug=slug, title=title, description=description)
    course.full_clean()
    course.save()
    return course


@transaction.atomic
def enroll(
    *, course: Course, user, role: str = Enrollment.Role.STUDENT, display_name: str = ""
) -> Enrollment:
    """Enroll a user in a course, or update their role and display name if already enrolled."""
    enrollment, _ = Enrollment.objects.update_or_create(
        course=course, user=user, defaults={"role": role, "display_name": display_name}
    )
    return enrollment


@transaction.atomic
def create_assignment(*, course: Course, actor, slug: str, **fields: Any) -> Assignment:
    """Create an assignment after validating its rule set and dataset.

    Raises:
        RuleSetError: the rules are invalid.
        AssignmentInvalid: another setting is invalid, or contradicts the rules (the message
            names each key; `errors` holds them by key, see `assignment_settings`).
    """
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise AssignmentInvalid(f"Unknown assignment settings: {sorted(unknown)}.")
    ruleset = validate_rules(fields.get("rules_yaml", ""))
    # A setting the caller left out takes the rule set's value (a preset states them), so the
    # two agree; a setting given explicitly must match it (`assignment_settings`).
    for key in RULES_SETTING_KEYS:
        if key not in fields and ruleset.metadata.get(key) is not None:
            fields[key] = ruleset.metadata[key]
    validate_dataset(fields.get("dataset", "synthetic"))
    assignment = Assignment(course=course, slug=slug, **fields)
    validate_assignment_settings(values=_settings_of(assignment), ruleset=ruleset)
    _full_clean(assignment)
    assignment.save()
    _audit(actor=actor, action="assignment.created", assignment=assignment, slug=slug)
    return assignment


@transaction.atomic
def update_assignment(*, assignment: Assignment, actor, **fields: Any) -> Assignment:
    """Change an assignment's settings; a changed rule set bumps `rules_version`.

    Results keep the version they were graded under, so the pages can tell which verdicts
    predate the change (and the instructor can regrade them).

    Raises:
        RuleSetError: the new rules are invalid.
        AssignmentInvalid: a setting is invalid, or the settings and rules contradict each other.
    """
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise AssignmentInvalid(f"Unknown assignment settings: {sorted(unknown)}.")
    assignment = Assignment.objects.select_for_update().get(pk=assignment.pk)
    before = {name: getattr(assignment, name) for name in fields}
    new_rules = fields.get("rules_yaml")
    rules_changed = new_rules is not None and _normalized(new_rules) != _normalized(
        assignment.rules_yaml
    )
    ruleset = validate_rules(new_rules) if rules_changed else _stored_ruleset(assignment)
    if "dataset" in fields:
        validate_dataset(fields["dataset"])
    for name, value in fields.items():
        setattr(assignment, name, value)
    if rules_changed:
        assignment.rules_version += 1
    # Every setting, changed or not: a new dataset or epoch limit can contradict the stored rules.
    validate_assignment_settings(values=_settings_of(assignment), ruleset=ruleset)
    _full_clean(assignment)
    assignment.save()
    changed = sorted(name for name in fields if _differs(before[name], fields[name]))
    if changed:
        _audit(
            actor=actor,
            action="assignment.updated",
            assignment=assignment,
            fields=changed,
            rules_version=assignment.rules_version,
        )
    if rules_changed:
        _audit(
            actor=actor,
            action="rules.changed",
            assignment=assignment,
            rules_version=assignment.rules_version,
            previous=before["rules_yaml"],
        )
    return assignment


def _differs(before: Any, after: Any) -> bool:
    """Whether a setting really changed: text that differs only in surrounding or trailing
    whitespace (forms strip what they post) is the same text, and not worth an audit entry."""
    if isinstance(before, str) and isinstance(after, str):
        return _normalized(before) != _normalized(after)
    return before != after


def export_assignment_yaml(assignment: Assignment) -> str:
    """The assignment's settings and rule set as one YAML document (re-importable)."""
    data: dict[str, Any] = {"slug": assignment.slug}
    for name in EDITABLE_FIELDS:
        value = getattr(assignment, name)
        if name == "rules_yaml":
            data["rules"] = yaml.safe_load(value) if value.strip() else None
        elif name == "deadline":
            data[name] = value.isoformat() if value else None
        elif isinstance(value, enum.Enum):
            data[name] = value.value  # a TextChoices member on an unsaved or fresh instance
        else:
            data[name] = value
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def parse_assignment_yaml(text: str) -> dict[str, Any]:
    """Read an exported assignment YAML into `create_assignment`/`update_assignment` fields.

    Raises:
        AssignmentInvalid: not YAML, not a mapping, or unknown keys.
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise AssignmentInvalid(f"The file is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise AssignmentInvalid(
            f"Expected a YAML mapping of assignment settings, received {type(data).__name__}."
        )
    allowed = {"slug", "rules", *EDITABLE_FIELDS} - {"rules_yaml"}
    unknown = set(data) - allowed
    if unknown:
        raise AssignmentInvalid(
            f"Unknown keys {sorted(unknown)} in assignment YAML. "
            f"Expected some of {sorted(allowed)}."
        )
    fields = {key: value for key, value in data.items() if key not in {"rules", "slug"}}
    if "rules" in data:
        fields["rules_yaml"] = yaml.safe_dump(data["rules"], sort_keys=False, allow_unicode=True)
    if fields.get("deadline"):
        from django.utils.dateparse import parse_datetime

        deadline = data["deadline"]
        parsed = deadline if hasattr(deadline, "tzinfo") else parse_datetime(str(deadline))
        if parsed is None:
            raise AssignmentInvalid(f"`deadline` {deadline!r} is not an ISO 8601 date and time.")
        if timezone.is_naive(parsed):
            parsed = timezone.make_aware(parsed)
        fields["deadline"] = parsed
    fields["slug"] = data.get("slug")
    return fields


@transaction.atomic
def import_assignment_yaml(*, course: Course, actor, text: str) -> Assignment:
    """Create the assignment a YAML document describes, or update it if its slug exists."""
    fields = parse_assignment_yaml(text)
    slug = fields.pop("slug", None)
    if not slug:
        raise AssignmentInvalid("The assignment YAML has no `slug`.")
    existing = Assignment.objects.filter(slug=slug).first()
    if existing is not None:
        if existing.course_id != course.pk:
            raise AssignmentInvalid(
                f"Slug `{slug}` belongs to an assignment of another course. Choose another slug."
            )
        return update_assignment(assignment=existing, actor=actor, **fields)
    return create_assignment(course=course, actor=actor, slug=slug, **fields)


@transaction.atomic
def override_score(
    *, result: Result, actor, score: float | None, reason: str, share_reason: bool = False
) -> Result:
    """Set (or, with `score=None`, clear) a manual score; the reason is required and audited.

    `share_reason`: the student reads the reason on their submission (else only the course's
    instructors do: a reason may be a note about copying, written for colleagues).

    The score is on the grader's scale, 0 to 100 (a typo such as 950 for 95 would otherwise
    top every ranking and grade export).

    Raises:
        AssignmentInvalid: no reason was given, or the score is not a number from 0 to 100.
    """
    reason = reason.strip()
    if not reason:
        raise AssignmentInvalid("A score override needs a reason. Received an empty reason.")
    if score is not None and not (score == score and abs(score) != float("inf")):
        raise AssignmentInvalid(f"Score {score!r} is not a finite number.")
    if score is not None and not 0 <= score <= MAX_SCORE:
        raise AssignmentInvalid(
            f"Score {score:g} is outside the grader's scale. Expected a score from 0 to "
            f"{MAX_SCORE:g}, like the computed ones."
        )
    result = Result.objects.select_for_update().select_related("submission").get(pk=result.pk)
    previous = result.score_override
    result.score_override = score
    result.override_reason = reason if score is not None else ""
    result.override_reason_shared = bool(share_reason) and score is not None
    result.save(
        update_fields=["score_override", "override_reason", "override_reason_shared", "updated_at"]
    )
    _audit(
        actor=actor,
        action="score.override" if score is not None else "score.override_cleared",
        assignment=result.submission.assignment,
        submission=result.submission,
        previous=previous,
        score=score,
        computed_score=result.score,
        reason=reason,
        shared_with_student=result.override_reason_shared,
    )
    return result


def ensure_user(*, username: str, email: str = "", password: str | None = None):
    """Get or create a user account (used by enrollment imports and tests)."""
    user_model = get_user_model()
    user, created = user_model.objects.get_or_create(username=username, defaults={"email": email})
    if created:
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save()
    return user
