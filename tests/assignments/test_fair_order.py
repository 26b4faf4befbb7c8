"""The fair order: one student's uploads never hold the rest of the course back.

Uploads go through the real upload service (which gives each grading its fair round), stages
are handed out by the real dispatcher (`claim_next`, the query the workers run), and queue
positions are read with the selector the pages and the API show. Marked `embedded`: CI runs
this file on PostgreSQL, then again on SQLite.
"""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.utils import timezone

from assignments import selectors
from assignments.models import Assignment, Course, Enrollment, Submission
from assignments.selectors.queue_order import waiting_order
from assignments.services import dispatcher, grading
from assignments.services.submissions import create_submission
from tests.support.site_fixtures import RULES_YAML, make_user, model_json

pytestmark = [
    pytest.mark.embedded,
    pytest.mark.django_db,
    pytest.mark.usefixtures("uploads_dir"),
]

Status = Submission.Status
PREFLIGHT, GPU = "preflight", "gpu"


def make_course(slug: str) -> Course:
    return Course.objects.create(slug=slug, title=slug.upper())


def make_assignment(course: Course, slug: str, *, waiting: int = 50) -> Assignment:
    # The flooding scenarios need more unfinished submissions than the default limit (2):
    # the order must hold for whatever limit an instructor sets.
    return Assignment.objects.create(
        course=course,
        slug=slug,
        title=slug,
        dataset="synthetic",
        rules_yaml=RULES_YAML,
        daily_quota=1000,
        max_waiting_per_student=waiting,
    )


def enrolled(course: Course, username: str, role: str = Enrollment.Role.STUDENT):
    user = make_user(username)
    Enrollment.objects.create(course=course, user=user, role=role)
    return user


_uploads = iter(range(1, 1_000_000))


def upload(assignment: Assignment, user) -> Submission:
    """One upload through the service; every file different (a duplicate would be refused)."""
    return create_submission(
        assignment=assignment,
        student=user,
        filename="net.json",
        data=model_json(next(_uploads)),
    )


def claim(queue: str = PREFLIGHT, worker: str = "w@host#t1.1") -> int | None:
    claimed = dispatcher.claim_next(queue=queue, worker=worker)
    return claimed.submission_id if claimed else None


def dispatch_all(queue: str = PREFLIGHT) -> list[int]:
    """Hand out every waiting stage of `queue`, one worker run after the other."""
    order = []
    for run in range(1000):
        claimed = claim(queue, worker=f"w@host#run{run}.1")
        if claimed is None:
            return order
        order.append(claimed)
    raise AssertionError("the dispatcher never ran out of stages")


def test_a_students_first_upload_waits_behind_one_of_a_flooders_ten_not_all_of_them():
    course = make_course("dl")
    assignment = make_assignment(course, "smoke")
    flooder, newcomer = enrolled(course, "student1"), enrolled(course, "student2")
    floods = [upload(assignment, flooder) for _ in range(10)]
    first = upload(assignment, newcomer)

    # Before: a first-in-first-out queue put it at position 11, behind all ten.
    assert selectors.queue_position(first) == 2
    assert [selectors.queue_position(s) for s in floods] == [1, *range(3, 12)]
    assert dispatch_all() == [floods[0].pk, first.pk, *[s.pk for s in floods[1:]]]


def test_twenty_students_arriving_after_a_flood_all_go_before_the_flooders_second():
    course = make_course("dl")
    assignment = make_assignment(course, "smoke")
    flooder = enrolled(course, "flooder")
    floods = [upload(assignment, flooder) for _ in range(10)]
    # A worker took the flooder's first build before the others arrived.
    assert claim(worker="w@host#early.1") == floods[0].pk
    others = [upload(assignment, enrolled(course, f"s{i:02}")) for i in range(20)]

    assert [selectors.queue_position(s) for s in others] == list(range(1, 21))
    assert dispatch_all() == [s.pk for s in others] + [s.pk for s in floods[1:]]


def test_a_flooder_whose_first_gradings_ended_still_waits_behind_the_others_first():
    course = make_course("dl")
    assignment = make_assignment(course, "smoke")
    flooder = enrolled(course, "flooder")
    floods = [upload(assignment, flooder) for _ in range(10)]
    assert [claim(worker=f"w@host#early{i}.1") for i in range(2)] == [f.pk for f in floods[:2]]
    others = [upload(assignment, enrolled(course, f"s{i:02}")) for i in range(5)]
    # The flooder's first two gradings end: their third is now their oldest unfinished one,
    # and older than everyone else's, but it already had two turns.
    Submission.objects.filter(pk__in=[f.pk for f in floods[:2]]).update(
        status=Status.FINISHED, worker="", finished_at=timezone.now()
    )

    assert selectors.queue_position(floods[2]) == 6
    assert dispatch_all() == [s.pk for s in others] + [s.pk for s in floods[2:]]


def test_round_robin_goes_across_courses_within_a_round():
    big, small = make_course("big"), make_course("small")
    in_big = make_assignment(big, "big-hw")
    in_small = make_assignment(small, "small-hw")
    crowd = [upload(in_big, enrolled(big, f"b{i}")) for i in range(4)]
    alone = upload(in_small, enrolled(small, "lonely"))

    # Same round: the small course's first goes after the big course's first, not its fourth.
    assert selectors.queue_position(alone) == 2
    assert dispatch_all() == [crowd[0].pk, alone.pk, *[s.pk for s in crowd[1:]]]


def test_each_stage_is_handed_out_in_the_same_fair_order():
    course = make_course("dl")
    assignment = make_assignment(course, "smoke")
    flooder, other = enrolled(course, "flooder"), enrolled(course, "other")
    floods = [upload(assignment, flooder) for _ in range(3)]
    late = upload(assignment, other)
    # Every build done, in upload order: each now waits for its check.
    for s in [*floods, late]:
        Submission.objects.filter(pk=s.pk).update(status=Status.BUILDING, worker="")
    late.refresh_from_db()

    assert selectors.queue_position(late) == 2
    assert dispatch_all(PREFLIGHT) == [floods[0].pk, late.pk, floods[1].pk, floods[2].pk]
    # Checked: trainings in the same order.
    Submission.objects.filter(status=Status.CHECKING).update(worker="")
    assert dispatch_all(GPU) == [floods[0].pk, late.pk, floods[1].pk, floods[2].pk]
    assert set(Submission.objects.values_list("status", flat=True)) == {Status.TRAINING}


def test_a_flooders_training_waits_behind_a_classmates_evaluation_in_the_gpu_queue():
    course = make_course("dl")
    assignment = make_assignment(course, "smoke")
    flooder, other = enrolled(course, "flooder"), enrolled(course, "other")
    floods = [upload(assignment, flooder) for _ in range(3)]
    late = upload(assignment, other)
    # The flooder's second and third were checked first and wait for a GPU to train; the
    # classmate's first, trained meanwhile, waits for its evaluation, as does the flooder's
    # first. One queue, one order: evaluations of the first round before trainings of later
    # ones, so one student's trainings never delay another's verdict.
    Submission.objects.filter(pk__in=[floods[1].pk, floods[2].pk]).update(
        status=Status.CHECKING, worker=""
    )
    Submission.objects.filter(pk__in=[floods[0].pk, late.pk]).update(
        status=Status.TRAINING, worker=""
    )
    shown = {s.pk: selectors.queue_place(Submission.objects.get(pk=s.pk)) for s in [*floods, late]}

    assert [(p.position, p.stage) for p in shown.values()] == [
        (1, Status.EVALUATING),
        (3, Status.TRAINING),
        (4, Status.TRAINING),
        (2, Status.EVALUATING),
    ]
    assert shown[late.pk].describe() == (
        "position 2 of 4 in the training and evaluation queue (waiting to evaluate)"
    )
    claims = [dispatcher.claim_next(queue=GPU, worker=f"g@h#e{n}.1") for n in range(5)]
    assert [(c.submission_id, c.stage) for c in claims if c] == [
        (floods[0].pk, Status.EVALUATING),
        (late.pk, Status.EVALUATING),
        (floods[1].pk, Status.TRAINING),
        (floods[2].pk, Status.TRAINING),
    ]
    assert claims[4] is None


def test_a_stage_that_is_running_is_never_handed_out_again():
    course = make_course("dl")
    assignment = make_assignment(course, "smoke")
    only = upload(assignment, enrolled(course, "alice"))

    assert claim(worker="w1@host#a.1") == only.pk
    assert claim(worker="w2@host#b.1") is None
    only.refresh_from_db()
    assert (only.status, only.worker) == (Status.BUILDING, "w1@host#a.1")


def test_a_worker_killed_mid_stage_is_recovered_first_and_the_order_is_kept(settings):
    settings.GRADER_MAX_ATTEMPTS = 3
    course = make_course("dl")
    assignment = make_assignment(course, "smoke")
    flooder = enrolled(course, "flooder")
    floods = [upload(assignment, flooder) for _ in range(3)]
    others = [upload(assignment, enrolled(course, f"s{i}")) for i in range(3)]
    assert claim(worker="dead@host#k1.1") == floods[0].pk
    expected_rest = [s.pk for s in others] + [s.pk for s in floods[1:]]
    assert waiting_order(PREFLIGHT) == expected_rest

    # The worker dies; the redelivered message (same task) takes its stage over at once,
    # though five others wait.
    assert claim(worker="dead@host#k1.2") == floods[0].pk
    # Killed again, and nothing comes back: the reaper hands the stage back, and it keeps its
    # place: first, not behind everyone who arrived meanwhile.
    Submission.objects.filter(pk=floods[0].pk).update(
        heartbeat_at=timezone.now() - timedelta(hours=1)
    )
    assert grading.requeue_stale(older_than_seconds=60) == [floods[0].pk]
    floods[0].refresh_from_db()
    assert (floods[0].status, floods[0].worker, floods[0].attempts) == (Status.QUEUED, "", 2)
    assert selectors.queue_position(floods[0]) == 1
    assert dispatch_all() == [floods[0].pk, *expected_rest]


def test_a_regrade_waits_in_its_students_next_round(instructor_of):
    course = make_course("dl")
    assignment = make_assignment(course, "smoke")
    alice, bob = enrolled(course, "alice"), enrolled(course, "bob")
    graded = upload(assignment, alice)
    Submission.objects.filter(pk=graded.pk).update(status=Status.FINISHED)
    waiting = [upload(assignment, alice), upload(assignment, bob)]

    grading.regrade_submission(submission_id=graded.pk, actor=instructor_of(course))

    graded.refresh_from_db()
    assert graded.status == Status.QUEUED
    # Alice's regraded submission is her third grading: after her second and Bob's first.
    assert dispatch_all() == [waiting[0].pk, waiting[1].pk, graded.pk]


def test_regrading_an_assignment_interleaves_its_students(instructor_of):
    course = make_course("dl")
    assignment = make_assignment(course, "smoke")
    alice, bob = enrolled(course, "alice"), enrolled(course, "bob")
    mine = [upload(assignment, alice) for _ in range(3)]
    his = upload(assignment, bob)
    Submission.objects.update(status=Status.FINISHED)

    grading.regrade_assignment(assignment_id=assignment.pk, actor=instructor_of(course))

    assert dispatch_all() == [mine[0].pk, his.pk, mine[1].pk, mine[2].pk]


@pytest.fixture
def instructor_of():
    def make(course: Course):
        return enrolled(course, f"prof-{course.slug}", Enrollment.Role.INSTRUCTOR)

    return make


# --- The position shown is the order of dispatch (property-style) ----------------------------


def _snapshot_positions() -> list[int]:
    """Waiting submissions sorted by the position each one shows (checked to be 1..n)."""
    waiting = list(
        Submission.objects.select_related("assignment").filter(status=Status.QUEUED, worker="")
    )
    positions = {s.pk: selectors.queue_position(s) for s in waiting}
    assert sorted(positions.values()) == list(range(1, len(waiting) + 1))
    return sorted(positions, key=lambda pk: positions[pk])


@pytest.mark.parametrize("seed", range(6))
def test_the_position_shown_is_the_order_of_dispatch_over_random_upload_sequences(seed):
    rng = random.Random(seed)  # fixed seeds, bounded size: fast and reproducible
    courses = [make_course(f"c{seed}x{i}") for i in range(2)]
    assignments = [make_assignment(c, f"hw-{c.slug}") for c in courses]
    people = [(assignments[i % 2], enrolled(courses[i % 2], f"u{seed}x{i}")) for i in range(5)]
    runs = 0
    for _ in range(45):
        event = rng.random()
        if event < 0.55:
            upload(*rng.choice(people))
        elif event < 0.8:
            shown = _snapshot_positions()
            runs += 1
            claimed = claim(worker=f"w@host#r{seed}x{runs}.1")
            # The dispatcher takes what the pages show at position 1.
            assert claimed == (shown[0] if shown else None)
        else:
            ending = list(
                Submission.objects.filter(status__in=Submission.ACTIVE_STATUSES).values_list(
                    "pk", "worker"
                )
            )
            if ending:
                pk, worker = rng.choice(ending)
                if worker:
                    Submission.objects.filter(pk=pk).update(status=Status.FINISHED, worker="")
                else:
                    grading.cancel_submission(submission_id=pk, actor=None)
    # With nothing else happening, the stages go out exactly in the order of the positions.
    shown = _snapshot_positions()
    assert dispatch_all() == shown
