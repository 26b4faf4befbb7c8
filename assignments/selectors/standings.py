"""Leaderboards and grades: who stands for each student, and their rank.

The leaderboard reads `Standing`, the narrow table of each student's standing submission per
leaderboard policy that database triggers keep (see the model), in rank order along an index.
The grades pick, per student, the submission that counts for the grade (`grade_table`). Both
cover the course's students only: an instructor's own test submissions are never ranked,
counted or graded. A fixed number of queries whatever the number of submissions;
`bench/bench_site.py` times them at 10,000.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import BigIntegerField, F, FloatField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from assignments.models import Assignment, Enrollment, Standing, Submission


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
        "submission. Submissions that fail a rule, and the course staff's own, are not ranked."
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


# (submission id, student id, accuracy, parameters, submitted at) of one standing submission.
RankedRow = tuple[int, int, float, int | None, dt.datetime]


def course_student_ids(assignment: Assignment) -> QuerySet[Enrollment]:
    """The user ids of the course's students, as a subquery.

    Leaderboard, statistics and grades all count these users only: the course staff may submit
    to try an assignment out, and a user no longer enrolled is no longer the course's student
    (the grades export, one row per enrolled student, has always left both out).
    """
    return Enrollment.objects.filter(
        course_id=assignment.course_id, role=Enrollment.Role.STUDENT
    ).values("user_id")


def _standings(assignment: Assignment):
    return Standing.objects.filter(assignment=assignment, policy=assignment.leaderboard_policy)


def ranking(assignment: Assignment) -> list[RankedRow]:
    """Per student, the passing submission that stands for them (best or latest, by policy),
    in rank order (one query along an index, plain tuples). Failing submissions never stand;
    only the course's students are ranked (`course_student_ids`).
    """
    return list(
        _standings(assignment)
        .filter(student_id__in=course_student_ids(assignment))
        .order_by(*RANK_ORDER)
        .values_list("submission_id", "student_id", "accuracy", "params_total", "created_at")
    )


def public_name(display_name: str, pseudonym: str, *, hidden: bool) -> str:
    """The name a leaderboard shows for a student: their course display name, else their
    pseudonym; the pseudonym only while names are hidden. The profile says the same."""
    return pseudonym if hidden else (display_name or pseudonym)


def _names(
    assignment: Assignment, student_ids: list[int], *, hidden: bool, whole_course: bool = False
) -> dict[int, str]:
    """Leaderboard names: the course display name, else the pseudonym; only pseudonyms while
    names are hidden (one query). An id without an enrollment (never ranked: `ranking` keeps
    the course's students) would show as `Student-<id>`.

    Args:
        whole_course: Read the course's every enrollment instead of those of `student_ids`:
            cheaper for a whole leaderboard than sending hundreds of ids to the database.
    """
    enrollments = Enrollment.objects.filter(course_id=assignment.course_id)
    if not whole_course:
        enrollments = enrollments.filter(user_id__in=student_ids)
    names = {}
    for user_id, display_name, pseudonym in enrollments.values_list(
        "user_id", "display_name", "pseudonym"
    ):
        names[user_id] = public_name(display_name, pseudonym, hidden=hidden)
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
    names = _names(
        assignment,
        [row[1] for row in rows],
        hidden=names_hidden(assignment, now),
        whole_course=True,
    )
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


# The score that counts: the instructor's override if any, else the computed score (the late
# penalty is already in it). The same rule as `Result.final_score` and the instructor's table.
EFFECTIVE_SCORE = Coalesce("result__score_override", "result__score", output_field=FloatField())

# Among submissions with the same effective score, the grade takes the one the leaderboard
# policy would: so for a student whose passing submissions all score alike, the grade and the
# leaderboard name the same submission.
TIE_ORDER = {
    Assignment.LeaderboardPolicy.BEST: (
        F("result__accuracy").desc(nulls_last=True),
        F("result__params_total").asc(nulls_last=True),
        F("created_at").asc(),
        F("id").asc(),
    ),
    Assignment.LeaderboardPolicy.LATEST: (F("created_at").desc(), F("id").desc()),
}


def grade_table(assignment: Assignment) -> GradeTable:
    """The grades export (two queries): one row per student of the course.

    Each student's row is the submission that counts for the grade (README, contracts): the best
    effective score (override, else computed score), so partial credit on a failed submission
    and an instructor's override are never replaced by a later submission that failed to
    build, was cancelled or is still running. Ties follow the leaderboard policy, passing
    submissions first, so when scores tie the row names the leaderboard's submission. A student
    with no scored submission shows their latest one (so it says what happened to it).
    """
    counted = (
        Submission.objects.filter(assignment=assignment, student_id=OuterRef("user_id"))
        .annotate(effective_score=EFFECTIVE_SCORE)
        .filter(effective_score__isnull=False)
        .order_by(
            F("effective_score").desc(),
            F("result__passed").desc(nulls_last=True),
            *TIE_ORDER[Assignment.LeaderboardPolicy(assignment.leaderboard_policy)],
        )
    )
    latest = Submission.objects.filter(
        assignment=assignment, student_id=OuterRef("user_id")
    ).order_by("-created_at", "-id")
    # Per student, their submissions along the (assignment, student) index, in the database;
    # the latest only for a student without a score.
    students = list(
        Enrollment.objects.filter(course_id=assignment.course_id, role=Enrollment.Role.STUDENT)
        .annotate(
            standing=Coalesce(
                Subquery(counted.values("id")[:1]),
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


def _rule_key(rule: dict) -> str:
    # A rule set may use one rule id twice under different names; the name tells them apart.
    return str(rule.get("name") or rule.get("id"))
