"""The read paths `bench/bench_site.py` times, checked for what they show: the leaderboard page
(50 a page, ranks across pages, the viewer's own rank on every page), the instructor's
submissions table (rows formatted in Python), and the API's submission list and leaderboard
(rows built directly, compared with what DRF's field-by-field walk gives)."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from rest_framework.serializers import ModelSerializer
from rest_framework.test import APIRequestFactory

from assignments import selectors, serializers
from assignments.models import Enrollment, Result, Submission
from tests.support.site_fixtures import make_submission, make_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("uploads_dir")]

BASE = timezone.now() - dt.timedelta(days=1)


def ranked_students(assignment, n: int) -> list:
    """`n` enrolled students with one passing submission each; student i has rank i + 1."""
    users = []
    for i in range(n):
        user = make_user(f"r{i:03d}")
        Enrollment.objects.create(course=assignment.course, user=user, display_name=f"R {i}")
        make_submission(
            assignment, user, accuracy=0.9 - i / 1000, created_at=BASE + dt.timedelta(minutes=i)
        )
        users.append(user)
    return users


def ranks(html: str) -> list[int]:
    return [
        int(r.replace(",", ""))
        for r in re.findall(
            r'<tr(?: class="me" id="you")?><td class="num" data-label="Rank">([\d,]+)</td>', html
        )
    ]


def test_leaderboard_page_shows_fifty_and_the_viewers_rank_on_every_page(client, assignment):
    users = ranked_students(assignment, 120)
    client.force_login(users[72])  # rank 73, on page 2
    url = reverse("leaderboard", args=[assignment.slug])
    first = client.get(url).content.decode()
    assert ranks(first) == list(range(1, 51))
    assert 'id="your-rank"' in first and "ranked <strong>73</strong> of 120" in first
    assert 'href="?page=2#you"' in first and 'class="me"' not in first
    assert "page 1 of 3 (120 ranked students)" in first
    second = client.get(url, {"page": 2}).content.decode()
    assert ranks(second) == list(range(51, 101))
    assert re.search(
        r'<tr class="me" id="you"><td class="num" data-label="Rank">73</td>'
        r'<td data-label="Student">R 72 ',
        second,
    )
    assert 'href="?page=2#you"' not in second  # already on it
    assert ranks(client.get(url, {"page": 99}).content.decode()) == list(range(101, 121))
    assert ranks(client.get(url, {"page": "x"}).content.decode()) == list(range(1, 51))


def test_leaderboard_page_without_a_ranked_viewer_or_more_than_one_page(
    client, assignment, student
):
    ranked_students(assignment, 3)
    client.force_login(student)
    html = client.get(reverse("leaderboard", args=[assignment.slug])).content.decode()
    assert ranks(html) == [1, 2, 3]
    assert 'id="your-rank"' not in html and 'class="pager"' not in html


def test_instructor_table_rows(client, instructor, student, other_student, assignment):
    done = make_submission(assignment, student, accuracy=0.91234, params=12345)
    Result.objects.filter(submission=done).update(score_override=88.5, override_reason="appeal")
    Submission.objects.filter(pk=done.pk).update(is_late=True)
    running = make_submission(assignment, other_student, status="training", with_result=False)
    failed = make_submission(
        assignment, student, status="failed", reason="rules", accuracy=None, passed=False
    )
    client.force_login(instructor)
    html = client.get(reverse("manage_submissions", args=[assignment.slug])).content.decode()
    rows = {
        int(pk): row
        for pk, row in re.findall(r'<tr>\s*<td><a href="/s/(\d+)/">(.*?)</tr>', html, re.S)
    }
    assert set(rows) == {done.pk, running.pk, failed.pk}
    cells = [
        re.sub(r"\s+", " ", c).strip()
        for c in re.findall(r"<td[^>]*>(.*?)</td>", rows[done.pk], re.S)
    ]
    local = timezone.localtime(Submission.objects.get(pk=done.pk).created_at)
    assert cells[:4] == [
        "alice",
        'model.json <span class="badge late">late</span>',
        local.strftime("%Y-%m-%d %H:%M:%S"),
        '<span class="badge status-finished">Finished</span>',
    ]
    assert cells[4] == '<span class="mark pass" title="passed">✔ pass</span>'
    assert cells[5:8] == ["91.23 %", "12,345", "88.5*"]
    assert f'action="/manage/s/{done.pk}/regrade/"' in rows[done.pk]
    assert "/cancel/" not in rows[done.pk]
    assert f'action="/manage/s/{running.pk}/cancel/"' in rows[running.pk]
    assert '<span class="badge status-training">Training</span>' in rows[running.pk]
    assert "Failed: Rules not met" in rows[failed.pk] and "✘ fail" in rows[failed.pk]


def test_instructor_table_escapes_what_students_named(client, instructor, student, assignment):
    submission = make_submission(assignment, student, accuracy=0.5)
    Submission.objects.filter(pk=submission.pk).update(original_name="<b onclick='x'>&.py")
    client.force_login(instructor)
    html = client.get(reverse("manage_submissions", args=[assignment.slug])).content.decode()
    assert "&lt;b onclick=&#x27;x&#x27;&gt;&amp;.py" in html and "<b onclick" not in html


def drf_walk(serializer, instance) -> dict:
    """What DRF's own ModelSerializer.to_representation gives for the same instance."""
    return ModelSerializer.to_representation(serializer, instance)


@pytest.mark.parametrize("zone", ["UTC", "America/Santiago"])
def test_api_submission_rows_match_drf(instructor, student, assignment, settings, zone):
    settings.TIME_ZONE = zone
    make_submission(assignment, student, accuracy=0.123456789, params=123457)
    make_submission(assignment, student, status="queued", with_result=False)
    Submission.objects.update(finished_at=timezone.now())
    make_submission(assignment, student, status="failed", passed=False, accuracy=None)
    request = APIRequestFactory().get("/api/v1/assignments/hw1/submissions/")
    request.user = instructor
    submissions = list(selectors.visible_submissions(user=instructor, assignment=assignment))
    for cls in (serializers.SubmissionListSerializer, serializers.SubmissionDetailSerializer):
        serializer = cls(context={"request": request})
        for submission in submissions:
            fast = serializer.to_representation(submission)
            assert fast == drf_walk(serializer, submission)
            assert list(fast) == list(drf_walk(serializer, submission))
    assert fast["url"] == f"http://testserver/api/v1/submissions/{submission.pk}/"
    assert fast["created_at"].endswith("Z") == (zone == "UTC")


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata"])
def test_api_leaderboard_entries_match_drf(student, other_student, assignment, settings, zone):
    settings.TIME_ZONE = zone
    make_submission(assignment, student, accuracy=0.7, params=None)
    make_submission(assignment, other_student, accuracy=0.9)
    serializer = serializers.LeaderboardEntrySerializer()
    for entry in selectors.leaderboard(assignment, viewer=student):
        fast = serializer.to_representation(entry)
        drf = serializers.serializers.Serializer.to_representation(serializer, entry)
        assert fast == drf and list(fast) == list(drf)


@pytest.mark.parametrize(
    "url_name", ["manage_submissions", "assignment_detail", "api-submission-list"]
)
def test_list_pages_read_no_column_per_row(client, instructor, student, assignment, url_name):
    """The lists read only `selectors.LIST_FIELDS`: a template or serializer reaching for
    another column would cost a query per row, and the count would grow with the rows."""

    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(reverse(url_name, args=[assignment.slug])).status_code == 200
        return len(ctx.captured_queries)

    client.force_login(student if url_name == "assignment_detail" else instructor)
    make_submission(assignment, student, accuracy=0.5)
    one = queries()
    for i in range(4):
        make_submission(assignment, student, accuracy=0.6, passed=bool(i % 2))
    make_submission(assignment, student, status="training", with_result=False)
    make_submission(assignment, student, status="failed", reason="rules", passed=False)
    assert queries() == one
