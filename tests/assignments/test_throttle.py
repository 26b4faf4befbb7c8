"""The upload throttle: POSTs of submissions and batches have their own per-user rate.

Past `API_THROTTLE_UPLOADS` an upload is answered 429 with `Retry-After`, before anything is
stored; reads of the same endpoints, and other users' uploads, go on.
"""

from __future__ import annotations

import io
import zipfile

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from assignments.models import Submission
from tests.support.site_fixtures import model_json

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("uploads_dir")]


@pytest.fixture
def upload_rate(settings):
    """Uploads limited to 2 per hour (other rates as configured)."""
    framework = settings.REST_FRAMEWORK
    settings.REST_FRAMEWORK = {
        **framework,
        "DEFAULT_THROTTLE_RATES": {**framework["DEFAULT_THROTTLE_RATES"], "uploads": "2/hour"},
    }
    return 2


def api(user) -> APIClient:
    client = APIClient()
    key = Token.objects.get_or_create(user=user)[0].key
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def upload(client: APIClient, slug: str, data: bytes, name: str = "net.json"):
    handle = io.BytesIO(data)
    handle.name = name
    return client.post(
        f"/api/v1/assignments/{slug}/submissions/", {"file": handle}, format="multipart"
    )


def batch(client: APIClient, slug: str, files: dict[str, bytes]):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    buffer.seek(0)
    buffer.name = "batch.zip"
    return client.post(f"/api/v1/assignments/{slug}/batch/", {"file": buffer}, format="multipart")


def test_the_default_upload_rate_is_30_per_hour_separate_from_reads():
    from django.conf import settings

    from assignments.apis import BatchApi, SubmissionListCreateApi, UploadRateThrottle

    rates = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    assert rates["uploads"] == "30/hour"
    assert rates["user"] == "600/minute"
    for view in (SubmissionListCreateApi, BatchApi):
        assert UploadRateThrottle in view.throttle_classes


def test_uploads_past_the_rate_get_429_with_retry_after(student, assignment, upload_rate):
    assignment.daily_quota = 10
    assignment.save()
    client = api(student)
    for filters in range(1, upload_rate + 1):
        assert upload(client, assignment.slug, model_json(filters)).status_code == 201

    response = upload(client, assignment.slug, model_json(99))

    assert response.status_code == 429
    assert response.json()["error"]["kind"] == "throttled"
    assert "throttled" in response.json()["error"]["message"]
    retry_after = int(response["Retry-After"])
    assert 0 < retry_after <= 3600
    assert Submission.objects.count() == upload_rate  # refused before anything was stored


def test_reads_and_other_users_are_not_held_back(student, other_student, assignment, upload_rate):
    assignment.daily_quota = 10
    assignment.save()
    client = api(student)
    for filters in range(1, upload_rate + 2):
        upload(client, assignment.slug, model_json(filters))
    assert upload(client, assignment.slug, model_json(50)).status_code == 429

    listing = client.get(f"/api/v1/assignments/{assignment.slug}/submissions/")
    assert listing.status_code == 200 and listing.json()["count"] == upload_rate
    assert client.get(f"/api/v1/assignments/{assignment.slug}/").status_code == 200
    assert upload(api(other_student), assignment.slug, model_json(60)).status_code == 201


def test_batch_uploads_share_the_instructors_upload_rate(
    instructor, student, other_student, assignment, upload_rate
):
    client = api(instructor)
    for filters in range(1, upload_rate + 1):
        response = batch(client, assignment.slug, {"alice.json": model_json(filters)})
        assert response.status_code == 201, response.content

    response = batch(client, assignment.slug, {"bob.json": model_json(7)})

    assert response.status_code == 429 and response.has_header("Retry-After")
    assert not Submission.objects.filter(student=other_student).exists()
