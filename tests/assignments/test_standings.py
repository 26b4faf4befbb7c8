"""`Standing`, the narrow table the leaderboard reads, is kept by database triggers: whoever
writes a submission or its result (a service, `QuerySet.update()`, a bulk insert, a delete), it
holds for each student exactly their best and their latest finished, passing submission with an
accuracy, with its current keys. Checked against that definition computed by brute force from
the source tables, on PostgreSQL and (embedded pass) SQLite."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.utils import timezone

from assignments.models import Assignment, Result, Standing, Submission
from tests.support.site_fixtures import make_submission

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("uploads_dir"), pytest.mark.embedded]


def expected() -> set[tuple]:
    """The definition, by brute force over the source tables."""
    candidates: dict[tuple, list] = {}
    for s in Submission.objects.select_related("result").filter(
        status=Submission.Status.FINISHED, result__passed=True, result__accuracy__isnull=False
    ):
        candidates.setdefault((s.assignment_id, s.student_id), []).append(s)
    rows = set()
    for (assignment_id, student_id), subs in candidates.items():
        best = min(
            subs,
            key=lambda s: (
                -s.result.accuracy,
                s.result.params_total is None,
                s.result.params_total or 0,
                s.created_at,
                s.pk,
            ),
        )
        latest = max(subs, key=lambda s: (s.created_at, s.pk))
        for policy, s in (("best", best), ("latest", latest)):
            rows.add(
                (assignment_id, student_id, policy, s.pk, s.result.accuracy,
                 s.result.params_total, s.created_at)
            )  # fmt: skip
    return rows


def stored() -> set[tuple]:
    return set(
        Standing.objects.values_list(
            "assignment_id", "student_id", "policy", "submission_id", "accuracy", "params_total",
            "created_at",
        )
    )  # fmt: skip


def test_only_finished_passing_submissions_with_an_accuracy_stand(assignment, student):
    ranked = make_submission(assignment, student, accuracy=0.75, params=1234)
    make_submission(assignment, student, accuracy=0.9, passed=False, status="failed")
    make_submission(assignment, student, accuracy=None)  # passed, but never evaluated
    make_submission(assignment, student, status="queued", with_result=False)
    assert stored() == expected()
    assert stored() == {
        (assignment.pk, student.pk, policy, ranked.pk, 0.75, 1234, ranked.created_at)
        for policy in ("best", "latest")
    }


def test_best_and_latest_follow_ties_and_time(assignment, student, other_student):
    base = timezone.now() - dt.timedelta(days=1)
    for minutes, accuracy, params in [
        (1, 0.7, 2000),
        (2, 0.8, 3000),
        (3, 0.8, 1000),
        (4, 0.8, 1000),
        (5, 0.6, None),
        (6, 0.8, None),
    ]:
        make_submission(
            assignment,
            student,
            accuracy=accuracy,
            params=params,
            created_at=base + dt.timedelta(minutes=minutes),
        )
    make_submission(assignment, other_student, accuracy=0.5)
    assert stored() == expected()
    best = Standing.objects.get(student=student, policy="best")
    assert (best.accuracy, best.params_total, best.created_at) == (
        0.8,
        1000,
        base + dt.timedelta(minutes=3),
    )
    assert Standing.objects.get(student=student, policy="latest").params_total is None
    assert {p for p, _ in Assignment.LeaderboardPolicy.choices} == {"best", "latest"}


def test_result_changes_follow_through_update_save_and_delete(assignment, student):
    submission = make_submission(assignment, student, accuracy=0.5, params=1000)
    result = Result.objects.filter(submission=submission)
    result.update(accuracy=0.6, params_total=None)
    assert stored() == expected() and len(stored()) == 2
    result.update(passed=False)
    assert stored() == expected() == set()
    row = result.get()
    row.passed = True
    row.save()
    assert stored() == expected() and len(stored()) == 2
    # A score override (no ranking key) leaves the row alone; clearing the accuracy removes it.
    result.update(score_override=10.0, override_reason="appeal")
    assert stored() == expected() and len(stored()) == 2
    result.update(accuracy=None)
    assert stored() == expected() == set()
    result.update(accuracy=0.7)
    result.delete()
    assert stored() == expected() == set()


def test_submission_changes_follow_through(assignment, student, other_student):
    submission = make_submission(assignment, student, accuracy=0.8)
    rows = Submission.objects.filter(pk=submission.pk)
    for status in ("queued", "training", "finished", "cancelled", "finished"):
        rows.update(status=status)
        assert stored() == expected()
    assert len(stored()) == 2
    rows.update(created_at=submission.created_at - dt.timedelta(days=1))
    rows.update(student=other_student)
    assert stored() == expected() and len(stored()) == 2
    rows.get().delete()
    assert stored() == expected() == set()


def test_a_regrade_unranks_until_the_new_verdict(assignment, student):
    from assignments.services.grading import regrade_submission

    submission = make_submission(assignment, student, accuracy=0.8)
    regrade_submission(submission_id=submission.pk, actor=None)
    assert stored() == expected() == set()
    Result.objects.filter(submission=submission).update(passed=True, accuracy=0.85)
    assert stored() == set()  # still being graded
    Submission.objects.filter(pk=submission.pk).update(status="finished")
    assert stored() == expected() and len(stored()) == 2


def test_bulk_inserts_are_ranked(assignment, student, other_student):
    """The way bench/bench_site.py seeds: bulk inserts, then a bulk update of created_at."""
    subs = Submission.objects.bulk_create(
        [
            Submission(
                assignment=assignment, student=user, file=f"f{i}.json", original_name="m.json",
                file_format="json", sha256=f"{i:064d}", status=status,
            )
            for i, (user, status) in enumerate(
                [(student, "finished"), (other_student, "finished"), (student, "error")]
            )
        ]
    )  # fmt: skip
    for i, sub in enumerate(subs):
        sub.created_at = sub.created_at - dt.timedelta(minutes=i)
    Submission.objects.bulk_update(subs, ["created_at"])
    Result.objects.bulk_create(
        [
            Result(submission=sub, rules_version=1, passed=True, accuracy=0.5 + i / 10)
            for i, sub in enumerate(subs)
        ]
    )
    assert stored() == expected() and len(stored()) == 4


def test_rows_are_never_saved_by_the_code(assignment, student):
    make_submission(assignment, student, accuracy=0.8)
    with pytest.raises(TypeError, match="triggers"):
        Standing.objects.first().save()


def test_the_migration_installs_the_triggers():
    names = {
        "postgresql": "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal",
        "sqlite": "SELECT name FROM sqlite_master WHERE type = 'trigger'",
    }
    with connection.cursor() as cursor:
        cursor.execute(names[connection.vendor])
        installed = {row[0] for row in cursor.fetchall()}
    assert {n for n in installed if "standing" in n} >= {
        "assignments_submission_standing_update",
        "assignments_submission_standing_delete",
    }


def test_the_next_best_stands_when_the_best_goes(assignment, student):
    make_submission(assignment, student, accuracy=0.6)
    best = make_submission(assignment, student, accuracy=0.9)
    make_submission(assignment, student, accuracy=0.7, passed=False)
    assert Standing.objects.get(policy="best").submission_id == best.pk
    Submission.objects.get(pk=best.pk).delete()
    assert stored() == expected() and Standing.objects.get(policy="best").accuracy == 0.6
    Submission.objects.filter(assignment=assignment).delete()
    assert stored() == expected() == set()


def test_deleting_an_assignment_or_a_student_leaves_nothing_behind(
    assignment, student, other_student
):
    make_submission(assignment, student, accuracy=0.6)
    make_submission(assignment, other_student, accuracy=0.8)
    other_student.delete()
    assert stored() == expected() and len(stored()) == 2
    assignment.delete()
    assert stored() == expected() == set()
