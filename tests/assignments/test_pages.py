"""Pages: what each role sees and may do, uploads through the form, escaping, CSRF."""

from __future__ import annotations

import io
import re

import pytest
from django.test import Client
from django.urls import reverse

from assignments.models import AuditEntry, EpochMetric, Result, Submission
from tests.support.page_forms import form_values
from tests.support.site_fixtures import PASSWORD, make_submission, model_json

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("uploads_dir")]


def login(client: Client, user) -> Client:
    client.force_login(user)
    return client


def upload(client: Client, slug: str, name: str, data: bytes):
    file = io.BytesIO(data)
    file.name = name
    return client.post(reverse("assignment_detail", args=[slug]), {"file": file}, follow=True)


def test_login_required(client, assignment):
    response = client.get(reverse("assignment_detail", args=[assignment.slug]))
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_login_page_and_password_reset_send_mail(client, student, mailoutbox):
    assert client.get(reverse("login")).status_code == 200
    response = client.post(reverse("password_reset"), {"email": student.email})
    assert response.status_code == 302
    assert len(mailoutbox) == 1 and student.email in mailoutbox[0].to


def test_student_home_lists_only_their_courses(client, student, assignment, other_course):
    from assignments.models import Assignment

    Assignment.objects.create(
        course=other_course, slug="secret", title="Secret", rules_yaml="rules: []"
    )
    page = login(client, student).get(reverse("home")).content.decode()
    assert "Homework 1" in page and "Secret" not in page


def test_assignment_page_shows_rules_in_plain_words_and_quota(client, student, assignment):
    page = login(client, student).get(reverse("assignment_detail", args=[assignment.slug]))
    html = page.content.decode()
    assert "At most 20,000 parameters" in html
    assert "Every unit sees at least 3 px of the image" in html
    assert 'id="left-today">3<' in html
    assert "<strong>small</strong>" in html  # Markdown description


def test_upload_through_the_form_queues_and_redirects(client, student, assignment):
    response = upload(login(client, student), assignment.slug, "net.json", model_json())
    submission = Submission.objects.get()
    assert response.redirect_chain[-1][0] == reverse("submission_detail", args=[submission.pk])
    assert "is queued" in response.content.decode()


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("net.txt", b"x", "has extension `.txt`"),
        ("net.py", b"import os\n", "defines no top-level function `build_model`"),
        ("net.json", b"[1, 2", "net.json"),
    ],
)
def test_upload_rejections_are_explained(client, student, assignment, name, data, message):
    response = upload(login(client, student), assignment.slug, name, data)
    assert message in response.content.decode()
    assert Submission.objects.count() == 0


def test_duplicate_upload_links_the_earlier_submission(client, student, assignment):
    login(client, student)
    upload(client, assignment.slug, "net.json", model_json())
    first = Submission.objects.get()
    response = upload(client, assignment.slug, "again.json", model_json())
    html = response.content.decode()
    assert f'href="{reverse("submission_detail", args=[first.pk])}"' in html
    assert Submission.objects.count() == 1


def test_quota_rejection_on_the_page(client, student, assignment):
    login(client, student)
    for filters in (1, 2, 3):
        upload(client, assignment.slug, "n.json", model_json(filters))
    response = upload(client, assignment.slug, "n.json", model_json(9))
    assert "Expected at most 3 per day" in response.content.decode()


def test_submission_page_shows_rules_layers_curves_and_rf_chart(client, student, assignment):
    from grader.report import check_model
    from tests.support.site_fixtures import RULES_YAML, tiny_model_config

    checks = check_model(tiny_model_config(), RULES_YAML)
    submission = make_submission(
        assignment, student, accuracy=0.8125, checks=checks, rules=checks["rules"]
    )
    for epoch in (1, 2, 3):
        EpochMetric.objects.create(
            submission=submission, epoch=epoch, loss=1.0 / epoch, accuracy=0.3 * epoch,
            val_loss=1.1 / epoch, val_accuracy=0.25 * epoch, seconds=12.5,
        )  # fmt: skip
    html = (
        login(client, student)
        .get(reverse("submission_detail", args=[submission.pk]))
        .content.decode()
    )
    assert "81.25 %" in html
    assert 'class="chart epoch-loss"' in html and 'class="chart epoch-accuracy"' in html
    assert 'class="chart rf-growth"' in html and "image size 16 px" in html
    assert "<code>conv</code>" in html and "Conv2D" in html
    # The course formula, then what the units see: a 3x3 `valid` window, 3x3 pixels each.
    assert "<strong>3 \u00d7 3 px</strong>, jump 1 \u00d7 1 (course formula)." in html
    assert "Every unit sees <strong>3 \u00d7 3</strong> px of the image." in html
    for rule in checks["rules"]:
        assert f"<code>{rule['name']}</code>" in html
    assert "✔ pass" in html


def test_submission_page_says_why_a_receptive_field_was_not_computed(client, student, assignment):
    from grader.report import check_model
    from tests.support.site_fixtures import RULES_YAML, tiny_model_config

    config = tiny_model_config()
    layers = config["config"]["layers"]
    layers.insert(1, {"module": "keras.layers", "class_name": "UpSampling2D", "config": {
        "name": "up", "size": [2, 2], "interpolation": "bicubic"}})  # fmt: skip
    checks = check_model(config, RULES_YAML)
    assert checks["receptive_field"]["error"]
    submission = make_submission(assignment, student, checks=checks, rules=checks["rules"])
    html = login(client, student).get(reverse("submission_detail", args=[submission.pk]))
    text = html.content.decode()
    assert "Receptive field not computed: The receptive field at <code>conv</code>" in text
    assert "<code>up</code> (UpSampling2D) has interpolation=" in text


def test_log_and_display_names_are_escaped(client, instructor, student, assignment):
    from assignments.models import Enrollment

    Enrollment.objects.filter(user=student).update(display_name="<script>alert('n')</script>")
    submission = make_submission(
        assignment, student, accuracy=0.9, log="<script>alert('x')</script>"
    )
    login(client, student)
    detail = client.get(reverse("submission_detail", args=[submission.pk])).content.decode()
    fragment = client.get(reverse("submission_fragment", args=[submission.pk])).content.decode()
    board = client.get(reverse("leaderboard", args=[assignment.slug])).content.decode()
    for html in (detail, fragment, board):
        assert "<script>alert(" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in detail
    assert "&lt;script&gt;alert(&#x27;n&#x27;)&lt;/script&gt;" in board


def test_fragment_says_whether_to_keep_polling(client, student, assignment):
    active = make_submission(assignment, student, status="training", with_result=False)
    done = make_submission(assignment, student, accuracy=0.5)
    login(client, student)
    assert (
        'data-active="true"'
        in client.get(reverse("submission_fragment", args=[active.pk])).content.decode()
    )
    assert (
        'data-active="false"'
        in client.get(reverse("submission_fragment", args=[done.pk])).content.decode()
    )


# --- permissions ----------------------------------------------------------------------------


def student_pages(submission):
    return [
        reverse("submission_detail", args=[submission.pk]),
        reverse("submission_fragment", args=[submission.pk]),
        reverse("submission_file", args=[submission.pk]),
        f"/api/v1/submissions/{submission.pk}/",
    ]


def test_a_student_cannot_see_another_students_submission(
    client, student, other_student, assignment
):
    theirs = make_submission(assignment, other_student, accuracy=0.5, log="secret log")
    login(client, student)
    for url in student_pages(theirs):
        response = client.get(url)
        assert response.status_code == 404, url
        assert b"secret log" not in response.content


def test_the_owner_and_the_instructor_can_see_a_submission(client, student, instructor, assignment):
    mine = make_submission(assignment, student, accuracy=0.5)
    for user in (student, instructor):
        login(client, user)
        for url in student_pages(mine):
            assert client.get(url).status_code == 200, (user, url)


def test_file_download_returns_the_stored_bytes(client, student, assignment):
    mine = make_submission(assignment, student, accuracy=0.5)
    response = login(client, student).get(reverse("submission_file", args=[mine.pk]))
    assert b"".join(response.streaming_content) == mine.file.open("rb").read()
    assert response["Content-Disposition"].startswith("attachment")


def instructor_get_urls(assignment, submission):
    return [
        reverse("manage_submissions", args=[assignment.slug]),
        reverse("assignment_edit", args=[assignment.slug]),
        reverse("assignment_export", args=[assignment.slug]),
        reverse("grades_csv", args=[assignment.slug]),
        reverse("assignment_stats", args=[assignment.slug]),
        reverse("assignment_create", args=[assignment.course.slug]),
        reverse("assignment_import", args=[assignment.course.slug]),
        f"/api/v1/assignments/{assignment.slug}/grades.csv",
    ]


def instructor_post_urls(assignment, submission):
    return [
        reverse("regrade_all", args=[assignment.slug]),
        reverse("regrade_submission", args=[submission.pk]),
        reverse("cancel_submission", args=[submission.pk]),
        reverse("override_score", args=[submission.pk]),
        f"/api/v1/assignments/{assignment.slug}/batch/",
    ]


def test_a_student_cannot_reach_instructor_pages_or_actions(client, student, assignment):
    submission = make_submission(assignment, student, accuracy=0.5)
    login(client, student)
    for url in instructor_get_urls(assignment, submission):
        assert client.get(url).status_code in (403, 404), url
    for url in instructor_post_urls(assignment, submission):
        assert client.post(url, {"score": "100", "reason": "me"}).status_code in (403, 404), url
    result = Result.objects.get(submission=submission)
    assert result.score_override is None
    assert not AuditEntry.objects.exists()
    assert client.get(reverse("manage_dashboard")).status_code == 404


def test_an_instructor_reaches_only_their_own_courses(
    client, other_instructor, student, assignment
):
    submission = make_submission(assignment, student, accuracy=0.5, log="secret log")
    login(client, other_instructor)
    for url in [*instructor_get_urls(assignment, submission), *student_pages(submission)]:
        assert client.get(url).status_code == 404, url
    for url in instructor_post_urls(assignment, submission):
        assert client.post(url, {"score": "1", "reason": "x"}).status_code in (403, 404), url
    assert client.get(reverse("assignment_detail", args=[assignment.slug])).status_code == 404
    assert client.get(reverse("leaderboard", args=[assignment.slug])).status_code == 404


def test_instructor_pages_render_for_the_instructor(client, instructor, student, assignment):
    submission = make_submission(assignment, student, accuracy=0.5)
    login(client, instructor)
    for url in instructor_get_urls(assignment, submission):
        assert client.get(url).status_code == 200, url
    assert client.get(reverse("manage_dashboard")).status_code == 200


def test_csrf_is_enforced_on_forms(student, assignment):
    client = Client(enforce_csrf_checks=True)
    client.force_login(student)
    file = io.BytesIO(model_json())
    file.name = "net.json"
    response = client.post(reverse("assignment_detail", args=[assignment.slug]), {"file": file})
    assert response.status_code == 403
    assert Submission.objects.count() == 0
    # With the token from the page, the same post goes through.
    page = client.get(reverse("assignment_detail", args=[assignment.slug]))
    token = page.context["csrf_token"]
    file.seek(0)
    response = client.post(
        reverse("assignment_detail", args=[assignment.slug]),
        {"file": file, "csrfmiddlewaretoken": token},
    )
    assert response.status_code == 302 and Submission.objects.count() == 1


def test_login_form_needs_csrf(student):
    client = Client(enforce_csrf_checks=True)
    response = client.post(reverse("login"), {"username": "alice", "password": PASSWORD})
    assert response.status_code == 403


# --- instructor actions ---------------------------------------------------------------------


def test_override_records_the_reason_in_the_audit_trail(client, instructor, student, assignment):
    submission = make_submission(assignment, student, accuracy=0.5)
    login(client, instructor)
    client.post(
        reverse("override_score", args=[submission.pk]),
        {"score": "95", "reason": "Regraded by hand"},
    )
    result = Result.objects.get(submission=submission)
    assert result.score_override == 95.0 and result.override_reason == "Regraded by hand"
    entry = AuditEntry.objects.get(action="score.override")
    assert entry.actor == instructor and entry.details["reason"] == "Regraded by hand"
    assert entry.details["previous"] is None and entry.details["computed_score"] == result.score


def test_the_audit_trail_reads_as_text_with_a_previous_rule_set_folded(
    client, instructor, student, assignment
):
    from assignments.services import courses

    previous = assignment.rules_yaml
    changed = previous.replace("20000", "30000")
    assert changed != previous
    courses.update_assignment(
        assignment=assignment, actor=instructor, rules_yaml=changed, daily_quota=9
    )
    stats = login(client, instructor).get(reverse("assignment_stats", args=[assignment.slug]))
    html = stats.content.decode()
    assert "fields: daily_quota, rules_yaml<br>rules_version: 2" in html
    assert "<details><summary>previous</summary><pre>" in html
    assert "{&#x27;" not in html and "{'" not in html  # no Python dict text


def test_override_without_reason_is_refused(client, instructor, student, assignment):
    submission = make_submission(assignment, student, accuracy=0.5)
    login(client, instructor)
    response = client.post(
        reverse("override_score", args=[submission.pk]), {"score": "95", "reason": ""}, follow=True
    )
    assert "Override not saved" in response.content.decode()
    assert Result.objects.get(submission=submission).score_override is None


def test_instructor_creates_an_assignment_with_validated_rules(client, instructor, course):
    login(client, instructor)
    url = reverse("assignment_create", args=[course.slug])
    data = {
        "slug": "hw2", "title": "HW 2", "dataset": "synthetic", "mode": "train",
        "time_limit_seconds": 600, "memory_limit_mb": 2048, "max_epochs": 5,
        "late_policy": "accept", "late_penalty": 0, "daily_quota": 5,
        "leaderboard_policy": "best", "is_published": "on",
        "rules-TOTAL_FORMS": 1, "rules-INITIAL_FORMS": 1,
        "rules-0-rule": "max_params", "rules-0-shown_rule": "max_params",
        "rules-0-limit": "-5", "rules-0-count": "total", "rules-0-points": "1",
    }  # fmt: skip
    response = client.post(url, data)
    assert response.status_code == 200
    assert "Rule 1 (`max_params`): `limit` must be an integer &gt;= 1" in response.content.decode()
    data["rules-0-limit"] = "5000"
    response = client.post(url, data)
    assert response.status_code == 302
    from assignments.models import Assignment

    created = Assignment.objects.get(slug="hw2")
    assert created.rules_version == 1 and "limit: 5000" in created.rules_yaml
    assert AuditEntry.objects.filter(action="assignment.created", assignment=created).exists()


def test_grades_csv_download(client, instructor, student, other_student, assignment):
    make_submission(assignment, student, accuracy=0.75)
    response = login(client, instructor).get(reverse("grades_csv", args=[assignment.slug]))
    lines = response.content.decode().splitlines()
    assert lines[0].startswith("username,display_name,submission_id")
    assert any(line.startswith("alice,Alice A.,") and ",0.75," in line for line in lines)
    assert any(line.startswith("bob,") for line in lines)


def test_grades_csv_neutralises_spreadsheet_formulas(client, instructor, student, assignment):
    from assignments.models import Enrollment

    Enrollment.objects.filter(user=student).update(display_name="=HYPERLINK(1)")
    make_submission(assignment, student, accuracy=0.75)
    content = login(client, instructor).get(reverse("grades_csv", args=[assignment.slug])).content
    assert b",'=HYPERLINK(1)," in content


def _csv_rows(client, assignment) -> dict[str, dict]:
    import csv

    response = client.get(reverse("grades_csv", args=[assignment.slug]))
    assert response.status_code == 200
    return {r["username"]: r for r in csv.DictReader(io.StringIO(response.content.decode()))}


def test_grades_csv_keeps_an_override_after_a_later_upload_fails(
    client, instructor, student, assignment
):
    graded = make_submission(
        assignment, student, status="failed", reason="rules", accuracy=0.5, passed=False
    )
    teacher = login(Client(), instructor)
    teacher.post(
        reverse("override_score", args=[graded.pk]), {"score": "80", "reason": "Partial credit"}
    )
    page = teacher.get(reverse("submission_detail", args=[graded.pk])).content.decode()
    shown = '80 <span class="override" id="override-reason">(set by an instructor: “Partial credit”'
    assert shown in page
    # The student uploads again: queued first, then the build fails.
    broken = b"def build_model(input_shape, num_classes):\n    raise ValueError('oops')\n"
    response = upload(login(client, student), assignment.slug, "broken.py", broken)
    assert "is queued" in response.content.decode()
    later = Submission.objects.exclude(pk=graded.pk).get(student=student)
    for status, reason in [("queued", ""), ("failed", "build_error"), ("cancelled", "")]:
        Submission.objects.filter(pk=later.pk).update(status=status, reason=reason)
        row = _csv_rows(teacher, assignment)["alice"]
        assert (row["submission_id"], row["status"], row["score"], row["score_overridden"]) == (
            str(graded.pk),
            "failed",
            "80.0",
            "yes",
        ), status


def test_staff_submissions_stay_off_the_leaderboard_and_stats(
    client, instructor, student, assignment
):
    own = make_submission(assignment, instructor, accuracy=0.99)
    make_submission(assignment, student, accuracy=0.7)
    board = login(client, student).get(reverse("leaderboard", args=[assignment.slug]))
    html = board.content.decode()
    assert "Alice A." in html and "prof" not in html.split('<table class="leaderboard reflow">')[1]
    assert "You are ranked <strong>1</strong> of 1 " in html
    teacher = login(Client(), instructor)
    stats = teacher.get(reverse("assignment_stats", args=[assignment.slug])).content.decode()
    assert "<p>1 student submitted" in stats and "finished: 1<" in stats
    staff_board = teacher.get(reverse("leaderboard", args=[assignment.slug])).content.decode()
    assert 'id="your-rank"' not in staff_board
    # Staff still see their own submission.
    assert teacher.get(reverse("submission_detail", args=[own.pk])).status_code == 200


@pytest.mark.parametrize(
    ("policy", "penalty", "late", "note"),
    [
        ("penalty", 0.5, True, "Late: score \u00d7 0.5 (50 % late penalty)."),
        ("penalty", 0.25, True, "Late: score \u00d7 0.75 (25 % late penalty)."),
        ("accept", 0.0, True, "Late: accepted without penalty."),
        ("penalty", 0.5, False, None),
    ],
)
def test_submission_page_says_it_was_late_and_the_penalty(
    client, student, assignment, policy, penalty, late, note
):
    import datetime as dt

    from django.utils import timezone

    assignment.late_policy, assignment.late_penalty = policy, penalty
    assignment.deadline = timezone.now() - dt.timedelta(days=1)
    assignment.save()
    submission = make_submission(assignment, student, accuracy=0.9)
    Submission.objects.filter(pk=submission.pk).update(is_late=late)
    Result.objects.filter(submission=submission).update(score=100 * (1 - penalty) if late else 100)
    login(client, student)
    page = client.get(reverse("submission_detail", args=[submission.pk])).content.decode()
    fragment = client.get(reverse("submission_fragment", args=[submission.pk])).content.decode()
    if note is None:
        assert 'id="late-note"' not in page and "Late:" not in fragment
        return
    assert 'id="late-note"><span class="badge late">late</span>' in page and note in page
    if penalty:
        assert f'<span class="badge late" id="late-penalty">{note}</span>' in fragment
    else:
        assert 'id="late-penalty"' not in fragment


# --- production settings ----------------------------------------------------------------------


def test_production_settings_have_secure_cookies_and_a_csp(monkeypatch):
    import importlib
    import sys

    monkeypatch.setenv("DJANGO_SECRET_KEY", "x" * 50)
    monkeypatch.setenv("DJANGO_ALLOWED_HOSTS", "grader.example.org")
    sys.modules.pop("config.settings.production", None)
    production = importlib.import_module("config.settings.production")
    assert production.SESSION_COOKIE_SECURE and production.CSRF_COOKIE_SECURE
    assert production.DEBUG is False
    assert "script-src 'self'" in production.CONTENT_SECURITY_POLICY
    assert (
        "unsafe-inline"
        not in production.CONTENT_SECURITY_POLICY.split("script-src")[1].split(";")[0]
    )
    assert "assignments.middleware.ContentSecurityPolicyMiddleware" in production.MIDDLEWARE


def test_csp_header_is_sent_when_configured(client, settings, student, assignment):
    settings.CONTENT_SECURITY_POLICY = "default-src 'self'; script-src 'self'"
    response = login(client, student).get(reverse("assignment_detail", args=[assignment.slug]))
    assert response["Content-Security-Policy"] == "default-src 'self'; script-src 'self'"
    assert "<script>" not in response.content.decode()  # no inline scripts to be blocked


def test_api_docs_page_uses_local_assets(client, student):
    login(client, student)
    html = client.get("/api/docs/").content.decode()
    assert "cdn" not in html.lower() and "/static/drf_spectacular_sidecar/" in html
    schema = client.get("/api/schema/")
    assert (
        schema.status_code == 200 and b"/api/v1/assignments/{slug}/submissions/" in schema.content
    )


def test_queue_health_page_shows_waiting_work(client, instructor, student, assignment):
    waiting = make_submission(assignment, student, status="queued", with_result=False)
    html = login(client, instructor).get(reverse("queue_health")).content.decode()
    assert '<td>preflight</td><td class="num">1</td>' in html
    assert f"#{waiting.pk}" in html


def test_regrade_and_cancel_from_the_submission_page(client, instructor, student, assignment):
    submission = make_submission(assignment, student, accuracy=0.5)
    login(client, instructor)
    client.post(reverse("regrade_submission", args=[submission.pk]))
    submission.refresh_from_db()
    assert submission.status == Submission.Status.QUEUED
    client.post(reverse("cancel_submission", args=[submission.pk]))
    submission.refresh_from_db()
    assert submission.status == Submission.Status.CANCELLED
    actions = set(AuditEntry.objects.values_list("action", flat=True))
    assert {"regrade", "cancel"} <= actions


def test_submissions_table_filters_and_sorts(
    client, instructor, student, other_student, assignment
):
    low = make_submission(assignment, student, accuracy=0.3)
    high = make_submission(assignment, other_student, accuracy=0.9)
    failed = make_submission(
        assignment, student, status="failed", reason="rules", with_result=False
    )
    login(client, instructor)
    url = reverse("manage_submissions", args=[assignment.slug])

    def shown(**params) -> list[int]:
        return [s.pk for s in client.get(url, params).context["page"].object_list]

    assert shown(sort="accuracy") == [high.pk, low.pk, failed.pk]
    assert shown(status="failed") == [failed.pk]
    assert shown(reason="rules") == [failed.pk]
    assert set(shown(student="bob")) == {high.pk}
    assert shown(sort="oldest") == [low.pk, high.pk, failed.pk]


def test_assignment_form_fills_rules_from_a_preset(client, instructor, assignment):
    from grader.presets import load_preset
    from grader.rules import load_ruleset

    login(client, instructor)
    url = reverse("assignment_edit", args=[assignment.slug])
    data = form_values(client.get(url).content)
    data.update({"ruleset-preset": "smoke", "action": "preset"})
    filled = form_values(client.post(url, data).content)  # the rows, not saved yet
    assignment.refresh_from_db()
    assert assignment.rules_version == 1
    response = client.post(url, {**filled, "action": "save"})
    assert response.status_code == 302
    assignment.refresh_from_db()
    assert load_ruleset(assignment.rules_yaml).rules == load_preset("smoke").rules
    assert assignment.dataset == "synthetic" and assignment.max_epochs == 5
    assert assignment.rules_version == 2


def test_yaml_export_and_import_through_the_pages(client, instructor, assignment, course):
    login(client, instructor)
    exported = client.get(reverse("assignment_export", args=[assignment.slug])).content.decode()
    copy = exported.replace("slug: hw1", "slug: hw1-copy").replace(
        "title: Homework 1", "title: Copy"
    )
    response = client.post(reverse("assignment_import", args=[course.slug]), {"text": copy})
    assert response.status_code == 302
    from assignments.models import Assignment

    imported = Assignment.objects.get(slug="hw1-copy")
    from grader.rules import load_ruleset

    assert imported.title == "Copy"
    assert load_ruleset(imported.rules_yaml) == load_ruleset(assignment.rules_yaml)


def test_only_the_api_docs_page_allows_inline_styles(client, settings, student):
    settings.CONTENT_SECURITY_POLICY = "default-src 'self'; script-src 'self'; style-src 'self'"
    login(client, student)
    docs = client.get("/api/docs/")["Content-Security-Policy"]
    assert docs == "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'"
    assert client.get("/")["Content-Security-Policy"].endswith("style-src 'self'")


def test_assignment_form_lists_every_rule_the_engine_knows(client, instructor, assignment):
    from grader.rules import RULES

    html = login(client, instructor).get(reverse("assignment_edit", args=[assignment.slug]))
    reference = html.content.decode().split('id="rule-reference"')[1]
    for rule_id in RULES:
        assert f"<code>{rule_id}</code>" in reference


def test_editing_keeps_the_deadline(client, instructor, assignment):
    import datetime as dt

    from django.utils import timezone

    assignment.deadline = timezone.make_aware(dt.datetime(2030, 1, 31, 23, 59))
    assignment.save()
    login(client, instructor)
    url = reverse("assignment_edit", args=[assignment.slug])
    html = client.get(url).content.decode()
    assert 'value="2030-01-31T23:59"' in html
    data = form_values(html)
    assert data["deadline"] == "2030-01-31T23:59"
    data["title"] = "Renamed"
    assert client.post(url, data).status_code == 302
    assignment.refresh_from_db()
    assert assignment.title == "Renamed" and assignment.deadline == timezone.make_aware(
        dt.datetime(2030, 1, 31, 23, 59)
    )


def test_an_oversized_upload_is_refused_by_the_form(client, settings, student, assignment):
    settings.GRADER_MAX_UPLOAD_BYTES = 50
    response = upload(login(client, student), assignment.slug, "net.json", model_json())
    assert (
        f"is {len(model_json()):,} bytes. Expected at most 50 bytes." in response.content.decode()
    )
    assert Submission.objects.count() == 0


def test_not_found_page_uses_the_site_layout(client, student):
    response = login(client, student).get("/s/999999/")
    assert response.status_code == 404
    assert "There is nothing here, or it is not yours to see." in response.content.decode()


@pytest.mark.parametrize("custom", [False, True])
def test_submission_page_shows_the_graders_own_validation_measurement(
    client, student, assignment, custom
):
    checks = {
        "validation": {"accuracy": 0.4375, "loss": 1.2, "num_examples": 160},
        "custom_training": custom,
    }
    submission = make_submission(assignment, student, accuracy=0.8125, checks=checks)
    EpochMetric.objects.create(
        submission=submission, epoch=1, loss=0.1, accuracy=0.99, val_loss=0.1,
        val_accuracy=0.99, seconds=1.0,
    )  # fmt: skip

    html = login(client, student).get(reverse("submission_detail", args=[submission.pk]))
    text = html.content.decode()

    assert 'id="validation-accuracy">43.75 %' in text
    assert "held-out 160 training images" in text
    assert ("decides <code>min_val_accuracy</code>" in text) is custom


def test_submission_page_without_a_validation_measurement_shows_none(client, student, assignment):
    submission = make_submission(assignment, student, accuracy=0.8125, checks={})
    text = login(client, student).get(reverse("submission_detail", args=[submission.pk]))
    assert 'id="validation-accuracy"' not in text.content.decode()


def _rule(rule_id, passed, measured, limit, message):
    return {
        "id": rule_id, "name": rule_id, "passed": passed, "measured": measured,
        "limit": limit, "message": message, "hint": None, "points": 1.0,
    }  # fmt: skip


def rule_report(html: str) -> str:
    start = html.index('id="rule-report"')
    return html[start : html.index("</table>", start)]


def test_rules_never_decided_on_an_ended_submission_show_not_run_not_pending(
    client, student, assignment
):
    # Training is skipped after a failed static rule: its rules stay undecided for good.
    rules = [
        _rule("max_params", False, 416095, 20000, "The model has 416,095 parameters."),
        _rule("max_epochs", None, None, 5, "Decided after training (at most 5 epochs)."),
        _rule("min_val_accuracy", None, None, 0.6, "Decided after training (60.00%)."),
    ]
    failed = make_submission(
        assignment, student, status=Submission.Status.FAILED, reason=Submission.Reason.RULES,
        passed=False, rules=rules,
    )  # fmt: skip
    html = login(client, student).get(reverse("submission_detail", args=[failed.pk]))
    report = rule_report(html.content.decode())
    assert "pending" not in report and "Decided after training" not in report
    assert report.count("\u2013 not run</span>") == 2
    assert report.count("Not decided: grading ended before this rule was checked") == 2


def test_rules_still_to_be_decided_on_a_running_submission_show_pending(
    client, student, assignment
):
    rules = [_rule("max_epochs", None, None, 5, "Decided after training (at most 5 epochs).")]
    running = make_submission(
        assignment, student, status=Submission.Status.TRAINING, passed=None, rules=rules
    )
    html = login(client, student).get(reverse("submission_detail", args=[running.pk]))
    report = rule_report(html.content.decode())
    assert "… pending" in report and "Decided after training" in report
    assert "not run" not in report


def test_rule_report_shows_accuracies_as_percentages_like_the_rule_list(
    client, student, assignment
):
    rules = [
        _rule("min_val_accuracy", True, 0.9375, 0.6, "Best validation accuracy 93.75%."),
        _rule("min_test_accuracy", False, 0.5, 0.85, "Test accuracy 50.00%."),
        _rule("max_dropout", True, 0.1, 0.2, "Dropout 0.1."),
    ]
    done = make_submission(assignment, student, accuracy=0.9, passed=False, rules=rules)
    html = login(client, student).get(reverse("submission_detail", args=[done.pk]))
    cells = re.findall(
        r'<td class="num" data-label="[^"]+">([^<]*)</td>', rule_report(html.content.decode())
    )
    assert cells == ["93.75 %", "60.00 %", "50.00 %", "85.00 %", "0.1", "0.2"]


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (Submission.Status.FAILED, "Nothing logged."),
        (Submission.Status.TRAINING, "Nothing logged yet."),
    ],
)
def test_an_empty_log_says_yet_only_while_grading_goes_on(
    client, student, assignment, status, expected
):
    submission = make_submission(assignment, student, status=status, with_result=False)
    html = login(client, student).get(reverse("submission_detail", args=[submission.pk]))
    assert f'<p class="muted">{expected}</p>' in html.content.decode()


def test_an_empty_upload_names_the_file_and_what_was_expected(client, student, assignment):
    response = upload(login(client, student), assignment.slug, "model.py", b"")
    html = response.content.decode()
    assert "File `model.py` is empty (0 bytes). Expected Python source defining" in html
    assert "The submitted file is empty." not in html
    assert Submission.objects.count() == 0


def test_names_quoted_in_messages_show_as_code_and_stay_escaped(client, student, assignment):
    rules = [
        _rule(
            "max_dropout", False, 0.5, 0.2,
            "Layer `drop<b>1` (Dropout) has rate 0.5. Expected at most 0.2.",
        ),
    ]  # fmt: skip
    failed = make_submission(
        assignment, student, status=Submission.Status.FAILED, reason=Submission.Reason.RULES,
        passed=False, rules=rules,
    )  # fmt: skip
    Submission.objects.filter(pk=failed.pk).update(
        message="`build_model` must return a keras.Model; `x` is not one."
    )
    html = login(client, student).get(reverse("submission_detail", args=[failed.pk]))
    text = html.content.decode()
    assert "Layer <code>drop&lt;b&gt;1</code> (Dropout)" in rule_report(text)
    assert "<code>build_model</code> must return a keras.Model; <code>x</code> is not" in text
    assert "`" not in rule_report(text)
