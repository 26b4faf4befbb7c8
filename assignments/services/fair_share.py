"""Fair share of the workers: the round each grading waits in, and the per-user limit.

Every grading (an upload, a regrade) gets a **fair round** (`Submission.fair_round`) when it
enters the queue, and the dispatcher hands out stages round by round
(`selectors.queue_order`). The rounds follow start-time fair queuing:

- the current round `V` is the lowest round of any unfinished submission (when nothing is
  unfinished: the highest round given so far, so rounds never go back);
- a user's new grading in a course waits in round `max(V, last + 1)`, `last` being the highest
  round of their earlier gradings in that course (cancelled-before-started ones and
  infrastructure errors left out: they took no worker time that was the student's doing).

So one student's ten uploads wait in ten consecutive rounds, while everyone else's first upload
waits in the current round: each of those is graded before the flooding student's second. A
student who was graded a lot while others waited (their `last` ahead of `V`) waits their turn;
nobody is ever starved, since `V` moves on once the lowest round's gradings have ended.

The per-user limit (`Assignment.max_waiting_per_student`, `max_waiting_per_staff`) bounds
how many unfinished submissions one user may hold on an assignment at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.db.models import Max, Min, Q, Value
from django.db.models.functions import Coalesce

from assignments.models import Assignment, Enrollment, Submission
from assignments.services.submission_errors import TooManyWaiting

Status = Submission.Status


def current_round() -> int:
    """`V`: the lowest round among unfinished submissions, else the highest round given."""
    low = Submission.objects.filter(status__in=Submission.ACTIVE_STATUSES).aggregate(
        low=Min(Coalesce("fair_round", Value(0)))
    )["low"]
    if low is not None:
        return int(low)
    high = Submission.objects.aggregate(high=Max("fair_round"))["high"]
    return int(high or 0)


def _counted(course_id: int, user_id: int, exclude_ids: Iterable[int] = ()) -> Any:
    """The user's gradings in the course that count for their next round."""
    return (
        Submission.objects.filter(assignment__course_id=course_id, student_id=user_id)
        .exclude(pk__in=list(exclude_ids))
        .exclude(Q(status=Status.CANCELLED) & Q(building_at__isnull=True))
        .exclude(status=Status.ERROR, reason=Submission.Reason.INFRASTRUCTURE)
    )


def next_round(*, course_id: int, user_id: int, exclude_ids: Iterable[int] = ()) -> int:
    """The round a new grading of `user_id` in `course_id` waits in: `max(V, last + 1)`.

    Args:
        course_id: the course of the assignment.
        user_id: the submitting user (student or staff).
        exclude_ids: submissions left out of `last` (a regraded submission's own old round).
    """
    last = _counted(course_id, user_id, exclude_ids).aggregate(last=Max("fair_round"))["last"]
    now = current_round()
    return now if last is None else max(now, int(last) + 1)


def rounds_for_regrade(submission_ids: Sequence[int]) -> dict[int, int]:
    """Rounds for gradings started again together (`regrade_assignment`): each user's
    submissions, oldest first, in consecutive rounds from their next one, as if uploaded anew.

    Returns:
        Round by submission id.
    """
    rows = (
        Submission.objects.filter(pk__in=list(submission_ids))
        .values_list("pk", "student_id", "assignment__course_id")
        .order_by("created_at", "pk")
    )
    rounds: dict[int, int] = {}
    following: dict[tuple[int, int], int] = {}
    for pk, user_id, course_id in rows:
        key = (course_id, user_id)
        if key not in following:
            following[key] = next_round(
                course_id=course_id, user_id=user_id, exclude_ids=submission_ids
            )
        rounds[pk] = following[key]
        following[key] += 1
    return rounds


def is_staff(*, enrollment: Enrollment | None, user: Any) -> bool:
    """Whether `user` submits as the course's staff (an instructor of it, or a superuser)."""
    return bool(user.is_superuser) or (
        enrollment is not None and enrollment.role == Enrollment.Role.INSTRUCTOR
    )


def waiting_limit(*, assignment: Assignment, staff: bool) -> int:
    """How many unfinished submissions one user may hold on `assignment` at once."""
    return int(assignment.max_waiting_per_staff if staff else assignment.max_waiting_per_student)


def check_waiting_limit(*, assignment: Assignment, user: Any, staff: bool) -> None:
    """Refuse an upload that would give `user` more unfinished submissions than allowed.

    The caller holds the user's enrollment row locked (`create_submission`), so two uploads of
    one user cannot both take the last place.

    Raises:
        TooManyWaiting: with the limit, the user's unfinished submissions and the position of
            their oldest waiting one in the dispatch order.
    """
    from assignments.selectors.queue_order import oldest_waiting_of

    limit = waiting_limit(assignment=assignment, staff=staff)
    unfinished = Submission.objects.filter(
        assignment=assignment, student_id=user.pk, status__in=Submission.ACTIVE_STATUSES
    )
    count = unfinished.count()
    if count < limit:
        return
    who = " for the course's staff" if staff else ""
    message = (
        f"You have {count:,} unfinished submission{'s' if count != 1 else ''} to "
        f"`{assignment.slug}`. Expected at most {limit:,} at once{who}, so that one person's "
        "uploads never hold back the rest of the course. "
    )
    oldest = oldest_waiting_of(assignment=assignment, user_id=user.pk)
    if oldest is None:
        message += (
            "All of them are being graded now: upload again when one is graded, or cancel "
            "one to make room."
        )
        raise TooManyWaiting(message, limit=limit, unfinished=count)
    submission, place = oldest
    message += (
        f"Your oldest waiting submission, #{submission.pk}, is at {place.describe()}. Cancel "
        "one to make room, or upload again when one is graded."
    )
    raise TooManyWaiting(
        message,
        limit=limit,
        unfinished=count,
        oldest_waiting=submission.pk,
        position=place.position,
    )
