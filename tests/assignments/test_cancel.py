"""Cancelling a submission from the site and the API: who may, what it answers, what it leaves.

A student may cancel their own queued or running submission; the course's instructors any of
its submissions; anyone else gets 404 (as for reading it). The message names who cancelled,
an audit entry records it, and the submission still counts toward the daily quota.
"""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from assignments.models import AuditEntry, Submission
from assignments.services.submissions import submissions_left_today
from tests.support.site_fixtures import PASSWORD, make_submission

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("uploads_dir")]

Status = Submission.Status


def api(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        key = Token.objects.get_or_create(user=user)[0].key
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def login(client: Client, user) -> Client:
    assert client.login(username=user.username, password=PASSWORD)
    return client


def running(assignment, student, status: str = Status.TRAINING) -> Submission:
    submission = make_submission(assignment, student, status=status, with_result=False)
    Submission.objects.filter(pk=submission.pk).update(worker="gpu0@host#1")
    return submission


def cancel_url(submission: Submission) -> str:
    return f"/api/v1/submissions/{submission.pk}/cancel/"


# --- API ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [Status.QUEUED, Status.BUILDING, Status.TRAINING])
def test_a_student_cancels_their_own_submission_through_the_api(student, assignment, status):
    submission = running(assignment, student, status)

    response = api(student).post(cancel_url(submission))

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["id"], body["status"]) == (submission.pk, "cancelled")
    submission.refresh_from_db()
    assert (submission.status, submission.worker) == (Status.CANCELLED, "")
    assert submission.message == "Cancelled by alice (the student)."
    entry = AuditEntry.objects.get(action="cancel")
    assert (entry.actor, entry.submission_id, entry.assignment_id) == (
        student,
        submission.pk,
        assignment.pk,
    )
    assert entry.details == {"previous": {"status": status}, "by": "student"}


def test_an_instructor_cancels_a_students_submission_through_the_api(
    instructor, student, assignment
):
    submission = running(assignment, student)

    response = api(instructor).post(cancel_url(submission))

    assert response.status_code == 200
    submission.refresh_from_db()
    assert submission.status == Status.CANCELLED
    assert submission.message == "Cancelled by prof (an instructor)."
    assert AuditEntry.objects.get(action="cancel").details["by"] == "instructor"


def test_others_cannot_cancel_and_learn_nothing(
    student, other_student, other_instructor, assignment
):
    submission = running(assignment, student)
    for user in (other_student, other_instructor):
        response = api(user).post(cancel_url(submission))
        assert response.status_code == 404, user
        assert response.json()["error"]["kind"] == "not_found"
    missing = api(student).post("/api/v1/submissions/999999/cancel/")
    assert missing.status_code == 404
    anonymous = api().post(cancel_url(submission))
    assert anonymous.status_code == 401
    submission.refresh_from_db()
    assert submission.status == Status.TRAINING
    assert not AuditEntry.objects.exists()


def test_session_clients_need_the_csrf_token(student, assignment):
    submission = running(assignment, student)
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(student)

    response = client.post(cancel_url(submission))

    assert response.status_code == 403
    assert "CSRF" in response.json()["error"]["message"]
    submission.refresh_from_db()
    assert submission.status == Status.TRAINING


@pytest.mark.parametrize(
    ("status", "reason"),
    [(Status.FINISHED, ""), (Status.FAILED, "rules"), (Status.CANCELLED, "")],
)
def test_cancelling_an_ended_submission_is_a_conflict(student, assignment, status, reason):
    submission = make_submission(assignment, student, status=status, reason=reason)

    response = api(student).post(cancel_url(submission))

    assert response.status_code == 409
    error = response.json()["error"]
    assert error["kind"] == "invalid_transition"
    assert error["message"] == (
        f"Submission #{submission.pk} is {status}. "
        "Expected a queued or running submission to cancel."
    )
    submission.refresh_from_db()
    assert submission.status == status
    assert not AuditEntry.objects.exists()


def test_reading_the_cancel_url_is_not_allowed(student, assignment):
    submission = running(assignment, student)
    assert api(student).get(cancel_url(submission)).status_code == 405


def test_a_cancelled_submission_still_counts_toward_the_daily_quota(student, assignment):
    submissions = [running(assignment, student, Status.QUEUED) for _ in range(2)]
    assert submissions_left_today(assignment=assignment, student_id=student.pk) == 1

    assert api(student).post(cancel_url(submissions[0])).status_code == 200

    assert submissions_left_today(assignment=assignment, student_id=student.pk) == 1
    detail = api(student).get(f"/api/v1/assignments/{assignment.slug}/").json()
    assert detail["submissions_left_today"] == 1


# --- Pages -------------------------------------------------------------------------------------


def test_the_submission_page_offers_the_student_a_cancel_button_while_grading_runs(
    client, student, assignment
):
    submission = running(assignment, student)
    login(client, student)

    page = client.get(reverse("submission_detail", args=[submission.pk])).content.decode()
    fragment = client.get(reverse("submission_fragment", args=[submission.pk])).content.decode()

    action = reverse("submission_cancel", args=[submission.pk])
    for html in (page, fragment):
        form = re.search(rf'<form method="post" action="{action}"[^>]*>(.*?)</form>', html, re.S)
        assert form, "no cancel form"
        assert 'name="csrfmiddlewaretoken"' in form.group(1)


def test_no_cancel_button_once_graded_or_for_someone_elses_view(
    client, student, instructor, assignment
):
    graded = make_submission(assignment, student)
    action = f'action="{reverse("submission_cancel", args=[graded.pk])}"'
    page = login(client, student).get(reverse("submission_detail", args=[graded.pk]))
    assert action not in page.content.decode()
    # The instructor has the manage page's Cancel among their actions instead.
    active = running(assignment, student)
    page = login(Client(), instructor).get(reverse("submission_detail", args=[active.pk]))
    html = page.content.decode()
    assert f'action="{reverse("cancel_submission", args=[active.pk])}"' in html
    assert f'action="{reverse("submission_cancel", args=[active.pk])}"' not in html


def test_a_student_cancels_from_the_page_and_sees_who_cancelled(client, student, assignment):
    submission = running(assignment, student)
    login(client, student)

    response = client.post(reverse("submission_cancel", args=[submission.pk]), follow=True)

    assert response.redirect_chain[-1][0] == reverse("submission_detail", args=[submission.pk])
    html = response.content.decode()
    assert f"Submission #{submission.pk} cancelled." in html
    assert "Cancelled by alice (the student)." in html
    assert f'action="{reverse("submission_cancel", args=[submission.pk])}"' not in html
    submission.refresh_from_db()
    assert submission.status == Status.CANCELLED
    assert AuditEntry.objects.get(action="cancel").actor == student


def test_the_page_needs_a_csrf_token(student, assignment):
    submission = running(assignment, student)
    client = Client(enforce_csrf_checks=True)
    login(client, student)

    response = client.post(reverse("submission_cancel", args=[submission.pk]))

    assert response.status_code == 403
    submission.refresh_from_db()
    assert submission.status == Status.TRAINING


def test_the_page_refuses_others_and_gets(client, student, other_student, assignment):
    submission = running(assignment, student)
    url = reverse("submission_cancel", args=[submission.pk])
    assert login(client, other_student).post(url).status_code == 404
    assert login(Client(), student).get(url).status_code == 405
    submission.refresh_from_db()
    assert submission.status == Status.TRAINING


def test_cancelling_an_ended_submission_from_the_page_explains_why(client, student, assignment):
    submission = make_submission(assignment, student)
    login(client, student)

    response = client.post(reverse("submission_cancel", args=[submission.pk]), follow=True)

    assert "Expected a queued or running submission to cancel." in response.content.decode()
    assert not AuditEntry.objects.exists()
