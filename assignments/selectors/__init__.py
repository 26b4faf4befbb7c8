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

from django.core.paginator import Page, Paginator
from django.db.models import BigIntegerField, Count, F, OuterRef, Q, QuerySet, Subquery, Window
from django.db.models.functions import Coalesce, RowNumber, TruncDate
from django.utils import timezone

from assignments.models import Assignment, Enrollment, EpochMetric, RankedSubmission, Submission
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


# What list pages and the API's submission list show of a submission, its student and its
# result. Reading only these (and no assignment: every row has the same one) keeps a 50-row
# page from building and filling four wide model instances per row.
LIST_FIELDS = (
    "id", "assignment_id", "student_id", "file", "original_name", "kind", "sha256",
    "size_bytes", "status", "reason", "message", "is_late", "created_at", "queued_at",
    "building_at", "checking_at", "training_at", "evaluating_at", "finished_at", "worker",
    "heartbeat_at", "attempts",
    "student__id", "student__username",
    "result__id", "result__submission_id", "result__rules_version", "result__passed",
    "result__params_total", "result__params_trainable", "result__accuracy", "result__loss",
    "result__training_seconds", "result__epochs_run", "result__score", "result__score_override",
)  # fmt: skip


def _list_queryset() -> QuerySet[Submission]:
    return Submission.objects.select_related("student", "result").only(*LIST_FIELDS)


def student_submissions(*, assignment: Assignment, student) -> QuerySet[Submission]:
    """A student's submissions to one assignment, newest first."""
    return _list_queryset().filter(assignment=assignment, student=student).order_by("-created_at")


def visible_submissions(*, user, assignment: Assignment) -> QuerySet[Submission]:
    """Every submission for the course's instructors; only their own for students."""
    qs = (
        _list_queryset()
        .select_related("assignment")
        .only(*LIST_FIELDS, "assignment__id", "assignment__slug")  # the API shows the slug
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


@dataclass(slots=True)
class LeaderboardEntry:
    """One ranked row: the submission standing for a student, with its ranking keys."""

    rank: int
    submission_id: int
    student_id: int
    accuracy: float
    params: int | None
    submitted_at: dt.datetime
    name: str = ""
    is_viewer: bool = False


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


# The ranking rule: test accuracy, then fewer parameters, then the earlier submission.
RANK_ORDER = (
    F("accuracy").desc(),
    F("params_total").asc(nulls_last=True),
    F("created_at").asc(),
    F("submission_id").asc(),
)


def _preference(assignment: Assignment) -> tuple:
    """The order in which a student's ranked submissions compete to stand for them."""
    if assignment.leaderboard_policy == Assignment.LeaderboardPolicy.LATEST:
        return (F("created_at").desc(), F("submission_id").desc())
    return RANK_ORDER


# (submission id, student id, accuracy, parameters, submitted at) of one standing submission.
RankedRow = tuple[int, int, float, int | None, dt.datetime]


def ranking(assignment: Assignment) -> list[RankedRow]:
    """Per student, the passing submission that stands for them (best or latest, by policy),
    in rank order (one query, plain tuples).

    Reads `RankedSubmission`, the narrow table of finished passing submissions kept by
    database triggers: a window function numbers each student's rows in preference order
    (along an index made for it) and keeps the first. Failing submissions are never in it.
    """
    return list(
        RankedSubmission.objects.filter(assignment=assignment)
        .annotate(
            preference=Window(
                RowNumber(), partition_by=[F("student_id")], order_by=_preference(assignment)
            )
        )
        .filter(preference=1)
        .order_by(*RANK_ORDER)
        .values_list("submission_id", "student_id", "accuracy", "params_total", "created_at")
    )


def _names(assignment: Assignment, student_ids: list[int], *, hidden: bool) -> dict[int, str]:
    """Leaderboard names: the course display name, else the pseudonym; only pseudonyms while
    names are hidden. A student no longer enrolled shows as `Student-<id>` (one query)."""
    names = {}
    enrollments = Enrollment.objects.filter(
        course_id=assignment.course_id, user_id__in=student_ids
    ).values_list("user_id", "display_name", "pseudonym")
    for user_id, display_name, pseudonym in enrollments:
        names[user_id] = pseudonym if hidden else (display_name or pseudonym)
    return {sid: names.get(sid) or f"Student-{sid}" for sid in student_ids}


def _entries(
    rows: list[RankedRow], first_rank: int, *, viewer_id: int | None, names: dict[int, str]
) -> list[LeaderboardEntry]:
    return [
        LeaderboardEntry(
            rank=rank,
            submission_id=submission_id,
            student_id=student_id,
            accuracy=accuracy,
            params=params,
            submitted_at=submitted_at,
            name=names[student_id],
            is_viewer=student_id == viewer_id,
        )
        for rank, (submission_id, student_id, accuracy, params, submitted_at) in enumerate(
            rows, start=first_rank
        )
    ]


def leaderboard(
    assignment: Assignment, *, viewer=None, now: dt.datetime | None = None
) -> list[LeaderboardEntry]:
    """The whole ranked leaderboard of an assignment (two queries).

    Names are the course display name, else the pseudonym; only pseudonyms while names are
    hidden before the deadline.
    """
    rows = ranking(assignment)
    names = _names(assignment, [row[1] for row in rows], hidden=names_hidden(assignment, now))
    return _entries(rows, 1, viewer_id=getattr(viewer, "pk", None), names=names)


LEADERBOARD_PAGE_SIZE = 50


@dataclass
class LeaderboardPage:
    """One page of the leaderboard, ranks counted over the whole ranking."""

    entries: list[LeaderboardEntry]
    page: Page  # the paginator's page (number, neighbours, count)
    viewer: LeaderboardEntry | None  # the viewer's own row, on this page or not
    viewer_page: int | None  # the page that shows it


def leaderboard_page(
    assignment: Assignment,
    *,
    viewer=None,
    page: Any = None,
    per_page: int = LEADERBOARD_PAGE_SIZE,
    now: dt.datetime | None = None,
) -> LeaderboardPage:
    """A page of the leaderboard and the viewer's own standing (two queries).

    Args:
        page: The page number as the request gave it; out of range or malformed numbers give
            the last or the first page (`Paginator.get_page`).
    """
    rows = ranking(assignment)
    shown = Paginator(rows, per_page).get_page(page)
    first = shown.start_index() if rows else 1
    viewer_id = getattr(viewer, "pk", None)
    position = next((i for i, row in enumerate(rows) if row[1] == viewer_id), None)
    student_ids = [row[1] for row in shown.object_list]
    if position is not None:
        student_ids.append(viewer_id)
    names = _names(assignment, student_ids, hidden=names_hidden(assignment, now))
    entries = _entries(list(shown.object_list), first, viewer_id=viewer_id, names=names)
    mine = None
    if position is not None:
        mine = _entries([rows[position]], position + 1, viewer_id=viewer_id, names=names)[0]
    return LeaderboardPage(
        entries=entries,
        page=shown,
        viewer=mine,
        viewer_page=None if position is None else position // per_page + 1,
    )


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


# The columns the grades export reads: plain values, no model instances (300 students).
GRADE_FIELDS = (
    "id", "status", "reason", "is_late", "created_at", "result__id", "result__passed",
    "result__rules", "result__accuracy", "result__params_total", "result__score",
    "result__score_override",
)  # fmt: skip


def grade_table(assignment: Assignment) -> GradeTable:
    """The grades export (two queries).

    Each student's standing submission is the leaderboard's choice when they have a passing
    one, else their latest submission (so failures show which rule failed). The score is the
    override if any, else the computed score (late penalty included by the pipeline).
    """
    chosen = RankedSubmission.objects.filter(
        assignment=assignment, student_id=OuterRef("user_id")
    ).order_by(*_preference(assignment))
    latest = Submission.objects.filter(
        assignment=assignment, student_id=OuterRef("user_id")
    ).order_by("-created_at", "-id")
    # Per student, two index lookups (at most): whatever the number of submissions.
    students = list(
        Enrollment.objects.filter(course_id=assignment.course_id, role=Enrollment.Role.STUDENT)
        .annotate(
            standing=Coalesce(
                Subquery(chosen.values("submission_id")[:1]),
                Subquery(latest.values("id")[:1]),
                output_field=BigIntegerField(),
            )
        )
        .order_by("user__username")
        .values_list("user__username", "display_name", "standing")
    )
    standing = {
        row["id"]: row
        for row in Submission.objects.filter(pk__in=[s for *_, s in students if s is not None])
        .order_by()
        .values(*GRADE_FIELDS)
    }
    rule_ids: list[str] = []
    for *_, submission_id in students:
        row = standing.get(submission_id)
        for rule in (row and row["result__rules"]) or []:
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
    for username, display_name, submission_id in students:
        row = standing.get(submission_id)
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
