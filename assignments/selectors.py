"""Reads for pages, the API and exports.

Every selector issues a fixed number of queries whatever the number of submissions:
`select_related` for single rows, window functions for "best per student", aggregates in the
database. `bench/bench_site.py` measures this at 100 and 10,000 submissions.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, F, OuterRef, Q, QuerySet, Subquery, Window
from django.db.models.functions import Coalesce, RowNumber, TruncDate
from django.utils import timezone

from assignments.models import Assignment, Enrollment, EpochMetric, Submission
from assignments.permissions import instructed_course_ids

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


def queue_position(submission: Submission) -> int | None:
    """1-based place among the submissions waiting for the same queue, or None if not waiting.

    A submission waits when it is active and no worker owns it (see `services.grading`): queued
    submissions wait for the preflight queue, trained ones for a GPU. Order is the pipeline's:
    the time it was last touched, then id. One query.
    """
    from assignments.services.grading import STAGE_TASK, next_stage

    if submission.status not in Submission.ACTIVE_STATUSES or submission.worker:
        return None

    def queue_of(status: str, mode: str) -> str:
        return STAGE_TASK[next_stage(status=status, mode=mode)][1]

    mine = submission.heartbeat_at or submission.queued_at or submission.created_at
    queue = queue_of(submission.status, submission.assignment.mode)
    ahead = (
        Submission.objects.filter(status__in=Submission.ACTIVE_STATUSES, worker="")
        .annotate(touched=Coalesce("heartbeat_at", "queued_at", "created_at"))
        .filter(Q(touched__lt=mine) | Q(touched=mine, pk__lt=submission.pk))
        .values_list("status", "assignment__mode")
        .order_by()
    )
    return 1 + sum(1 for status, mode in ahead.iterator() if queue_of(status, mode) == queue)


def _list_queryset() -> QuerySet[Submission]:
    return (
        Submission.objects.select_related("student", "result", "assignment")
        .defer(*HEAVY_SUBMISSION_FIELDS)
        .defer(*HEAVY_RESULT_FIELDS)
    )


def student_submissions(*, assignment: Assignment, student) -> QuerySet[Submission]:
    """A student's submissions to one assignment, newest first."""
    return _list_queryset().filter(assignment=assignment, student=student).order_by("-created_at")


def visible_submissions(*, user, assignment: Assignment) -> QuerySet[Submission]:
    """Every submission for the course's instructors; only their own for students."""
    qs = _list_queryset().filter(assignment=assignment).order_by("-created_at", "-id")
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


@dataclass
class LeaderboardEntry:
    """One ranked row: the submission standing for a student."""

    rank: int
    submission: Submission
    name: str
    is_viewer: bool = False

    @property
    def accuracy(self) -> float | None:
        return self.submission.result.accuracy

    @property
    def params(self) -> int | None:
        return self.submission.result.params_total


def ranking_rule(assignment: Assignment) -> str:
    """The leaderboard rule in plain words, stated on the page."""
    which = (
        "each student's best passing submission"
        if assignment.leaderboard_policy == Assignment.LeaderboardPolicy.BEST
        else "each student's latest passing submission"
    )
    return (
        f"Ranked by test accuracy of {which}; ties go to fewer parameters, then to the earlier "
        "submission. Submissions that fail a rule are not ranked."
    )


def names_hidden(assignment: Assignment, now: dt.datetime | None = None) -> bool:
    """True while names are hidden (pseudonyms shown) before the deadline."""
    if not assignment.hide_names_until_deadline:
        return False
    return assignment.deadline is None or (now or timezone.now()) < assignment.deadline


def chosen_submissions(assignment: Assignment) -> QuerySet[Submission]:
    """Per student, the passing submission that stands for them (best or latest, by policy).

    A window function numbers each student's passing submissions in preference order over
    narrow rows (ids and sort keys only); the full rows of the first of each are then read by
    id. One query, whatever the number of submissions.
    """
    if assignment.leaderboard_policy == Assignment.LeaderboardPolicy.LATEST:
        preference = [F("created_at").desc(), F("id").desc()]
    else:
        preference = [
            F("result__accuracy").desc(),
            F("result__params_total").asc(nulls_last=True),
            F("created_at").asc(),
            F("id").asc(),
        ]
    ranked = (
        Submission.objects.filter(
            assignment=assignment,
            status=Submission.Status.FINISHED,
            result__passed=True,
            result__accuracy__isnull=False,
        )
        .annotate(
            preference=Window(RowNumber(), partition_by=[F("student_id")], order_by=preference)
        )
        .filter(preference=1)
        .values("id")
    )
    return _list_queryset().filter(pk__in=Subquery(ranked))


# What a leaderboard row shows; loading only these keeps a 300-row page cheap to build.
LEADERBOARD_FIELDS = (
    "id",
    "student_id",
    "assignment_id",
    "created_at",
    "result__id",
    "result__accuracy",
    "result__params_total",
)


def leaderboard(
    assignment: Assignment, *, viewer=None, now: dt.datetime | None = None
) -> list[LeaderboardEntry]:
    """The ranked leaderboard of an assignment (one query).

    Names are the course display name, else the pseudonym; only pseudonyms while names are
    hidden before the deadline.
    """
    enrollment = Enrollment.objects.filter(course_id=assignment.course_id, user=OuterRef("student"))
    rows = (
        chosen_submissions(assignment)
        .select_related(None)
        .select_related("result")
        .only(*LEADERBOARD_FIELDS)
        .annotate(
            display_name=Subquery(enrollment.values("display_name")[:1]),
            pseudonym=Subquery(enrollment.values("pseudonym")[:1]),
        )
        .order_by(
            F("result__accuracy").desc(),
            F("result__params_total").asc(nulls_last=True),
            "created_at",
            "id",
        )
    )
    hidden = names_hidden(assignment, now)
    entries = []
    for rank, submission in enumerate(rows, start=1):
        pseudonym = submission.pseudonym or f"Student-{submission.student_id}"
        name = pseudonym if hidden else (submission.display_name or pseudonym)
        entries.append(
            LeaderboardEntry(
                rank=rank,
                submission=submission,
                name=name,
                is_viewer=viewer is not None and submission.student_id == viewer.pk,
            )
        )
    return entries


def effective_score(submission: Submission) -> float | None:
    """The score that counts: the instructor's override if any, else the computed score.

    The computed score already includes the late penalty (the pipeline's finalize step applies
    it), so it is not applied again here.
    """
    result = getattr(submission, "result", None)
    return None if result is None else result.final_score


@dataclass
class GradeTable:
    """Grades: one row per enrolled student, a column per rule."""

    header: list[str]
    rows: list[list[Any]] = field(default_factory=list)


def _latest_per_student(assignment: Assignment) -> QuerySet[Submission]:
    # Window over narrow rows, then the full rows of the latest of each student by id.
    latest = (
        Submission.objects.filter(assignment=assignment)
        .annotate(
            recency=Window(
                RowNumber(),
                partition_by=[F("student_id")],
                order_by=[F("created_at").desc(), F("id").desc()],
            )
        )
        .filter(recency=1)
        .values("id")
    )
    return (
        Submission.objects.select_related("result", "assignment")
        .defer(*HEAVY_SUBMISSION_FIELDS)
        .defer("result__checks", "result__per_class_accuracy", "result__confusion_matrix")
        .filter(pk__in=Subquery(latest))
    )


# The columns the grades export reads: plain values, no model instances (300 students).
GRADE_FIELDS = (
    "id", "student_id", "status", "reason", "is_late", "created_at", "result__id",
    "result__passed", "result__rules", "result__accuracy", "result__params_total",
    "result__score", "result__score_override",
)  # fmt: skip


def grade_table(assignment: Assignment) -> GradeTable:
    """The grades export (three queries).

    Each student's standing submission is the leaderboard's choice when they have a passing
    one, else their latest submission (so failures show which rule failed). The score is the
    override if any, else the computed score (late penalty included by the pipeline).
    """
    students = list(
        Enrollment.objects.filter(course_id=assignment.course_id, role=Enrollment.Role.STUDENT)
        .order_by("user__username")
        .values_list("user_id", "user__username", "display_name")
    )
    chosen_ids = chosen_submissions(assignment).values("id")
    latest_ids = _latest_per_student(assignment).values("id")
    rows = Submission.objects.filter(Q(pk__in=chosen_ids) | Q(pk__in=latest_ids)).values(
        *GRADE_FIELDS
    )
    chosen: dict[int, dict] = {}
    latest: dict[int, dict] = {}
    chosen_set = set(chosen_ids.values_list("id", flat=True))
    for row in rows:
        (chosen if row["id"] in chosen_set else latest)[row["student_id"]] = row
    standing = {sid: chosen.get(sid) or latest[sid] for sid in {*chosen, *latest}}
    rule_ids: list[str] = []
    for row in standing.values():
        for rule in row["result__rules"] or []:
            if _rule_key(rule) not in rule_ids:
                rule_ids.append(_rule_key(rule))
    header = [
        "username",
        "display_name",
        "submission_id",
        "status",
        "reason",
        "passed",
        *[f"rule:{rule_id}" for rule_id in rule_ids],
        "accuracy",
        "params",
        "score",
        "score_overridden",
        "late",
        "submitted_at",
    ]
    table = GradeTable(header=header)
    for user_id, username, display_name in students:
        row = standing.get(user_id)
        if row is None:
            table.rows.append([username, display_name, *[""] * (len(header) - 2)])
            continue
        graded = row["result__id"] is not None
        verdicts = {_rule_key(r): r.get("passed") for r in row["result__rules"] or []}
        override = row["result__score_override"]
        table.rows.append(
            [
                username,
                display_name,
                row["id"],
                row["status"],
                row["reason"],
                _yes_no(row["result__passed"]) if graded else "",
                *[_yes_no(verdicts.get(rule_id)) for rule_id in rule_ids],
                _blank(row["result__accuracy"]),
                _blank(row["result__params_total"]),
                _blank(override if override is not None else row["result__score"]),
                _yes_no(override is not None) if graded else "",
                _yes_no(row["is_late"]),
                row["created_at"].isoformat(),
            ]
        )
    return table


def _yes_no(value: bool | None) -> str:
    if value is None:
        return ""
    return "yes" if value else "no"


def _blank(value: Any) -> Any:
    return "" if value is None else value


@dataclass
class AssignmentStats:
    """Numbers for the instructor's statistics page."""

    accuracies: list[float]
    rule_pass_rates: list[tuple[str, int, int]]  # (rule id, passed, graded)
    per_day: list[tuple[dt.date, int]]
    by_status: dict[str, int]
    students_submitted: int


def assignment_stats(assignment: Assignment) -> AssignmentStats:
    """Accuracy distribution, pass rate per rule, submissions per day, counts by status."""
    graded = Submission.objects.filter(assignment=assignment, result__isnull=False)
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
        Submission.objects.filter(assignment=assignment)
        .annotate(day=TruncDate("created_at"))
        .values_list("day")
        .annotate(n=Count("id"))
        .order_by("day")
    )
    by_status = dict(
        Submission.objects.filter(assignment=assignment)
        .values_list("status")
        .annotate(n=Count("id"))
        .order_by()
    )
    students = (
        Submission.objects.filter(assignment=assignment).values("student_id").distinct().count()
    )
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


def _rule_key(rule: dict) -> str:
    # A rule set may use one rule id twice under different names; the name tells them apart.
    return str(rule.get("name") or rule.get("id"))
