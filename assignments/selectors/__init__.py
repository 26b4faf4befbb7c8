"""Reads for pages, the API and exports.

Every selector issues a fixed number of queries whatever the number of submissions:
`select_related` for single rows, only the columns a list shows, a narrow table kept by
triggers for "best per student" (`ranking`), aggregates in the database. `bench/bench_site.py`
measures this at 100 and 10,000 submissions.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, F, Q, QuerySet
from django.db.models.functions import TruncDate

from assignments.models import Assignment, Enrollment, EpochMetric, Submission
from assignments.permissions import instructed_course_ids
from assignments.selectors.queue_order import (  # re-exported: callers use `selectors.<name>`
    queue_place,
    queue_position,
)
from assignments.selectors.standings import (  # re-exported: callers use `selectors.<name>`
    GRADE_FIELDS,
    LEADERBOARD_PAGE_SIZE,
    RANK_ORDER,
    GradeTable,
    LeaderboardEntry,
    LeaderboardPage,
    RankedRow,
    _rule_key,
    course_student_ids,
    grade_table,
    leaderboard,
    leaderboard_page,
    names_hidden,
    ranking,
    ranking_rule,
)

__all__ = [
    "API_ROW_ANNOTATIONS",
    "GRADE_FIELDS",
    "LEADERBOARD_PAGE_SIZE",
    "LIST_FIELDS",
    "RANK_ORDER",
    "GradeTable",
    "LeaderboardEntry",
    "LeaderboardPage",
    "RankedRow",
    "assignment_stats",
    "assignments_for_user",
    "course_student_ids",
    "courses_for_user",
    "effective_score",
    "epochs_of",
    "grade_table",
    "leaderboard",
    "leaderboard_page",
    "names_hidden",
    "queue_place",
    "queue_position",
    "ranking",
    "ranking_rule",
    "recent_audit",
    "student_submissions",
    "submission_detail",
    "submissions_table",
    "visible_submissions",
]

# Large columns that lists never show: leaving them out keeps list pages small and fast.
HEAVY_SUBMISSION_FIELDS = ("log", "model_config", "training_config")
HEAVY_RESULT_FIELDS = (
    "result__checks",
    "result__rules_yaml",
    "result__per_class_accuracy",
    "result__confusion_matrix",
)

SORTS = {
    "newest": ("-created_at", "-id"),
    "oldest": ("created_at", "id"),
    "accuracy": (F("result__accuracy").desc(nulls_last=True), "-created_at"),
    "student": ("student__username", "-created_at"),
    "status": ("status", "-created_at"),
}


def assignments_for_user(user) -> QuerySet[Assignment]:
    """The assignments a user may see: their courses' (published ones only for students)."""
    qs = Assignment.objects.select_related("course").order_by("course__title", "deadline", "title")
    if user.is_superuser:
        return qs
    return qs.filter(
        Q(course__enrollments__user=user, is_published=True)
        | Q(course__enrollments__user=user, course__enrollments__role=Enrollment.Role.INSTRUCTOR)
    ).distinct()


def courses_for_user(user) -> dict[Any, list[Assignment]]:
    """The user's assignments grouped by course, in display order (one query)."""
    grouped: OrderedDict[Any, list[Assignment]] = OrderedDict()
    for assignment in assignments_for_user(user):
        grouped.setdefault(assignment.course, []).append(assignment)
    return grouped


def submission_detail(submission_id: int) -> Submission:
    """One submission with its assignment, course, student and result (one query)."""
    return Submission.objects.select_related("assignment__course", "student", "result").get(
        pk=submission_id
    )


def epochs_of(submission: Submission) -> list[EpochMetric]:
    """The submission's epoch metrics in order."""
    return list(EpochMetric.objects.filter(submission=submission).order_by("epoch"))


# What list pages and the API's submission list show of a submission, its student and its
# result. Reading only these (and no assignment: every row has the same one) keeps a 50-row
# page from building and filling four wide model instances per row. Reading another field of
# such a row costs a query per row: add it here instead.
LIST_FIELDS = (
    "id", "assignment_id", "student_id", "original_name", "file_format", "sha256", "size_bytes",
    "status", "reason", "is_late", "created_at", "finished_at",
    "student__id", "student__username",
    "result__id", "result__submission_id", "result__passed", "result__params_total",
    "result__accuracy", "result__score", "result__score_override",
)  # fmt: skip


def _list_queryset() -> QuerySet[Submission]:
    return Submission.objects.select_related("student", "result").only(*LIST_FIELDS)


def student_submissions(*, assignment: Assignment, student) -> QuerySet[Submission]:
    """A student's submissions to one assignment, newest first."""
    return _list_queryset().filter(assignment=assignment, student=student).order_by("-created_at")


# What the API's submission list shows of a row's assignment, student and result, read as
# annotations on the submission: no three related instances to build per row.
API_ROW_ANNOTATIONS = {
    "assignment_slug": F("assignment__slug"),
    "student_username": F("student__username"),
    "result_passed": F("result__passed"),
    "result_accuracy": F("result__accuracy"),
    "result_params_total": F("result__params_total"),
}


def visible_submissions(*, user, assignment: Assignment) -> QuerySet[Submission]:
    """Every submission for the course's instructors; only their own for students.

    Rows carry `API_ROW_ANNOTATIONS` (what `SubmissionListSerializer` shows of related rows).
    """
    qs = (
        Submission.objects.only(*(f for f in LIST_FIELDS if "__" not in f))
        .annotate(**API_ROW_ANNOTATIONS)
        .filter(assignment=assignment)
        .order_by("-created_at", "-id")
    )
    course_ids = instructed_course_ids(user)
    if course_ids is None or assignment.course_id in course_ids:
        return qs
    return qs.filter(student=user)


def submissions_table(
    *,
    assignment: Assignment,
    status: str = "",
    reason: str = "",
    student: str = "",
    sort: str = "newest",
) -> QuerySet[Submission]:
    """The instructor's submissions table: filtered by status, reason, student; sorted."""
    qs = _list_queryset().filter(assignment=assignment)
    if status:
        qs = qs.filter(status=status)
    if reason:
        qs = qs.filter(reason=reason)
    if student:
        qs = qs.filter(student__username__icontains=student)
    return qs.order_by(*SORTS.get(sort, SORTS["newest"]))


def effective_score(submission: Submission) -> float | None:
    """The score that counts: the instructor's override if any, else the computed score.

    The computed score already includes the late penalty (the pipeline's finalize step applies
    it), so it is not applied again here.
    """
    result = getattr(submission, "result", None)
    return None if result is None else result.final_score


@dataclass
class AssignmentStats:
    """Numbers for the instructor's statistics page."""

    accuracies: list[float]
    rule_pass_rates: list[tuple[str, int, int]]  # (rule id, passed, graded)
    per_day: list[tuple[dt.date, int]]
    by_status: dict[str, int]
    students_submitted: int


def assignment_stats(assignment: Assignment) -> AssignmentStats:
    """Accuracy distribution, pass rate per rule, submissions per day, counts by status.

    Of the course's students' submissions only (`course_student_ids`), as on the leaderboard
    and in the grades: the staff's test submissions would skew every number.
    """
    submissions = Submission.objects.filter(
        assignment=assignment, student_id__in=course_student_ids(assignment)
    )
    graded = submissions.filter(result__isnull=False)
    accuracies = [
        a
        for a in graded.filter(status=Submission.Status.FINISHED).values_list(
            "result__accuracy", flat=True
        )
        if a is not None
    ]
    passed: Counter[str] = Counter()
    seen: Counter[str] = Counter()
    for rules in graded.values_list("result__rules", flat=True):
        for rule in rules or []:
            if rule.get("passed") is None:
                continue  # a rule decided by training that never ran
            seen[_rule_key(rule)] += 1
            passed[_rule_key(rule)] += bool(rule["passed"])
    per_day = list(
        submissions.annotate(day=TruncDate("created_at"))
        .values_list("day")
        .annotate(n=Count("id"))
        .order_by("day")
    )
    by_status = dict(submissions.values_list("status").annotate(n=Count("id")).order_by())
    students = submissions.values("student_id").distinct().count()
    return AssignmentStats(
        accuracies=accuracies,
        rule_pass_rates=[(rule_id, passed[rule_id], seen[rule_id]) for rule_id in seen],
        per_day=per_day,
        by_status=by_status,
        students_submitted=students,
    )


def recent_audit(assignment: Assignment, limit: int = 50):
    """The latest audit entries of an assignment with their actors."""
    return assignment.audit.select_related("actor", "submission").order_by("-created_at")[:limit]
