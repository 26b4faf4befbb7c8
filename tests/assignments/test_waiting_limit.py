"""The per-user limit of unfinished submissions: past it, an upload is a 429 that says why and
where the user's own oldest waiting submission stands; cancelling one makes room.

Marked `embedded`: CI runs this file on PostgreSQL, then again on SQLite.
"""

from __future__ import annotations

import io

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from assignments.models import Assignment, Submission
from assignments.services import dispatcher
from assignments.services.grading import cancel_submission
from assignments.services.submissions import TooManyWaiting, create_batch, create_submission
from tests.support.site_fixtures import RULES_YAML, make_user, model_json

pytestmark = [
    pytest.mark.embedded,
    pytest.mark.django_db,
    pytest.mark.usefixtures("uploads_dir"),
]

Status = Submission.Status


@pytest.fixture
def assignment(course) -> Assignment:
    """An assignment with the default limits (the shared fixture raises the student's)."""
    return Assignment.objects.create(
        course=course, slug="hw1", title="Homework 1", rules_yaml=RULES_YAML, daily_quota=3
    )


def api(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


def post(user, slug: str, filters: int):
    handle = io.BytesIO(model_json(filters))
    handle.name = "net.json"
    return api(user).post(
        f"/api/v1/assignments/{slug}/submissions/", {"file": handle}, format="multipart"
    )


def upload(assignment, user, filters: int) -> Submission:
    return create_submission(
        assignment=assignment, student=user, filename="net.json", data=model_json(filters)
    )


def test_a_new_assignment_allows_one_running_and_one_waiting_submission(assignment):
    assert (assignment.max_waiting_per_student, assignment.max_waiting_per_staff) == (2, 5)


def test_a_third_unfinished_upload_is_a_429_naming_the_limit_and_the_oldest_waiting_position(
    assignment, student, other_student
):
    assignment.daily_quota = 10
    assignment.save()
    ahead = upload(assignment, other_student, 1)
    mine = [upload(assignment, student, 2), upload(assignment, student, 3)]
    assert dispatcher.claim_next(queue="preflight", worker="w@h#a.1").submission_id == ahead.pk

    response = post(student, assignment.slug, 4)

    assert response.status_code == 429, response.content
    error = response.json()["error"]
    assert error["kind"] == "too_many_waiting"
    assert error["message"] == (
        "You have 2 unfinished submissions to `hw1`. Expected at most 2 at once, so that one "
        "person's uploads never hold back the rest of the course. Your oldest waiting "
        f"submission, #{mine[0].pk}, is at position 1 of 2 in the build and check queue "
        "(waiting to build). Cancel one to make room, or upload again when one is graded."
    )
    assert error["limit"] == 2 and error["unfinished"] == 2
    assert error["oldest_waiting"] == {"id": mine[0].pk, "position": 1}
    assert Submission.objects.filter(student=student).count() == 2

    # The student cancels one: there is room again.
    cancel_submission(submission_id=mine[1].pk, actor=student)
    assert post(student, assignment.slug, 4).status_code == 201


def test_when_every_unfinished_submission_runs_the_refusal_says_so(assignment, student):
    first = upload(assignment, student, 1)
    assert dispatcher.claim_next(queue="preflight", worker="w@h#a.1").submission_id == first.pk
    second = upload(assignment, student, 2)
    assert dispatcher.claim_next(queue="preflight", worker="w@h#b.1").submission_id == second.pk

    with pytest.raises(TooManyWaiting, match="All of them are being graded now") as caught:
        upload(assignment, student, 3)
    assert caught.value.oldest_waiting is None and caught.value.position is None


def test_ended_submissions_do_not_count(assignment, student):
    done = [upload(assignment, student, 1), upload(assignment, student, 2)]
    Submission.objects.filter(pk=done[0].pk).update(status=Status.FINISHED)
    Submission.objects.filter(pk=done[1].pk).update(status=Status.FAILED, reason="rules")

    assert upload(assignment, student, 3).status == Status.QUEUED


def test_the_limit_is_per_assignment_and_set_by_the_instructor(assignment, student):
    assignment.max_waiting_per_student = 3
    assignment.daily_quota = 10
    assignment.save()
    for filters in (1, 2, 3):
        upload(assignment, student, filters)
    with pytest.raises(TooManyWaiting, match="Expected at most 3 at once"):
        upload(assignment, student, 4)


def test_staff_test_submissions_have_their_own_limit_and_the_same_order(
    assignment, instructor, student
):
    assignment.max_waiting_per_staff = 3
    assignment.daily_quota = 10
    assignment.save()
    mine = [upload(assignment, instructor, filters) for filters in (1, 2, 3)]

    with pytest.raises(TooManyWaiting) as caught:
        upload(assignment, instructor, 4)
    assert "Expected at most 3 at once for the course's staff" in caught.value.message
    # A student's first upload goes before the instructor's second: the same fair order.
    theirs = upload(assignment, student, 5)
    claims = [dispatcher.claim_next(queue="preflight", worker=f"w@h#{n}.1") for n in range(4)]
    order = [claim.submission_id for claim in claims]
    assert order == [mine[0].pk, theirs.pk, mine[1].pk, mine[2].pk]


def test_a_superuser_counts_as_staff(assignment):
    admin = make_user("root", superuser=True)
    assignment.max_waiting_per_staff = 1
    assignment.save()
    upload(assignment, admin, 1)
    with pytest.raises(TooManyWaiting, match="for the course's staff"):
        upload(assignment, admin, 2)


def test_an_instructors_batch_is_not_held_to_the_limit(assignment, instructor, student):
    import zipfile

    upload(assignment, student, 1)
    upload(assignment, student, 2)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"{student.username}.json", model_json(3))

    [queued] = create_batch(assignment=assignment, actor=instructor, data=buffer.getvalue())

    assert queued.status == Status.QUEUED
    assert Submission.objects.filter(student=student, status=Status.QUEUED).count() == 3


def test_the_limit_is_shown_on_the_upload_page(client, assignment, student):
    from tests.support.site_fixtures import PASSWORD

    assert client.login(username=student.username, password=PASSWORD)
    upload(assignment, student, 1)
    upload(assignment, student, 2)
    handle = io.BytesIO(model_json(3))
    handle.name = "net.json"

    response = client.post(f"/a/{assignment.slug}/", {"file": handle})

    html = response.content.decode()
    assert "You have 2 unfinished submissions to `hw1`" in html.replace("&#x27;", "'")
    assert "position 1 of 2 in the build and check queue (waiting to build)" in html


def test_instructors_set_the_limits_with_the_other_settings(client, assignment, instructor):
    from django.urls import reverse

    from assignments.services import courses
    from assignments.services.assignment_settings import AssignmentInvalid
    from tests.support.site_fixtures import PASSWORD

    assert client.login(username=instructor.username, password=PASSWORD)
    page = client.get(reverse("assignment_edit", args=[assignment.slug])).content.decode()
    assert 'name="max_waiting_per_student"' in page and 'name="max_waiting_per_staff"' in page

    courses.update_assignment(
        assignment=assignment, actor=instructor, max_waiting_per_student=4, max_waiting_per_staff=8
    )
    assignment.refresh_from_db()
    assert (assignment.max_waiting_per_student, assignment.max_waiting_per_staff) == (4, 8)
    with pytest.raises(AssignmentInvalid) as caught:
        courses.update_assignment(
            assignment=assignment, actor=instructor, max_waiting_per_student=0
        )
    assert caught.value.errors["max_waiting_per_student"] == [
        "Unfinished submissions per student at once is 0. Expected an integer from 1 to "
        "2,147,483,647."
    ]
