"""Resource hogging: what one student can take from the rest of the course at a deadline.

One test per attack:

- flooding the queue with near-identical uploads (one comment changed): the fair order puts
  every other student's first upload before the flooder's second, and past the assignment's
  limit of unfinished submissions the upload is a 429 through the real API;
- declaring `batch_size: 1` so each grading holds a GPU worker up to the time limit: refused at
  the static check with the assignment's budget in the message, before any GPU time.
"""

from __future__ import annotations

import io

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from assignments.models import Assignment, Course, Enrollment, Submission
from assignments.services import dispatcher
from grader.loading import load_model_config
from tests.support.site_fixtures import PY_MODEL, RULES_YAML, make_user
from tests.workers import conftest as worker_fixtures
from tests.workers.conftest import FIXTURE_MODELS, make_assignment, make_submission

# The pipeline's fixtures, used here by name.
grading_settings = worker_fixtures.grading_settings
prepared_data_dir = worker_fixtures.prepared_data_dir
student = worker_fixtures.student

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]

Status = Submission.Status


def _api(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


def _post(user, slug: str, source: bytes):
    handle = io.BytesIO(source)
    handle.name = "model.py"
    return _api(user).post(
        f"/api/v1/assignments/{slug}/submissions/", {"file": handle}, format="multipart"
    )


@pytest.fixture
def course_with_two_students(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "uploads"
    course = Course.objects.create(slug="dl", title="DL")
    assignment = Assignment.objects.create(
        course=course, slug="smoke", title="Smoke", rules_yaml=RULES_YAML, daily_quota=10
    )
    users = []
    for name in ("student1", "student2"):
        user = make_user(name)
        Enrollment.objects.create(course=course, user=user)
        users.append(user)
    return assignment, users


def test_ten_uploads_differing_by_a_comment_hold_at_most_the_limit_and_not_the_next_student(
    course_with_two_students,
):
    assignment, (flooder, classmate) = course_with_two_students
    uploads = [PY_MODEL + f"# try {n}\n".encode() for n in range(10)]
    answers = [_post(flooder, assignment.slug, data).status_code for data in uploads]
    # The daily quota allows ten; the limit of unfinished submissions (2) refuses the rest.
    assert answers == [201, 201] + [429] * 8
    first = _post(classmate, assignment.slug, PY_MODEL)
    assert first.status_code == 201
    # The classmate's first upload is built before the flooder's second.
    assert first.json()["queue_position"] == 2
    claims = [dispatcher.claim_next(queue="preflight", worker=f"w@h#x{n}.1") for n in range(3)]
    order = [claim.submission_id for claim in claims]
    flooded = list(
        Submission.objects.filter(student=flooder).order_by("pk").values_list("pk", flat=True)
    )
    assert order == [flooded[0], first.json()["id"], flooded[1]]


def test_batch_size_one_is_refused_at_the_check_before_any_gpu_time(grading_settings, student):
    from workers.pipeline.stages import execute_check

    submission = make_submission(
        make_assignment(),  # the shipped smoke preset: min_batch_size 16, 5 epochs, 300 s
        student,
        source=FIXTURE_MODELS / "smoke_separable.json",
        status=Status.BUILDING,
        model_config=load_model_config(FIXTURE_MODELS / "smoke_separable.json"),
        training_config={"epochs": 5, "batch_size": 1},
    )

    assert execute_check(submission.pk, worker="cpu@h#c.1") == "failed"

    submission.refresh_from_db()
    assert (submission.status, submission.reason) == (Status.FAILED, "invalid_submission")
    assert submission.message == (
        "Training config `batch_size` is 1. Expected at least 16: the assignment's training "
        "budget is at most 5 epochs in batches of at least 16 examples, within 300 s. Declare "
        "a `batch_size` of 16 or more (larger batches take fewer steps per epoch)."
    )
    assert submission.training_at is None  # never reached a GPU worker
