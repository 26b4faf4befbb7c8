"""Adversarial checks of data isolation on the site and the API: one student never reaches
another's submissions, files or logs; an unpublished assignment and another course's stay
invisible; staff-only endpoints refuse students; leaderboard names stay hidden until the
deadline; student-controlled text is escaped on pages and neutralised in CSV exports."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from assignments.models import Assignment, AuditEntry, Enrollment, Result, Submission
from tests.support.site_fixtures import make_submission, make_user, model_json

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("uploads_dir")]

XSS = "<img src=x onerror=alert(1)>"


def api(user) -> APIClient:
    client = APIClient()
    token = Token.objects.get_or_create(user=user)[0].key
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def page(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def upload_file(name: str, data: bytes) -> io.BytesIO:
    handle = io.BytesIO(data)
    handle.name = name
    return handle


@pytest.fixture
def outsider(other_course):
    """A student of another course."""
    user = make_user("mallory")
    Enrollment.objects.create(course=other_course, user=user, display_name="Mallory")
    return user


@pytest.fixture
def unpublished(course) -> Assignment:
    from tests.support.site_fixtures import RULES_YAML

    return Assignment.objects.create(
        course=course, slug="draft", title="Draft", rules_yaml=RULES_YAML, is_published=False
    )


# --- unpublished assignments and other courses ----------------------------------------------


def assignment_urls(slug: str) -> list[str]:
    return [
        reverse("assignment_detail", args=[slug]),
        reverse("leaderboard", args=[slug]),
        reverse("supported_layers", args=[slug]),
        f"/api/v1/assignments/{slug}/",
        f"/api/v1/assignments/{slug}/submissions/",
        f"/api/v1/assignments/{slug}/leaderboard/",
    ]


def test_an_unpublished_assignment_is_invisible_to_students(student, unpublished, assignment):
    for url in assignment_urls(unpublished.slug):
        client = api(student) if url.startswith("/api/") else page(student)
        response = client.get(url)
        assert response.status_code == 404, url
        assert b"Draft" not in response.content, url
    listed = api(student).get("/api/v1/assignments/").json()["results"]
    assert [a["slug"] for a in listed] == ["hw1"]
    assert b"Draft" not in page(student).get(reverse("home")).content
    # Nor can a student submit to it, by the form or the API.
    response = api(student).post(
        f"/api/v1/assignments/{unpublished.slug}/submissions/",
        {"file": upload_file("m.json", model_json())},
        format="multipart",
    )
    assert response.status_code == 404
    response = page(student).post(
        reverse("assignment_detail", args=[unpublished.slug]),
        {"file": upload_file("m.json", model_json())},
    )
    assert response.status_code == 404
    assert not Submission.objects.exists()


def test_an_instructor_sees_their_unpublished_assignment(instructor, unpublished):
    for url in assignment_urls(unpublished.slug):
        client = api(instructor) if url.startswith("/api/") else page(instructor)
        assert client.get(url).status_code == 200, url


def test_a_student_of_another_course_sees_nothing_of_this_one(outsider, student, assignment):
    theirs = make_submission(assignment, student, accuracy=0.5, log="alice's log")
    urls = [
        *assignment_urls(assignment.slug),
        reverse("submission_detail", args=[theirs.pk]),
        reverse("submission_fragment", args=[theirs.pk]),
        reverse("submission_file", args=[theirs.pk]),
        f"/api/v1/submissions/{theirs.pk}/",
    ]
    for url in urls:
        client = api(outsider) if url.startswith("/api/") else page(outsider)
        response = client.get(url)
        assert response.status_code == 404, url
        assert b"alice" not in response.content.lower(), url
    assert api(outsider).get("/api/v1/assignments/").json()["results"] == []
    assert b"Homework 1" not in page(outsider).get(reverse("home")).content


def test_a_student_of_another_course_cannot_submit_here(outsider, assignment):
    response = api(outsider).post(
        f"/api/v1/assignments/{assignment.slug}/submissions/",
        {"file": upload_file("m.json", model_json())},
        format="multipart",
    )
    assert response.status_code == 404
    assert not Submission.objects.exists()


# --- one student against another's submissions (IDOR) ---------------------------------------


def test_a_token_cannot_reach_another_students_submission(student, other_student, assignment):
    theirs = make_submission(
        assignment,
        other_student,
        status=Submission.Status.TRAINING,
        with_result=False,
        log="bob's secret log",
    )
    client = api(student)
    for method, url in [
        ("get", f"/api/v1/submissions/{theirs.pk}/"),
        ("post", f"/api/v1/submissions/{theirs.pk}/cancel/"),
    ]:
        response = getattr(client, method)(url)
        assert response.status_code == 404, url
        assert response.json()["error"]["kind"] == "not_found"
        assert b"secret" not in response.content
    theirs.refresh_from_db()
    assert theirs.status == Submission.Status.TRAINING
    assert not AuditEntry.objects.exists()


def test_the_cancel_page_refuses_another_students_submission(student, other_student, assignment):
    theirs = make_submission(
        assignment, other_student, status=Submission.Status.QUEUED, with_result=False
    )
    response = page(student).post(reverse("submission_cancel", args=[theirs.pk]))
    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == Submission.Status.QUEUED


@pytest.mark.parametrize(
    "query",
    ["?student=bob", "?student_id={bob}", "?user={bob}", "?student__username=bob", "?all=1"],
)
def test_list_filters_never_widen_a_students_view(query, student, other_student, assignment):
    make_submission(assignment, student, accuracy=0.5)
    make_submission(assignment, other_student, accuracy=0.6)
    url = f"/api/v1/assignments/{assignment.slug}/submissions/" + query.format(bob=other_student.pk)
    rows = api(student).get(url).json()["results"]
    assert [r["student"] for r in rows] == ["alice"]


def test_submission_ids_in_the_leaderboard_open_nothing(student, other_student, assignment):
    make_submission(assignment, other_student, accuracy=0.9, log="bob's log")
    board = api(student).get(f"/api/v1/assignments/{assignment.slug}/leaderboard/").json()
    (entry,) = board["entries"]
    assert set(entry) == {
        "rank",
        "name",
        "is_you",
        "submission_id",
        "accuracy",
        "params_total",
        "submitted_at",
    }
    for url in (
        f"/api/v1/submissions/{entry['submission_id']}/",
        reverse("submission_file", args=[entry["submission_id"]]),
    ):
        client = api(student) if url.startswith("/api/") else page(student)
        assert client.get(url).status_code == 404


def test_a_student_never_reads_the_override_reason_or_stored_configs(student, assignment):
    mine = make_submission(assignment, student, accuracy=0.5)
    Submission.objects.filter(pk=mine.pk).update(
        model_config={"secret_model": 1}, training_config={"secret_training": 1}
    )
    Result.objects.filter(submission=mine).update(
        score_override=10, override_reason="copied from carol"
    )
    api_body = api(student).get(f"/api/v1/submissions/{mine.pk}/").content
    html = page(student).get(reverse("submission_detail", args=[mine.pk])).content
    for body in (api_body, html):
        assert b"copied from carol" not in body
    assert b"rules_yaml" not in api_body


# --- methods not meant to be allowed ---------------------------------------------------------


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_api_objects_cannot_be_changed_or_deleted(method, student, instructor, assignment):
    mine = make_submission(assignment, student, accuracy=0.5)
    urls = [
        "/api/v1/assignments/",
        f"/api/v1/assignments/{assignment.slug}/",
        f"/api/v1/assignments/{assignment.slug}/submissions/",
        f"/api/v1/assignments/{assignment.slug}/leaderboard/",
        f"/api/v1/submissions/{mine.pk}/",
        f"/api/v1/submissions/{mine.pk}/cancel/",
    ]
    for user in (student, instructor):
        for url in urls:
            response = getattr(api(user), method)(
                url, {"status": "finished", "slug": "x"}, format="json"
            )
            assert response.status_code == 405, (user, url)
    mine.refresh_from_db()
    assignment.refresh_from_db()
    assert mine.status == Submission.Status.FINISHED
    assert Submission.objects.filter(pk=mine.pk).exists() and assignment.slug == "hw1"


def test_get_never_cancels_or_regrades(student, instructor, assignment):
    mine = make_submission(assignment, student, status=Submission.Status.QUEUED, with_result=False)
    for user, url in [
        (student, reverse("submission_cancel", args=[mine.pk])),
        (instructor, reverse("cancel_submission", args=[mine.pk])),
        (instructor, reverse("regrade_submission", args=[mine.pk])),
        (instructor, reverse("regrade_all", args=[assignment.slug])),
    ]:
        assert page(user).get(url).status_code == 405, url
    assert api(student).get(f"/api/v1/submissions/{mine.pk}/cancel/").status_code == 405
    mine.refresh_from_db()
    assert mine.status == Submission.Status.QUEUED


def test_session_authenticated_api_writes_need_csrf(student, assignment):
    mine = make_submission(assignment, student, status=Submission.Status.QUEUED, with_result=False)
    client = Client(enforce_csrf_checks=True)
    client.force_login(student)
    response = client.post(f"/api/v1/submissions/{mine.pk}/cancel/")
    assert response.status_code == 403
    mine.refresh_from_db()
    assert mine.status == Submission.Status.QUEUED


# --- staff-only ------------------------------------------------------------------------------


def test_staff_only_pages_and_endpoints_refuse_students(student, assignment):
    mine = make_submission(assignment, student, status=Submission.Status.QUEUED, accuracy=0.5)
    for url in [
        reverse("manage_dashboard"),
        reverse("queue_health"),
        reverse("manage_submissions", args=[assignment.slug]),
        reverse("assignment_stats", args=[assignment.slug]),
        reverse("grades_csv", args=[assignment.slug]),
        reverse("assignment_export", args=[assignment.slug]),
        "/admin/",
    ]:
        response = page(student).get(url)
        assert response.status_code in (302, 404), url
        if response.status_code == 302:
            assert "/admin/login/" in response["Location"]
    client = api(student)
    assert client.get(f"/api/v1/assignments/{assignment.slug}/grades.csv").status_code == 404
    # Their own submission: an instructor's cancel and override stay closed to its student.
    assert (
        page(student)
        .post(reverse("override_score", args=[mine.pk]), {"score": "100", "reason": "self"})
        .status_code
        == 404
    )
    assert page(student).post(reverse("cancel_submission", args=[mine.pk])).status_code == 404
    assert page(student).post(reverse("regrade_submission", args=[mine.pk])).status_code == 404
    assert Result.objects.get(submission=mine).score_override is None
    assert not AuditEntry.objects.exists()


def test_an_instructor_of_one_course_cannot_batch_into_another(
    other_instructor, student, assignment
):
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("alice.json", model_json())
    response = api(other_instructor).post(
        f"/api/v1/assignments/{assignment.slug}/batch/",
        {"file": upload_file("b.zip", buffer.getvalue())},
        format="multipart",
    )
    assert response.status_code == 404
    assert not Submission.objects.exists()


# --- leaderboard names -----------------------------------------------------------------------


@pytest.mark.parametrize("deadline_days", [3, None])
def test_names_stay_hidden_until_the_deadline(deadline_days, student, other_student, assignment):
    assignment.hide_names_until_deadline = True
    assignment.deadline = (
        None if deadline_days is None else timezone.now() + dt.timedelta(days=deadline_days)
    )
    assignment.save()
    make_submission(assignment, student, accuracy=0.7)
    make_submission(assignment, other_student, accuracy=0.9)
    pseudonyms = dict(Enrollment.objects.values_list("user__username", "pseudonym"))
    board = api(student).get(f"/api/v1/assignments/{assignment.slug}/leaderboard/").json()
    assert board["names_hidden"] is True
    assert [e["name"] for e in board["entries"]] == [pseudonyms["bob"], pseudonyms["alice"]]
    html = page(student).get(reverse("leaderboard", args=[assignment.slug])).content.decode()
    for leaked in ("Bob B.", "bob", "Alice A."):
        assert leaked not in html and leaked not in json.dumps(board)
    assert pseudonyms["bob"] in html


def test_names_show_after_the_deadline(student, other_student, assignment):
    assignment.hide_names_until_deadline = True
    assignment.deadline = timezone.now() - dt.timedelta(minutes=1)
    assignment.save()
    make_submission(assignment, other_student, accuracy=0.9)
    board = api(student).get(f"/api/v1/assignments/{assignment.slug}/leaderboard/").json()
    assert [e["name"] for e in board["entries"]] == ["Bob B."]


# --- stored XSS ------------------------------------------------------------------------------


def hostile_checks() -> dict:
    return {
        "layers": [
            {
                "name": XSS,
                "class_name": f"Conv2D{XSS}",
                "output_shape": [16, 16, 4],
                "params": 112,
                "rf_size": 3,
                "rf_jump": 1,
            }
        ],
        "receptive_field": {
            "end_point": XSS,
            "size": 3,
            "jump": 1,
            "global": False,
            "input_size": [16, 16],
            "layers": [{"layer": XSS, "r_out": 3}],
        },
        "model": {"name": XSS, "input_shape": [16, 16, 3]},
    }


def hostile_rules() -> list[dict]:
    return [
        {
            "id": "max_dropout",
            "name": "max_dropout",
            "passed": False,
            "measured": XSS,
            "limit": 0.2,
            "message": f"Layer `{XSS}` (Dropout) has rate 0.5. Expected at most 0.2.",
            "hint": XSS,
            "points": 1.0,
        }
    ]


def test_student_controlled_strings_are_escaped_on_every_page(student, instructor, assignment):
    submission = make_submission(
        assignment,
        student,
        accuracy=0.9,
        log=f"{XSS}\n</pre><script>alert(2)</script>",
        rules=hostile_rules(),
        checks=hostile_checks(),
    )
    Submission.objects.filter(pk=submission.pk).update(
        original_name=f"{XSS}.json",
        message=f"build_model raised {XSS}",
        training_config={"optimizer": XSS, "loss": XSS},
        model_config={"class_name": "Sequential", "config": {"name": XSS}},
    )
    Enrollment.objects.filter(user=student).update(display_name=XSS)
    pages = {
        instructor: [
            reverse("submission_detail", args=[submission.pk]),
            reverse("submission_fragment", args=[submission.pk]),
            reverse("manage_submissions", args=[assignment.slug]),
            reverse("assignment_stats", args=[assignment.slug]),
            reverse("leaderboard", args=[assignment.slug]),
            reverse("manage_dashboard"),
        ],
        student: [
            reverse("submission_detail", args=[submission.pk]),
            reverse("submission_fragment", args=[submission.pk]),
            reverse("assignment_detail", args=[assignment.slug]),
            reverse("my_submissions"),
            reverse("leaderboard", args=[assignment.slug]),
            reverse("profile"),
        ],
    }
    for user, urls in pages.items():
        client = page(user)
        for url in urls:
            response = client.get(url)
            assert response.status_code == 200, url
            html = response.content.decode()
            assert "<img src=x" not in html, url
            assert "<script>alert" not in html, url
    detail = page(student).get(reverse("submission_detail", args=[submission.pk])).content
    assert b"&lt;img src=x onerror=alert(1)&gt;" in detail


def test_the_upload_message_escapes_the_file_name(student, assignment):
    response = page(student).post(
        reverse("assignment_detail", args=[assignment.slug]),
        {"file": upload_file(f"{XSS}.json", model_json())},
        follow=True,
    )
    html = response.content.decode()
    assert "<img src=x" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;.json" in html
    # The same file again: the duplicate warning, which carries a link, escapes both names.
    response = page(student).post(
        reverse("assignment_detail", args=[assignment.slug]),
        {"file": upload_file(f"{XSS}2.json", model_json())},
        follow=True,
    )
    html = response.content.decode()
    assert "identical to submission" in html
    assert "<img src=x" not in html


def test_the_download_name_cannot_split_headers(student, assignment):
    mine = make_submission(assignment, student, accuracy=0.5)
    Submission.objects.filter(pk=mine.pk).update(original_name='a"; filename="evil.html')
    response = page(student).get(reverse("submission_file", args=[mine.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"] == 'attachment; filename="a\\"; filename=\\"evil.html"'


# --- CSV exports -----------------------------------------------------------------------------


def grades_rows(client, assignment) -> list[list[str]]:
    response = client.get(f"/api/v1/assignments/{assignment.slug}/grades.csv")
    assert response.status_code == 200
    return list(csv.reader(io.StringIO(response.content.decode())))


@pytest.mark.parametrize(
    "name", ["=1+1", "+1+1", "-1+1", "@SUM(A1)", "\t=1+1", "\r=1+1", '=HYPERLINK("x")']
)
def test_grades_csv_cells_never_start_a_formula(name, instructor, student, assignment):
    Enrollment.objects.filter(user=student).update(display_name=name)
    make_submission(assignment, student, accuracy=0.75)
    rows = grades_rows(api(instructor), assignment)
    for row in rows:
        for cell in row:
            assert cell[:1] not in {"=", "+", "-", "@", "\t", "\r"}, (name, cell)


def test_grades_csv_neutralises_usernames_too(instructor, assignment):
    # Django usernames may start with + - @ (its validator allows [\w.@+-]).
    user = make_user("-2+3")
    Enrollment.objects.create(course=assignment.course, user=user)
    make_submission(assignment, user, accuracy=0.5)
    rows = grades_rows(api(instructor), assignment)
    assert [row[0] for row in rows[1:] if row[0].endswith("-2+3")] == ["'-2+3"]


def test_control_characters_of_a_batch_file_name_are_dropped(instructor, student, assignment):
    # A zip member may be named anything. Uploads through the form and the API lose their
    # non-printable characters in Django's multipart parser; a batch member must too, or a
    # terminal escape in a student's file name reaches the instructor's terminal (client
    # output) and every page and export that shows the name.
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("manifest.csv", 'file,username\n"ali\nce\x1b[2J.json",alice\n')
        archive.writestr("ali\nce\x1b[2J.json", model_json())
    response = api(instructor).post(
        f"/api/v1/assignments/{assignment.slug}/batch/",
        {"file": upload_file("b.zip", buffer.getvalue())},
        format="multipart",
    )
    assert response.status_code == 201, response.content
    submission = Submission.objects.get()
    assert submission.original_name == "alice[2J.json"
    for user in (instructor, student):
        download = page(user).get(reverse("submission_file", args=[submission.pk]))
        assert download.status_code == 200
        assert download["Content-Disposition"] == 'attachment; filename="alice[2J.json"'


# --- the command-line client's terminal --------------------------------------------------------


ESCAPES = "\x1b]0;owned\x07\x1b[2J\x1b[1A\r\x9b31m"


class StubApi:
    """What a site returns for a submission whose student wrote terminal escapes into an
    exception message and a layer name (both reach the instructor through `status`)."""

    def __init__(self, url: str, token: str) -> None:
        pass

    def get_json(self, path: str) -> dict:
        if path.endswith("/leaderboard/"):
            entry = {
                "rank": 1,
                "name": f"Eve{ESCAPES}",
                "is_you": False,
                "accuracy": 0.5,
                "params_total": 10,
                "submission_id": 1,
                "submitted_at": None,
            }
            return {"rule": "Ranked.", "entries": [entry]}
        return {
            "id": 7,
            "url": "http://site/api/v1/submissions/7/",
            "status": "failed",
            "reason": "rules",
            "passed": False,
            "message": f"build_model raised {ESCAPES}\nsecond{ESCAPES} line",
            "result": {
                "rules": [
                    {
                        "id": "max_dropout",
                        "name": f"max{ESCAPES}",
                        "passed": False,
                        "message": f"Layer `d{ESCAPES}` (Dropout) has rate 0.5.",
                    },
                ]
            },
        }


@pytest.mark.parametrize("command", [["status", "7"], ["leaderboard", "--assignment", "hw1"]])
def test_the_client_never_prints_server_text_control_characters(command, monkeypatch):
    from assignments.client import cli

    monkeypatch.setattr(cli, "Api", StubApi)
    output = io.StringIO()
    cli.main([command[0], "--url", "http://site", "--token", "t", *command[1:]], out=output)
    text = output.getvalue()
    assert "owned" in text  # the text itself is shown, its control characters are not
    assert not any((ord(c) < 0x20 and c not in "\n") or 0x7F <= ord(c) < 0xA0 for c in text), repr(
        text
    )
