"""`RankedSubmission`, the narrow table the leaderboard reads, is kept by database triggers:
whoever writes a submission or its result (a service, `QuerySet.update()`, a bulk insert, a
delete), the table holds exactly the finished, passing submissions with an accuracy, with their
current keys. Checked against that definition computed from the source tables, on PostgreSQL
and (embedded pass) SQLite."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection

from assignments.models import RankedSubmission, Result, Submission
from tests.assignments.site_fixtures import make_submission

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("uploads_dir"), pytest.mark.embedded]


def expected() -> set[tuple]:
    """The definition, from the source tables."""
    return {
        (s.pk, s.assignment_id, s.student_id, s.result.accuracy, s.result.params_total,
         s.created_at)
        for s in Submission.objects.select_related("result").filter(
            status=Submission.Status.FINISHED,
            result__passed=True,
            result__accuracy__isnull=False,
        )
    }  # fmt: skip


def stored() -> set[tuple]:
    return set(
        RankedSubmission.objects.values_list(
            "submission_id", "assignment_id", "student_id", "accuracy", "params_total",
            "created_at",
        )
    )  # fmt: skip


def test_a_finished_passing_submission_is_ranked_with_its_keys(assignment, student):
    ranked = make_submission(assignment, student, accuracy=0.75, params=1234)
    make_submission(assignment, student, accuracy=0.9, passed=False, status="failed")
    make_submission(assignment, student, accuracy=None)  # passed, but never evaluated
    make_submission(assignment, student, status="queued", with_result=False)
    assert stored() == expected()
    assert stored() == {
        (ranked.pk, assignment.pk, student.pk, 0.75, 1234, ranked.created_at),
    }


def test_result_changes_follow_through_update_save_and_delete(assignment, student):
    submission = make_submission(assignment, student, accuracy=0.5, params=1000)
    result = Result.objects.filter(submission=submission)
    result.update(accuracy=0.6, params_total=None)
    assert stored() == expected() and len(stored()) == 1
    result.update(passed=False)
    assert stored() == expected() == set()
    row = result.get()
    row.passed = True
    row.save()
    assert stored() == expected() and len(stored()) == 1
    # A score override (no ranking key) leaves the row alone; clearing the accuracy removes it.
    result.update(score_override=10.0, override_reason="appeal")
    assert stored() == expected() and len(stored()) == 1
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
    assert len(stored()) == 1
    rows.update(created_at=submission.created_at - dt.timedelta(days=1))
    rows.update(student=other_student)
    assert stored() == expected() and len(stored()) == 1
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
    assert stored() == expected() and len(stored()) == 1


def test_bulk_inserts_are_ranked(assignment, student, other_student):
    """The way bench/bench_site.py seeds: bulk inserts, then a bulk update of created_at."""
    subs = Submission.objects.bulk_create(
        [
            Submission(
                assignment=assignment, student=user, file=f"f{i}.json", original_name="m.json",
                kind="json", sha256=f"{i:064d}", status=status,
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
    assert stored() == expected() and len(stored()) == 2


def test_rows_are_never_saved_by_the_code(assignment, student):
    make_submission(assignment, student, accuracy=0.8)
    with pytest.raises(TypeError, match="triggers"):
        RankedSubmission.objects.get().save()


def test_the_migration_installs_the_triggers():
    names = {
        "postgresql": "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal",
        "sqlite": "SELECT name FROM sqlite_master WHERE type = 'trigger'",
    }
    with connection.cursor() as cursor:
        cursor.execute(names[connection.vendor])
        installed = {row[0] for row in cursor.fetchall()}
    assert {n for n in installed if "ranked" in n} >= {
        "assignments_result_ranked_update",
        "assignments_submission_ranked_update",
    }
