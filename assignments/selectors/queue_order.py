"""The fair order of the waiting stages: what the dispatcher hands out next, and each position.

One SQL query decides (`order_sql`), on PostgreSQL and SQLite alike; the dispatcher
(`services.dispatcher.claim_next`) takes its first row and a student's queue position is the
place of their submission in the same rows, so the position shown is the order of dispatch.

There is one order per queue: `preflight` (the submissions waiting to be built or checked) and
`gpu` (waiting to be trained or evaluated), so that one student's trainings never delay another
student's evaluation either. Within a queue, the submissions waiting for any of its stages go:

1. by **fair round** (`Submission.fair_round`, given on upload by `services.fair_share`): a
   student's n-th unfinished submission of a course waits in a later round than every other
   student's (n-1)-th, so ten uploads of one student never hold back the first of another;
2. by the **course's turn** within the round: the k-th unfinished submission of a course in a
   round goes after every other course's (k-1)-th (round robin across courses);
3. oldest first (`queued_at`, then id), which within a student is their upload order, and
   lets a grading that is further along (it was uploaded earlier) finish first.

Ranks 2 and 3 count every unfinished submission (running ones too), so claiming a stage never
reorders the others: only an upload, a regrade or an ending grading does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.db.models import DurationField, ExpressionWrapper, F
from django.utils import timezone

from assignments.models import Assignment, Course, Submission

Status = Submission.Status

#: The stages handed out in the fair order (their running status), and their queues.
STAGES = (Status.BUILDING, Status.CHECKING, Status.TRAINING, Status.EVALUATING)
QUEUES = {
    "preflight": (Status.BUILDING, Status.CHECKING),
    "gpu": (Status.TRAINING, Status.EVALUATING),
}
QUEUE_OF = {stage: queue for queue, stages in QUEUES.items() for stage in stages}

#: How each stage reads in a sentence ("waiting to build").
STAGE_VERB = {
    Status.BUILDING: "build",
    Status.CHECKING: "check",
    Status.TRAINING: "train",
    Status.EVALUATING: "evaluate",
}
#: How each queue reads in a sentence ("position 3 of 9 in the build and check queue").
QUEUE_NAME = {"preflight": "build and check queue", "gpu": "training and evaluation queue"}

_TRAIN = Assignment.Mode.TRAIN.value
_EVALUATE = Assignment.Mode.EVALUATE.value

# A submission waiting for a stage has no owner (`worker = ''`) and the status before it.
_WAITING = {
    Status.BUILDING: ("s.status = %s", [Status.QUEUED.value]),
    Status.CHECKING: ("s.status = %s", [Status.BUILDING.value]),
    Status.TRAINING: ("s.status = %s AND a.mode = %s", [Status.CHECKING.value, _TRAIN]),
    Status.EVALUATING: (
        "(s.status = %s OR (s.status = %s AND a.mode = %s))",
        [Status.TRAINING.value, Status.CHECKING.value, _EVALUATE],
    ),
}


def waiting_stage(status: str, mode: str) -> str | None:
    """The stage a submission waiting in `status` waits for, or None (finalize, or not waiting).

    Finalize is not in the fair order: it takes milliseconds and is sent for its submission.
    """
    from assignments.services.grading.transitions import next_stage

    if status not in Submission.ACTIVE_STATUSES:
        return None
    stage = next_stage(status=status, mode=mode)
    return stage if stage in STAGES else None


def order_sql(
    queue: str,
    *,
    max_training_seconds: int | None = None,
    lock: bool = False,
    limit: int | None = None,
) -> tuple[str, list[Any]]:
    """The query listing the submissions waiting for a stage of `queue`, in dispatch order.

    Args:
        queue: `preflight` or `gpu` (`QUEUES`).
        max_training_seconds: only trainings of assignments whose time limit fits (a task
            message whose Celery time limits cannot hold a longer training leaves it to another).
        lock: lock the rows returned, skipping rows another transaction holds (PostgreSQL's
            `FOR UPDATE SKIP LOCKED`; SQLite needs none: a writing transaction there holds the
            whole database from its `BEGIN IMMEDIATE`).
        limit: at most this many rows.

    Returns:
        SQL and its parameters; each row is `(id, status, mode)` (`waiting_stage` of the last
        two is the stage it waits for).
    """
    if queue not in QUEUES:
        raise ValueError(f"Queue `{queue}` is not handed out in the fair order.")
    sub = Submission._meta.db_table
    asg = Assignment._meta.db_table
    active = list(Submission.ACTIVE_STATUSES)
    conditions, params = [], []
    for stage in QUEUES[queue]:
        condition, values = _WAITING[stage]
        values = list(values)
        if stage == Status.TRAINING and max_training_seconds is not None:
            condition += " AND a.time_limit_seconds <= %s"
            values.append(int(max_training_seconds))
        conditions.append(f"({condition})")
        params += values
    since = "COALESCE(s.queued_at, s.created_at)"
    sql = f"""
        WITH active AS (
            SELECT s.id AS id,
                   COALESCE(s.fair_round, 0) AS fair_round,
                   {since} AS since,
                   ROW_NUMBER() OVER (
                       PARTITION BY a.course_id, COALESCE(s.fair_round, 0)
                       ORDER BY {since}, s.id
                   ) AS course_turn
            FROM {sub} s JOIN {asg} a ON a.id = s.assignment_id
            WHERE s.status IN ({", ".join(["%s"] * len(active))})
        )
        SELECT s.id, s.status, a.mode
        FROM {sub} s
        JOIN active o ON o.id = s.id
        JOIN {asg} a ON a.id = s.assignment_id
        WHERE s.worker = '' AND ({" OR ".join(conditions)})
        ORDER BY o.fair_round, o.course_turn, o.since, s.id
    """  # noqa: S608 (table names from the models; every value is a parameter)
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    if lock and connection.features.has_select_for_update_skip_locked:
        sql += " FOR UPDATE OF s SKIP LOCKED"
    return sql, [*active, *params]


def waiting_order(queue: str, *, max_training_seconds: int | None = None) -> list[int]:
    """The ids of the submissions waiting for a stage of `queue`, first to be dispatched first."""
    sql, params = order_sql(queue, max_training_seconds=max_training_seconds)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]


@dataclass(frozen=True)
class QueuePlace:
    """Where a waiting submission stands: its `position` (1-based) among the `waiting`
    submissions of its `queue`, where it waits for `stage`."""

    queue: str
    stage: str
    position: int
    waiting: int

    def describe(self) -> str:
        """ "position 3 of 9 in the build and check queue (waiting to build)"."""
        return (
            f"position {self.position:,} of {self.waiting:,} in the {QUEUE_NAME[self.queue]} "
            f"(waiting to {STAGE_VERB[self.stage]})"
        )


def queue_place(submission: Submission) -> QueuePlace | None:
    """The submission's place in the fair order of the queue of its next stage; None if it is
    not waiting for one (running, ended, or waiting for finalize)."""
    if submission.worker:
        return None
    stage = waiting_stage(submission.status, submission.assignment.mode)
    if stage is None:
        return None
    queue = QUEUE_OF[stage]
    order = waiting_order(queue)
    if submission.pk not in order:
        return None
    return QueuePlace(
        queue=queue, stage=stage, position=order.index(submission.pk) + 1, waiting=len(order)
    )


def queue_position(submission: Submission) -> int | None:
    """1-based place of a waiting submission in the dispatch order of its queue, or None.

    The dispatcher hands a stage of that queue to the submission at position 1 next.
    """
    place = queue_place(submission)
    return place.position if place else None


# --- Queue health (instructors) ---------------------------------------------------------------


@dataclass
class Holder:
    """One user's unfinished submissions in a course: running now, and waiting."""

    username: str
    running: int = 0
    waiting: int = 0
    is_staff: bool = False


@dataclass
class CourseQueue:
    """Who holds a course's share of the queue now, and how long it should take to drain."""

    course: Course
    holders: list[Holder] = field(default_factory=list)
    running: int = 0
    waiting: int = 0
    oldest_waiting_id: int | None = None
    oldest_waiting_seconds: float | None = None
    drain_seconds: float | None = None


def _mean_grading_seconds(assignment_ids: Iterable[int], recent: int = 20) -> dict[int, float]:
    """Mean time from the build's start to the verdict of each assignment's last gradings."""
    means: dict[int, float] = {}
    took = ExpressionWrapper(F("finished_at") - F("building_at"), output_field=DurationField())
    for assignment_id in assignment_ids:
        rows = (
            Submission.objects.filter(
                assignment_id=assignment_id,
                status__in=(Status.FINISHED, Status.FAILED),
                building_at__isnull=False,
                finished_at__isnull=False,
            )
            .order_by("-finished_at")
            .annotate(took=took)
            .values_list("took", flat=True)[:recent]
        )
        durations = [d.total_seconds() for d in rows if d is not None]
        if durations:
            means[assignment_id] = sum(durations) / len(durations)
    return means


def course_queues(course_ids: Sequence[int] | None = None) -> list[CourseQueue]:
    """Per course: each user's running and waiting submissions (most first), the oldest wait,
    and the projected time to drain the course's queue.

    The projection adds, for every unfinished submission, the mean duration of its assignment's
    last gradings (less what a running one already spent) and divides by the stages running
    now across the site (the workers busy, at least one): an estimate, None without history.
    """
    from assignments.models import Enrollment

    now = timezone.now()
    rows = Submission.objects.filter(status__in=Submission.ACTIVE_STATUSES)
    if course_ids is not None:
        rows = rows.filter(assignment__course_id__in=list(course_ids))
    rows = rows.values_list(
        "pk",
        "status",
        "worker",
        "queued_at",
        "created_at",
        "building_at",
        "assignment_id",
        "assignment__course_id",
        "student_id",
        "student__username",
        "student__is_superuser",
    ).order_by("queued_at", "pk")
    items = list(rows)
    running_now = Submission.objects.filter(status__in=Submission.ACTIVE_STATUSES).exclude(
        worker=""
    )
    busy = max(1, running_now.count())
    means = _mean_grading_seconds({item[6] for item in items})
    staff = set(
        Enrollment.objects.filter(role=Enrollment.Role.INSTRUCTOR).values_list(
            "course_id", "user_id"
        )
    )
    courses = {c.pk: c for c in Course.objects.filter(pk__in={item[7] for item in items})}
    queues: dict[int, CourseQueue] = {}
    holders: dict[tuple[int, int], Holder] = {}
    remaining: dict[int, float | None] = {}
    for pk, _status, worker, queued_at, created_at, started, asg, course_id, uid, name, su in items:
        queue = queues.setdefault(course_id, CourseQueue(course=courses[course_id]))
        holder = holders.get((course_id, uid))
        if holder is None:
            holder = Holder(username=name, is_staff=su or (course_id, uid) in staff)
            holders[(course_id, uid)] = holder
            queue.holders.append(holder)
        since = queued_at or created_at
        if worker:
            holder.running += 1
            queue.running += 1
        else:
            holder.waiting += 1
            queue.waiting += 1
            age = (now - since).total_seconds()
            if queue.oldest_waiting_seconds is None or age > queue.oldest_waiting_seconds:
                queue.oldest_waiting_seconds, queue.oldest_waiting_id = age, pk
        mean = means.get(asg)
        so_far = remaining.get(course_id, 0.0)
        if mean is None or so_far is None:
            remaining[course_id] = None
            continue
        spent = (now - started).total_seconds() if started else 0.0
        remaining[course_id] = so_far + max(mean - spent, 0.0)
    for course_id, queue in queues.items():
        queue.holders.sort(key=lambda h: (-(h.running + h.waiting), h.username))
        total = remaining.get(course_id)
        queue.drain_seconds = None if total is None else total / busy
    return sorted(queues.values(), key=lambda q: q.course.title)


def oldest_waiting_of(
    *, assignment: Assignment, user_id: int
) -> tuple[Submission, QueuePlace] | None:
    """The user's oldest unfinished submission of `assignment` that waits for a stage, with its
    place; None when all of theirs are running (or they have none)."""
    waiting = (
        Submission.objects.select_related("assignment")
        .filter(
            assignment=assignment,
            student_id=user_id,
            status__in=Submission.ACTIVE_STATUSES,
            worker="",
        )
        .order_by("queued_at", "pk")
    )
    for submission in waiting:
        place = queue_place(submission)
        if place is not None:
            return submission, place
    return None
