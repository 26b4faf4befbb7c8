"""Assignments and rule sets: validation by grader.rules, version bumps, YAML round trip, audit."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from assignments.models import Assignment, AuditEntry, Result
from assignments.services import courses
from grader.errors import DatasetUnavailable, RuleSetError
from grader.presets import preset_text
from tests.support.site_fixtures import RULES_YAML, make_submission

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("uploads_dir")]


def test_invalid_rules_are_refused_with_the_engines_message(course, instructor):
    with pytest.raises(RuleSetError, match="max_params"):
        courses.create_assignment(
            course=course, actor=instructor, slug="x", title="X",
            rules_yaml="rules:\n  - id: max_params\n    limit: -1\n",
        )  # fmt: skip
    with pytest.raises(RuleSetError):
        courses.create_assignment(
            course=course,
            actor=instructor,
            slug="x",
            title="X",
            rules_yaml="rules:\n  - id: nope\n",
        )
    assert not Assignment.objects.exists()


def test_unknown_dataset_is_refused(course, instructor):
    with pytest.raises(DatasetUnavailable, match="Unknown dataset `imagenet`"):
        courses.create_assignment(
            course=course, actor=instructor, slug="x", title="X", rules_yaml=RULES_YAML,
            dataset="imagenet",
        )  # fmt: skip


def test_changing_rules_bumps_the_version_and_is_audited(assignment, instructor):
    same = RULES_YAML.replace("\n", "  \n")  # only trailing whitespace differs
    courses.update_assignment(assignment=assignment, actor=instructor, rules_yaml=same)
    assignment.refresh_from_db()
    assert assignment.rules_version == 1
    changed = RULES_YAML.replace("limit: 20000", "limit: 30000")
    courses.update_assignment(assignment=assignment, actor=instructor, rules_yaml=changed)
    assignment.refresh_from_db()
    assert assignment.rules_version == 2
    entry = AuditEntry.objects.get(action="rules.changed")
    assert entry.details["previous"] == same and entry.actor == instructor


def test_saving_text_a_form_stripped_is_not_audited_as_a_change(assignment, instructor):
    Assignment.objects.filter(pk=assignment.pk).update(description="Build a small CNN.\n")
    assignment.refresh_from_db()
    # A form posts the description stripped, unchanged otherwise, with a real change elsewhere.
    courses.update_assignment(
        assignment=assignment, actor=instructor, description="Build a small CNN.", daily_quota=7
    )
    entry = AuditEntry.objects.get(action="assignment.updated")
    assert entry.details["fields"] == ["daily_quota"]

    courses.update_assignment(
        assignment=assignment, actor=instructor, description="Build a tiny CNN."
    )
    latest = AuditEntry.objects.filter(action="assignment.updated").latest("id")
    assert latest.details["fields"] == ["description"]


def test_other_settings_do_not_bump_the_rules_version(assignment, instructor):
    courses.update_assignment(assignment=assignment, actor=instructor, daily_quota=9)
    assignment.refresh_from_db()
    assert assignment.daily_quota == 9 and assignment.rules_version == 1


def test_yaml_export_imports_back_to_the_same_assignment(
    assignment, instructor, other_course, other_instructor
):
    assignment.deadline = timezone.now().replace(microsecond=0) + dt.timedelta(days=3)
    assignment.late_policy = Assignment.LatePolicy.PENALTY
    assignment.late_penalty = 0.2
    assignment.save()
    text = courses.export_assignment_yaml(assignment)
    copy = courses.import_assignment_yaml(
        course=other_course,
        actor=other_instructor,
        text=text.replace("slug: hw1", "slug: hw1-copy"),
    )
    for name in courses.EDITABLE_FIELDS:
        if name == "rules_yaml":
            from grader.rules import load_ruleset

            assert load_ruleset(copy.rules_yaml) == load_ruleset(assignment.rules_yaml)
        else:
            assert getattr(copy, name) == getattr(assignment, name), name


def test_import_refuses_a_slug_of_another_course(assignment, other_course, other_instructor):
    text = courses.export_assignment_yaml(assignment)
    with pytest.raises(
        courses.AssignmentInvalid, match="belongs to an assignment of another course"
    ):
        courses.import_assignment_yaml(course=other_course, actor=other_instructor, text=text)


def test_import_refuses_unknown_keys(course, instructor):
    with pytest.raises(courses.AssignmentInvalid, match=r"Unknown keys \['colour'\]"):
        courses.import_assignment_yaml(
            course=course, actor=instructor, text="slug: a\ncolour: red\n"
        )


def test_presets_are_valid_rule_sets_for_assignments(course, instructor):
    created = courses.create_assignment(
        course=course, actor=instructor, slug="sep", title="Sep",
        rules_yaml=preset_text("cifar10-separable"), dataset="cifar10",
    )  # fmt: skip
    assert created.rules_version == 1


def test_override_and_clear_are_audited(assignment, student, instructor):
    result = Result.objects.get(submission=make_submission(assignment, student, accuracy=0.5))
    courses.override_score(result=result, actor=instructor, score=70.0, reason="late enrolment")
    courses.override_score(result=result, actor=instructor, score=None, reason="mistake")
    result.refresh_from_db()
    assert result.score_override is None and result.final_score == result.score
    actions = list(AuditEntry.objects.order_by("created_at", "id").values_list("action", flat=True))
    assert actions == ["score.override", "score.override_cleared"]


@pytest.mark.parametrize("score", [-5.0, 100.5, 950.0])
def test_an_override_stays_on_the_graders_scale(assignment, student, instructor, score):
    result = Result.objects.get(submission=make_submission(assignment, student, accuracy=0.5))
    with pytest.raises(courses.AssignmentInvalid, match="Expected a score from 0 to 100"):
        courses.override_score(result=result, actor=instructor, score=score, reason="typo")
    result.refresh_from_db()
    assert result.score_override is None
    for edge in (0.0, 100.0):
        courses.override_score(result=result, actor=instructor, score=edge, reason="edge")
        result.refresh_from_db()
        assert result.score_override == edge


def test_override_needs_a_reason(assignment, student, instructor):
    result = Result.objects.get(submission=make_submission(assignment, student, accuracy=0.5))
    with pytest.raises(courses.AssignmentInvalid, match="needs a reason"):
        courses.override_score(result=result, actor=instructor, score=70.0, reason="  ")
