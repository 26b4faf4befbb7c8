"""The instructor's queue-health page: who holds each course's queue, the oldest wait, and the
projected time to drain. Marked `embedded`: CI runs it on PostgreSQL, then on SQLite."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from assignments.models import Assignment, Submission
from assignments.selectors.queue_order import course_queues
from tests.support.site_fixtures import PASSWORD, RULES_YAML, make_submission

pytestmark = [pytest.mark.embedded, pytest.mark.django_db, pytest.mark.usefixtures("uploads_dir")]

Status = Submission.Status


def _set(submission: Submission, **fields) -> None:
    Submission.objects.filter(pk=submission.pk).update(**fields)


@pytest.fixture
def busy_course(assignment, student, other_student, instructor):
    now = timezone.now()
    # Two gradings ended: 60 s and 120 s from the build's start to the verdict (mean 90 s).
    for seconds in (60, 120):
        done = make_submission(assignment, other_student)
        _set(
            done,
            building_at=now - timedelta(hours=1, seconds=seconds),
            finished_at=now - timedelta(hours=1),
        )
    running = make_submission(assignment, student, status=Status.TRAINING, with_result=False)
    # Running longer than the mean already: it counts for nothing more.
    _set(running, worker="gpu0@h#a.1", building_at=now - timedelta(seconds=200))
    oldest = make_submission(assignment, student, status=Status.QUEUED, with_result=False)
    _set(oldest, queued_at=now - timedelta(minutes=7))
    make_submission(assignment, student, status=Status.QUEUED, with_result=False)
    make_submission(assignment, instructor, status=Status.QUEUED, with_result=False)
    return {"running": running, "oldest": oldest}


def test_each_course_lists_who_holds_the_queue_the_oldest_wait_and_the_drain_time(
    busy_course, course, other_course, other_student
):
    # Another course's submissions are not this course's, and not this instructor's to see.
    elsewhere = Assignment.objects.create(
        course=other_course, slug="cv", title="CV", rules_yaml=RULES_YAML
    )
    make_submission(elsewhere, other_student, status=Status.QUEUED, with_result=False)

    [queue] = course_queues([course.pk])

    holders = [(h.username, h.running, h.waiting, h.is_staff) for h in queue.holders]
    assert holders == [("alice", 1, 2, False), ("prof", 0, 1, True)]
    assert (queue.running, queue.waiting) == (1, 3)
    assert queue.oldest_waiting_id == busy_course["oldest"].pk
    assert 7 * 60 <= queue.oldest_waiting_seconds < 7 * 60 + 30
    # Three waiting gradings of a 90 s mean, one stage running now: 270 s.
    assert queue.drain_seconds == pytest.approx(270.0)


def test_the_page_shows_it_to_the_courses_instructor(client, busy_course, instructor):
    assert client.login(username=instructor.username, password=PASSWORD)

    html = client.get(reverse("queue_health")).content.decode()

    assert "Deep Learning 101" in html
    rows = re.findall(
        r"<tr><td>([^<]+)</td><td class=\"num\">(\d+)</td><td class=\"num\">(\d+)", html
    )
    assert ("alice", "1", "2") in rows and ("prof (staff)", "0", "1") in rows
    assert f"#{busy_course['oldest'].pk}</a>, 7 min" in html
    assert "Projected time to drain: <strong>4 min 30 s</strong>" in html


def test_without_history_the_drain_time_is_unknown(assignment, student, course):
    make_submission(assignment, student, status=Status.QUEUED, with_result=False)

    [queue] = course_queues([course.pk])

    assert queue.drain_seconds is None
