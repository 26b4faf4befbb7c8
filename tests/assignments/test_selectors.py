"""Leaderboard, grades and statistics: checked against a brute-force computation in Python,
and for a number of SQL queries that does not grow with the number of submissions."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from assignments import selectors
from assignments.models import Assignment, Enrollment, Result, Submission
from tests.support.site_fixtures import make_submission, make_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("uploads_dir")]

BASE = timezone.now() - dt.timedelta(days=2)


def seed(assignment, n_students: int, per_student: int, rng: random.Random, prefix: str = "s"):
    """Random submissions with deliberate ties in accuracy and parameters."""
    users = []
    for i in range(n_students):
        user = make_user(f"{prefix}{i:03d}")
        Enrollment.objects.create(course=assignment.course, user=user, display_name=f"Name {i}")
        users.append(user)
    rows = []
    minute = 0
    for user in users:
        for _ in range(per_student):
            minute += 1
            status = rng.choice(
                [Submission.Status.FINISHED] * 4
                + [Submission.Status.FAILED, Submission.Status.ERROR]
            )
            passed = status == Submission.Status.FINISHED and rng.random() < 0.8
            rows.append(
                make_submission(
                    assignment,
                    user,
                    status=status,
                    accuracy=rng.choice([0.5, 0.6, 0.7, 0.7, 0.8]),  # ties on purpose
                    params=rng.choice([1000, 2000, 2000, 3000]),
                    passed=passed,
                    created_at=BASE + dt.timedelta(minutes=minute),
                )
            )
    return users, rows


def expected_leaderboard(rows, policy: str) -> list[int]:
    """The ranking rule, computed independently: brute force over plain tuples."""
    passing = [
        s for s in rows if s.status == Submission.Status.FINISHED and s.result.passed is True
    ]
    by_student: dict[int, list] = {}
    for s in passing:
        by_student.setdefault(s.student_id, []).append(s)
    chosen = []
    for subs in by_student.values():
        if policy == Assignment.LeaderboardPolicy.BEST:
            best = min(
                subs, key=lambda s: (-s.result.accuracy, s.result.params_total, s.created_at, s.pk)
            )
        else:
            best = max(subs, key=lambda s: (s.created_at, s.pk))
        chosen.append(best)
    chosen.sort(key=lambda s: (-s.result.accuracy, s.result.params_total, s.created_at, s.pk))
    return [s.pk for s in chosen]


@pytest.mark.parametrize(
    "policy", [Assignment.LeaderboardPolicy.BEST, Assignment.LeaderboardPolicy.LATEST]
)
@pytest.mark.parametrize("seed_value", [1, 2, 3])
def test_leaderboard_matches_brute_force_ranking(assignment, policy, seed_value):
    assignment.leaderboard_policy = policy
    assignment.save()
    _, rows = seed(assignment, n_students=12, per_student=5, rng=random.Random(seed_value))
    entries = selectors.leaderboard(assignment)
    assert [e.submission_id for e in entries] == expected_leaderboard(rows, policy)
    assert [e.rank for e in entries] == list(range(1, len(entries) + 1))
    assert len({e.student_id for e in entries}) == len(entries)


def expected_grades(rows, policy: str) -> dict[int, int]:
    """Per student, the submission the grades show, computed independently: the best effective
    score (override, else score) of any status; ties to a passing submission, then by the
    leaderboard policy; without a score, the latest submission."""
    by_student: dict[int, list] = {}
    for s in rows:
        by_student.setdefault(s.student_id, []).append(s)
    passed_rank = {True: 0, False: 1, None: 2}
    chosen = {}
    for student_id, subs in by_student.items():
        scored = [s for s in subs if s.result_or_none and s.result_or_none.final_score is not None]
        if not scored:
            chosen[student_id] = max(subs, key=lambda s: (s.created_at, s.pk)).pk
            continue
        if policy == Assignment.LeaderboardPolicy.BEST:

            def ties(s):
                accuracy = s.result.accuracy
                params = s.result.params_total
                return (
                    (accuracy is None, -(accuracy or 0)),
                    (params is None, params or 0),
                    s.created_at,
                    s.pk,
                )
        else:

            def ties(s):
                return (-s.created_at.timestamp(), -s.pk)

        best = min(
            scored,
            key=lambda s: (-s.result.final_score, passed_rank[s.result.passed], ties(s)),
        )
        chosen[student_id] = best.pk
    return chosen


@pytest.mark.parametrize(
    "policy", [Assignment.LeaderboardPolicy.BEST, Assignment.LeaderboardPolicy.LATEST]
)
@pytest.mark.parametrize("seed_value", [7, 8])
def test_grades_show_the_best_scored_submission_else_the_latest(assignment, policy, seed_value):
    assignment.leaderboard_policy = policy
    assignment.save()
    rng = random.Random(seed_value)
    users, rows = seed(assignment, n_students=12, per_student=4, rng=rng)
    # As the pipeline scores: 100 for a pass, partial credit for a failure, the late penalty on
    # some, overrides on some, and submissions without a result (queued, cancelled early).
    for s in rows:
        score = rng.choice([100.0, 100.0, 50.0]) if s.result.passed else rng.choice([0.0, 50.0])
        override = rng.choice([None, None, None, None, 80.0, 100.0])
        Result.objects.filter(pk=s.result.pk).update(
            score=score,
            score_override=override,
            override_reason="checked by hand" if override else "",
        )
    for user in users[:4]:
        rows.append(make_submission(assignment, user, status="queued", with_result=False))
    lonely = make_user("zz-queued")  # only a submission without a result
    Enrollment.objects.create(course=assignment.course, user=lonely)
    rows.append(make_submission(assignment, lonely, status="cancelled", with_result=False))
    latecomer = make_user("zz-none")  # enrolled, never submitted
    Enrollment.objects.create(course=assignment.course, user=latecomer)
    rows = list(Submission.objects.filter(assignment=assignment).select_related("result"))
    for s in rows:
        s.result_or_none = getattr(s, "result", None)
    table = selectors.grade_table(assignment)
    shown = {row[0]: row[2] for row in table.rows}
    expected = expected_grades(rows, policy)
    everyone = [*users, lonely, latecomer]
    assert shown == {u.username: expected.get(u.pk, "") for u in everyone}
    assert [row[0] for row in table.rows] == sorted(shown)
    scores = {row[0]: row[table.header.index("score")] for row in table.rows}
    by_pk = {s.pk: s for s in rows}
    for user in users:
        assert scores[user.username] == by_pk[expected[user.pk]].result.final_score


@pytest.mark.parametrize(
    "policy", [Assignment.LeaderboardPolicy.BEST, Assignment.LeaderboardPolicy.LATEST]
)
def test_grades_name_the_leaderboards_submission_when_passing_scores_tie(assignment, policy):
    assignment.leaderboard_policy = policy
    assignment.save()
    users, _ = seed(assignment, n_students=10, per_student=5, rng=random.Random(3))
    # Every pass scores 100 and every failure less, as the pipeline scores them.
    Result.objects.filter(submission__assignment=assignment, passed=True).update(score=100.0)
    Result.objects.exclude(passed=True).update(score=40.0)
    ranked = {e.student_id: e.submission_id for e in selectors.leaderboard(assignment)}
    assert ranked
    shown = {row[0]: row[2] for row in selectors.grade_table(assignment).rows}
    assert {u.username: shown[u.username] for u in users if u.pk in ranked} == {
        u.username: ranked[u.pk] for u in users if u.pk in ranked
    }


@pytest.mark.parametrize("viewer_index", [0, 5, 11])
def test_leaderboard_pages_rank_across_pages_and_find_the_viewer(assignment, viewer_index):
    users, _ = seed(assignment, n_students=12, per_student=4, rng=random.Random(5))
    whole = selectors.leaderboard(assignment)
    viewer = users[viewer_index]
    pages = [
        selectors.leaderboard_page(assignment, viewer=viewer, page=n, per_page=5)
        for n in range(1, 5)
    ]
    assert [e for p in pages[:3] for e in p.entries] == [
        selectors.LeaderboardEntry(**{**vars_of(e), "is_viewer": e.student_id == viewer.pk})
        for e in whole
    ]
    assert pages[3].page.number == 3  # past the end: the last page
    mine = [e for e in whole if e.student_id == viewer.pk]
    if mine:
        assert all(p.viewer.rank == mine[0].rank and p.viewer.is_viewer for p in pages)
        assert pages[0].viewer_page == (mine[0].rank - 1) // 5 + 1
    else:
        assert all(p.viewer is None and p.viewer_page is None for p in pages)
    assert selectors.leaderboard_page(assignment, page="abc", per_page=5).page.number == 1


def vars_of(entry) -> dict:
    return {name: getattr(entry, name) for name in entry.__slots__}


def test_leaderboard_and_grades_read_in_two_queries(assignment, django_assert_num_queries):
    seed(assignment, n_students=6, per_student=3, rng=random.Random(1))
    with django_assert_num_queries(2):
        selectors.leaderboard(assignment)
    with django_assert_num_queries(2):
        selectors.leaderboard_page(assignment, viewer=None, page=2, per_page=2)
    with django_assert_num_queries(2):
        selectors.grade_table(assignment)


def test_failing_submissions_are_not_ranked(assignment, student):
    make_submission(assignment, student, accuracy=0.99, passed=False, status="failed")
    assert selectors.leaderboard(assignment) == []


def test_names_are_display_names_or_hidden_until_the_deadline(assignment, student):
    make_submission(assignment, student, accuracy=0.9)
    pseudonym = Enrollment.objects.get(user=student).pseudonym
    assert [e.name for e in selectors.leaderboard(assignment)] == ["Alice A."]
    assignment.hide_names_until_deadline = True
    assignment.deadline = timezone.now() + dt.timedelta(days=1)
    assignment.save()
    assert [e.name for e in selectors.leaderboard(assignment)] == [pseudonym]
    after = assignment.deadline + dt.timedelta(seconds=1)
    assert [e.name for e in selectors.leaderboard(assignment, now=after)] == ["Alice A."]


def _queries(func) -> int:
    with CaptureQueriesContext(connection) as ctx:
        func()
    return len(ctx.captured_queries)


@pytest.mark.parametrize(
    "read",
    [
        lambda a: list(selectors.leaderboard(a)),
        lambda a: selectors.grade_table(a),
        lambda a: selectors.assignment_stats(a),
        lambda a: [
            (s.student.username, s.result.accuracy)
            for s in selectors.submissions_table(assignment=a)[:50]
        ],
    ],
    ids=["leaderboard", "grades", "stats", "submissions_table"],
)
def test_query_count_does_not_grow_with_submissions(assignment, course, read):
    small = Assignment.objects.create(
        course=course, slug="small", title="S", rules_yaml="rules: []"
    )
    seed(small, n_students=2, per_student=2, rng=random.Random(0), prefix="t")
    seed(assignment, n_students=15, per_student=6, rng=random.Random(0))
    assert _queries(lambda: read(small)) == _queries(lambda: read(assignment))


def test_grade_table_has_one_row_per_student_and_a_column_per_rule(
    assignment, student, other_student
):
    rules = [
        {"id": "max_params", "name": "max_params", "passed": True},
        {"id": "max_dropout", "name": "max_dropout", "passed": False},
    ]
    make_submission(
        assignment,
        student,
        accuracy=0.8,
        passed=True,
        rules=[rules[0], {**rules[1], "passed": True}],
    )
    late = make_submission(
        assignment, student, accuracy=0.7, passed=False, status="failed", rules=rules
    )
    Submission.objects.filter(pk=late.pk).update(is_late=True)
    table = selectors.grade_table(assignment)
    assert table.header[:6] == [
        "username",
        "display_name",
        "submission_id",
        "status",
        "reason",
        "passed",
    ]
    assert "rule:max_params" in table.header and "rule:max_dropout" in table.header
    rows = {row[0]: dict(zip(table.header, row, strict=True)) for row in table.rows}
    assert set(rows) == {"alice", "bob"}
    # Alice's passing submission stands, not her later failing one.
    assert rows["alice"]["accuracy"] == 0.8 and rows["alice"]["rule:max_dropout"] == "yes"
    assert rows["alice"]["late"] == "no"
    assert rows["bob"]["submission_id"] == ""


def test_grades_use_the_override_when_there_is_one(assignment, student):
    submission = make_submission(assignment, student, accuracy=0.8)
    submission = selectors.submission_detail(submission.pk)
    assert selectors.effective_score(submission) == submission.result.score == 80.0
    submission.result.score_override = 90.0
    assert selectors.effective_score(submission) == 90.0


def test_stats_count_passes_per_rule_and_bin_accuracies(assignment, student):
    for accuracy, passed in [(0.55, True), (0.65, False), (0.95, True)]:
        make_submission(assignment, student, accuracy=accuracy, passed=passed)
    stats = selectors.assignment_stats(assignment)
    assert sorted(stats.accuracies) == [0.55, 0.65, 0.95]
    assert stats.rule_pass_rates == [("max_params", 2, 3)]
    assert sum(n for _, n in stats.per_day) == 3
    assert stats.by_status == {"finished": 3}


def test_queue_position_counts_earlier_queued_submissions(assignment, student, other_student):
    a = make_submission(assignment, student, status="queued", with_result=False, created_at=BASE)
    b = make_submission(
        assignment, other_student, status="queued", with_result=False,
        created_at=BASE + dt.timedelta(seconds=1),
    )  # fmt: skip
    running = make_submission(assignment, student, status="training", with_result=False)
    Submission.objects.filter(pk=running.pk).update(worker="gpu0@host#1")
    running.refresh_from_db()
    # Trained and waiting for evaluation: it waits in the GPU queue, not behind a and b.
    trained = make_submission(assignment, student, status="training", with_result=False)
    assert selectors.queue_position(a) == 1
    assert selectors.queue_position(b) == 2
    assert selectors.queue_position(running) is None
    assert selectors.queue_position(trained) == 1


def _grade_row(assignment, username: str) -> dict:
    table = selectors.grade_table(assignment)
    return next(dict(zip(table.header, r, strict=True)) for r in table.rows if r[0] == username)


@pytest.mark.parametrize(
    ("status", "reason", "with_result"),
    [
        ("failed", "build_error", False),
        ("cancelled", "", False),
        ("queued", "", False),
        ("training", "", True),  # checked, not yet scored
        ("failed", "rules", True),  # scored lower
    ],
)
def test_a_later_submission_never_replaces_an_override(
    assignment, student, status, reason, with_result
):
    from assignments.services.courses import override_score

    graded = make_submission(
        assignment, student, status="failed", reason="rules", accuracy=0.5, passed=False
    )
    override_score(result=graded.result, actor=None, score=80.0, reason="Partial credit")
    later = make_submission(
        assignment, student, status=status, reason=reason, passed=None, with_result=with_result
    )
    if with_result:
        Result.objects.filter(submission=later).update(score=30.0 if status == "failed" else None)
    row = _grade_row(assignment, "alice")
    assert (row["submission_id"], row["score"], row["score_overridden"]) == (graded.pk, 80.0, "yes")


def test_partial_credit_stands_over_a_later_unscored_submission(assignment, student):
    graded = make_submission(
        assignment, student, status="failed", reason="rules", accuracy=0.5, passed=False
    )
    make_submission(assignment, student, status="failed", reason="build_error", with_result=False)
    row = _grade_row(assignment, "alice")
    assert (row["submission_id"], row["status"], row["score"]) == (graded.pk, "failed", 50.0)


def test_an_override_above_a_pass_counts_for_the_grade(assignment, student):
    from assignments.services.courses import override_score

    passing = make_submission(assignment, student, accuracy=0.9)  # score 90
    failing = make_submission(assignment, student, status="failed", accuracy=0.4, passed=False)
    override_score(result=failing.result, actor=None, score=95.0, reason="Regraded by hand")
    assert _grade_row(assignment, "alice")["submission_id"] == failing.pk
    override_score(result=failing.result, actor=None, score=None, reason="Undo")
    assert _grade_row(assignment, "alice")["submission_id"] == passing.pk


def test_staff_submissions_are_not_ranked_counted_or_graded(
    assignment, instructor, student, other_student
):
    from django.contrib.auth import get_user_model

    admin = get_user_model().objects.create_superuser("root", "root@example.org", "x")
    make_submission(assignment, instructor, accuracy=0.99)
    make_submission(assignment, admin, accuracy=0.98)
    mine = make_submission(assignment, student, accuracy=0.7)
    make_submission(assignment, other_student, status="failed", accuracy=0.6, passed=False)
    gone = make_user("gone")  # submitted, then left the course
    make_submission(assignment, gone, accuracy=0.95)
    assert [(e.rank, e.submission_id) for e in selectors.leaderboard(assignment)] == [(1, mine.pk)]
    board = selectors.leaderboard_page(assignment, viewer=student)
    assert board.page.paginator.count == 1 and board.viewer.rank == 1
    assert selectors.leaderboard_page(assignment, viewer=instructor).viewer is None
    stats = selectors.assignment_stats(assignment)
    assert stats.students_submitted == 2
    assert stats.by_status == {"finished": 1, "failed": 1}
    assert stats.accuracies == [0.7]  # finished ones only
    assert sum(n for _, n in stats.per_day) == 2
    assert [row[0] for row in selectors.grade_table(assignment).rows] == ["alice", "bob"]
