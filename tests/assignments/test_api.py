"""REST API v1: token auth, submissions, errors in one shape, leaderboard, grades, batch."""

from __future__ import annotations

import csv
import io
import zipfile

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from assignments.models import Submission
from tests.support.site_fixtures import make_submission, model_json

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("uploads_dir")]


def api(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.credentials(
            HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}"
        )
    return client


def file(name: str, data: bytes) -> io.BytesIO:
    handle = io.BytesIO(data)
    handle.name = name
    return handle


def submit(client: APIClient, slug: str, name: str, data: bytes):
    return client.post(
        f"/api/v1/assignments/{slug}/submissions/", {"file": file(name, data)}, format="multipart"
    )


def test_anonymous_requests_are_refused_in_the_error_shape():
    response = api().get("/api/v1/assignments/")
    assert response.status_code == 401
    assert response.json()["error"]["kind"] == "not_authenticated"


def test_lists_my_assignments_only(student, assignment, other_course):
    from assignments.models import Assignment

    Assignment.objects.create(course=other_course, slug="secret", title="S", rules_yaml="rules: []")
    data = api(student).get("/api/v1/assignments/").json()
    assert [a["slug"] for a in data["results"]] == ["hw1"]
    assert data["results"][0]["daily_quota"] == 3


def test_submit_and_read_back(student, assignment):
    client = api(student)
    response = submit(client, assignment.slug, "net.json", model_json())
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "queued" and body["queue_position"] == 1
    detail = client.get(f"/api/v1/submissions/{body['id']}/").json()
    assert detail["sha256"] == Submission.objects.get().sha256 and detail["result"] is None


@pytest.mark.parametrize(
    ("name", "data", "status", "error_code"),
    [
        ("net.txt", b"x", 400, "invalid_upload"),
        ("net.py", b"x = (", 400, "invalid_upload"),
    ],
)
def test_rejections_map_to_status_codes(student, assignment, name, data, status, error_code):
    response = submit(api(student), assignment.slug, name, data)
    assert response.status_code == status
    assert response.json()["error"]["kind"] == error_code
    assert response.json()["error"]["message"]


def test_duplicate_is_a_conflict_with_the_earlier_submission(student, assignment):
    client = api(student)
    first = submit(client, assignment.slug, "a.json", model_json()).json()
    response = submit(client, assignment.slug, "b.json", model_json())
    assert response.status_code == 409
    existing = response.json()["error"]["existing"]
    assert existing["id"] == first["id"]
    assert existing["url"].endswith(f"/api/v1/submissions/{first['id']}/")


def test_quota_is_429(student, assignment):
    client = api(student)
    for filters in (1, 2, 3):
        assert submit(client, assignment.slug, "n.json", model_json(filters)).status_code == 201
    response = submit(client, assignment.slug, "n.json", model_json(4))
    assert response.status_code == 429 and response.json()["error"]["kind"] == "quota_exceeded"


def test_missing_file_is_a_400_naming_the_field(student, assignment):
    response = api(student).post(
        f"/api/v1/assignments/{assignment.slug}/submissions/", {}, format="multipart"
    )
    assert response.status_code == 400 and "file" in response.json()["error"]["message"]


def test_submission_lists_are_scoped(student, other_student, instructor, assignment):
    make_submission(assignment, student, accuracy=0.5)
    make_submission(assignment, other_student, accuracy=0.6)
    url = f"/api/v1/assignments/{assignment.slug}/submissions/"
    assert [s["student"] for s in api(student).get(url).json()["results"]] == ["alice"]
    assert sorted(s["student"] for s in api(instructor).get(url).json()["results"]) == [
        "alice",
        "bob",
    ]


def test_submission_detail_carries_exact_numbers(student, assignment):
    submission = make_submission(assignment, student, accuracy=0.123456789, params=123457)
    data = api(student).get(f"/api/v1/submissions/{submission.pk}/").json()
    assert data["accuracy"] == 0.123456789 and data["params_total"] == 123457
    assert data["result"]["rules"][0]["id"] == "max_params"


def test_leaderboard(student, other_student, assignment):
    make_submission(assignment, student, accuracy=0.7)
    make_submission(assignment, other_student, accuracy=0.9)
    data = api(student).get(f"/api/v1/assignments/{assignment.slug}/leaderboard/").json()
    assert [(e["rank"], e["name"], e["is_you"]) for e in data["entries"]] == [
        (1, "Bob B.", False),
        (2, "Alice A.", True),
    ]
    assert "fewer parameters" in data["rule"]


def test_grades_csv_for_instructors_only(student, instructor, assignment):
    make_submission(assignment, student, accuracy=0.7)
    url = f"/api/v1/assignments/{assignment.slug}/grades.csv"
    assert api(student).get(url).status_code == 404
    response = api(instructor).get(url)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert rows == [rows[0]] and rows[0]["username"] == "alice" and rows[0]["accuracy"] == "0.7"


def test_grades_csv_keeps_partial_credit_and_overrides(
    student, other_student, instructor, assignment
):
    from assignments.services.courses import override_score

    partial = make_submission(assignment, student, status="failed", accuracy=0.5, passed=False)
    make_submission(assignment, student, status="failed", reason="build_error", with_result=False)
    overridden = make_submission(assignment, other_student, status="failed", passed=False)
    override_score(result=overridden.result, actor=instructor, score=80.0, reason="By hand")
    make_submission(assignment, other_student, status="queued", with_result=False)
    response = api(instructor).get(f"/api/v1/assignments/{assignment.slug}/grades.csv")
    rows = {r["username"]: r for r in csv.DictReader(io.StringIO(response.content.decode()))}
    assert (rows["alice"]["submission_id"], rows["alice"]["score"]) == (str(partial.pk), "50.0")
    assert (rows["bob"]["submission_id"], rows["bob"]["score"]) == (str(overridden.pk), "80.0")
    assert rows["bob"]["score_overridden"] == "yes"


def test_leaderboard_leaves_out_the_staff(student, instructor, assignment):
    make_submission(assignment, instructor, accuracy=0.99)
    make_submission(assignment, student, accuracy=0.7)
    for viewer in (student, instructor):
        data = api(viewer).get(f"/api/v1/assignments/{assignment.slug}/leaderboard/").json()
        assert [(e["rank"], e["name"], e["is_you"]) for e in data["entries"]] == [
            (1, "Alice A.", viewer == student)
        ]


@pytest.mark.parametrize(
    ("policy", "penalty", "late", "expected"),
    [("penalty", 0.5, True, 0.5), ("accept", 0.0, True, 0.0), ("penalty", 0.5, False, None)],
)
def test_submission_detail_says_the_late_penalty(
    student, assignment, policy, penalty, late, expected
):
    assignment.late_policy, assignment.late_penalty = policy, penalty
    assignment.save()
    submission = make_submission(assignment, student, accuracy=0.9)
    Submission.objects.filter(pk=submission.pk).update(is_late=late)
    data = api(student).get(f"/api/v1/submissions/{submission.pk}/").json()
    assert (data["is_late"], data["late_penalty"]) == (late, expected)


def zip_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_batch_upload(instructor, student, other_student, assignment):
    data = zip_of({"alice.json": model_json(1), "bob.json": model_json(2)})
    response = api(instructor).post(
        f"/api/v1/assignments/{assignment.slug}/batch/",
        {"file": file("b.zip", data)},
        format="multipart",
    )
    assert response.status_code == 201, response.content
    assert sorted(s["student"] for s in response.json()["submissions"]) == ["alice", "bob"]


def test_batch_problems_are_listed(instructor, student, assignment):
    data = zip_of({"alice.json": model_json(1), "zed.json": model_json(2)})
    response = api(instructor).post(
        f"/api/v1/assignments/{assignment.slug}/batch/",
        {"file": file("b.zip", data)},
        format="multipart",
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["kind"] == "batch_rejected"
    assert [p["file"] for p in error["problems"]] == ["zed.json"]
    assert Submission.objects.count() == 0


def test_batch_is_for_instructors_only(student, assignment):
    data = zip_of({"alice.json": model_json(1)})
    response = api(student).post(
        f"/api/v1/assignments/{assignment.slug}/batch/",
        {"file": file("b.zip", data)},
        format="multipart",
    )
    assert response.status_code == 404
    assert Submission.objects.count() == 0


def test_profile_creates_and_replaces_the_token(client, student):
    client.force_login(student)
    client.post("/profile/")
    first = Token.objects.get(user=student).key
    assert first in client.get("/profile/").content.decode()
    client.post("/profile/")
    assert Token.objects.get(user=student).key != first
    assert api().get("/api/v1/assignments/", HTTP_AUTHORIZATION=f"Token {first}").status_code == 401


def test_openapi_schema_is_valid_without_warnings(tmp_path):
    from django.core.management import call_command

    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    text = out.read_text()
    for path in ("/api/v1/assignments/{slug}/batch/", "/api/v1/submissions/{id}/"):
        assert path in text


def test_assignment_detail_says_how_many_submissions_are_left(student, assignment):
    client = api(student)
    submit(client, assignment.slug, "n.json", model_json(1))
    data = client.get(f"/api/v1/assignments/{assignment.slug}/").json()
    assert data["submissions_left_today"] == assignment.daily_quota - 1
    assert data["rules"][0]["text"] == "At most 20,000 parameters"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("net.py", "File `net.py` is empty (0 bytes). Expected Python source defining"),
        ("net.keras", "File `net.keras` is empty (0 bytes). Expected a .keras archive"),
        # The extension is checked first, as for a file with content.
        ("notes.txt", "File `notes.txt` has extension `.txt`. Expected one of"),
    ],
)
def test_an_empty_file_is_an_invalid_upload_naming_the_file_and_what_was_expected(
    student, assignment, name, expected
):
    response = submit(api(student), assignment.slug, name, b"")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["kind"] == "invalid_upload"
    assert error["message"].startswith(expected), error
    assert Submission.objects.count() == 0
