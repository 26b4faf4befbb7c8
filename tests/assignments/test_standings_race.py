"""Two transactions refreshing one student's `Standing` rows at once (PostgreSQL: SQLite runs
one writing transaction at a time, so this file is not part of the embedded pass)."""

from __future__ import annotations

import pytest
from django.db import connection

from assignments.models import Standing, Submission
from tests.assignments.test_standings import expected, stored
from tests.support.site_fixtures import make_submission

pytestmark = [pytest.mark.usefixtures("uploads_dir")]


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_two_submissions_of_a_student_finishing_at_once(assignment, student):
    """Two transactions finishing two of one student's submissions: the second waits for the
    first (an advisory lock per student), then chooses among both; neither fails."""
    import threading

    from django.db import connections, transaction

    from tests.conftest import service_missing

    if connection.vendor != "postgresql":
        service_missing("PostgreSQL as the test database (DATABASE_URL=postgres://...)")
    subs = [
        make_submission(assignment, student, status="evaluating", accuracy=accuracy)
        for accuracy in (0.6, 0.9)
    ]
    first_done, errors = threading.Event(), []

    def finish(submission: Submission, hold: bool) -> None:
        try:
            with transaction.atomic():
                Submission.objects.filter(pk=submission.pk).update(status="finished")
                if hold:  # keep the first transaction open while the second one tries
                    first_done.set()
                    threading.Event().wait(0.5)
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    first = threading.Thread(target=finish, args=(subs[0], True))
    first.start()
    assert first_done.wait(5)
    second = threading.Thread(target=finish, args=(subs[1], False))
    second.start()
    first.join()
    second.join()
    assert errors == []
    assert stored() == expected() and len(stored()) == 2
    assert Standing.objects.get(policy="best").submission_id == subs[1].pk
