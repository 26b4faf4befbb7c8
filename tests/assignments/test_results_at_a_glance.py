"""Results a student reads at a glance (issue 13, part 2): the confusion matrix and per-class
accuracy by class name, build errors line by line in the student's own file, the previous
result while a regrade runs, an override's reason, each assignment's best score, one name."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from assignments.heatmap import cell_colour, confusion_heatmap
from assignments.models import Enrollment, Result, Submission
from assignments.selectors.best import best_by_assignment
from assignments.services import courses as course_services
from assignments.services.grading import regrade_submission
from grader.datasets.registry import CIFAR10_CLASSES
from tests.support.site_fixtures import make_submission

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("uploads_dir")]

Status = Submission.Status


def page_of(client, user, submission) -> str:
    client.force_login(user)
    return client.get(reverse("submission_detail", args=[submission.pk])).content.decode()


# --- confusion matrix and per-class accuracy --------------------------------------------------


def test_cells_shade_from_white_to_the_accent_colour():
    assert cell_colour(0.0) == "#ffffff"
    assert cell_colour(1.0) == "#1f6feb"
    # Half way: (255 + 31) / 2 = 143, (255 + 111) / 2 = 183, (255 + 235) / 2 = 245.
    assert cell_colour(0.5) == f"#{143:02x}{183:02x}{245:02x}"


def test_each_cell_names_both_classes_the_count_and_the_rows_share():
    svg = str(confusion_heatmap([[7, 3], [0, 10]], ["cat", "dog"]))
    assert "<title>true cat, predicted dog: 3 (30.0% of cat)</title>" in svg
    assert "<title>true dog, predicted dog: 10 (100.0% of dog)</title>" in svg
    assert svg.count('class="predicted-label"') == 2 and svg.count('class="true-label"') == 2


def test_class_names_are_escaped_in_the_heat_map():
    svg = str(confusion_heatmap([[1]], ["<script>"]))
    assert "<script>" not in svg and "&lt;script&gt;" in svg


def test_the_result_page_names_the_datasets_classes(client, student, assignment):
    assignment.dataset = "cifar10"
    assignment.save()
    # Ten right per class, one taken for the next class.
    matrix = [[10 * (i == j) + (j == (i + 1) % 10) for j in range(10)] for i in range(10)]
    submission = make_submission(assignment, student, accuracy=0.9)
    Result.objects.filter(submission=submission).update(
        per_class_accuracy=[round(10 / 11, 6)] * 9 + [None], confusion_matrix=matrix
    )

    html = page_of(client, student, submission)

    per_class = html[html.index('class="per-class-accuracy"') :]
    per_class = per_class[: per_class.index("</table>")]
    assert "<td>airplane</td>" in per_class and "<td>truck</td>" in per_class
    assert "class 0" not in html
    assert "90.91 %" in per_class and "not in the test split" in per_class
    for name in CIFAR10_CLASSES:
        assert f'class="predicted-label">{name}</text>' in html
        assert f'class="true-label">{name}</text>' in html
    # The table the heat map folds away carries every count for screen readers.
    assert '<th scope="row">cat</th>' in html
    assert "<title>true cat, predicted deer: 1 (9.1% of cat)</title>" in html


# --- build errors -----------------------------------------------------------------------------

STUDENT_MODULE = """\
import keras
from keras import layers

def build_model(input_shape, num_classes):
    x = keras.Input(input_shape)
    y = layers.SeperableConv2D(8, 3)(x)
    return keras.Model(x, y)
"""
# What the build runner writes for that module (tests/workers/runner/test_build.py).
RUNNER_MESSAGE = (
    "Calling `build_model((32, 32, 3), 10)` raised an exception.\n"
    "Traceback (most recent call last):\n"
    '  File "submission.py", line 6, in build_model\n'
    "    y = layers.SeperableConv2D(8, 3)(x)\n"
    "AttributeError: module 'keras.layers' has no attribute 'SeperableConv2D'\n"
    "Did you mean `keras.layers.SeparableConv2D`?"
)


@pytest.fixture
def build_error(assignment, student) -> Submission:
    submission = make_submission(
        assignment,
        student,
        status=Status.FAILED,
        reason=Submission.Reason.BUILD_ERROR,
        with_result=False,
        data=STUDENT_MODULE.encode(),
    )
    Submission.objects.filter(pk=submission.pk).update(
        original_name="my_net.py", file_format=Submission.FileFormat.PYTHON, message=RUNNER_MESSAGE
    )
    return Submission.objects.get(pk=submission.pk)


def test_a_build_error_keeps_its_lines_and_names_the_students_file(client, student, build_error):
    html = page_of(client, student, build_error)

    summary = '<p class="message-text">Calling <code>build_model((32, 32, 3), 10)</code> raised'
    assert summary in html
    traceback = html[html.index('<pre class="traceback"') :]
    traceback = traceback[: traceback.index("</pre>")]
    lines = traceback.split(">", 1)[1].splitlines()
    assert lines[:4] == [
        "Traceback (most recent call last):",
        "  File &quot;my_net.py&quot;, line 6, in build_model",
        "<mark>    y = layers.SeperableConv2D(8, 3)(x)</mark>",
        "AttributeError: module &#x27;keras.layers&#x27; has no attribute "
        "&#x27;SeperableConv2D&#x27;",
    ]
    assert "submission.py" not in html


def test_a_build_error_shows_the_failing_line_in_the_source(client, student, build_error):
    html = page_of(client, student, build_error)

    excerpt = html[html.index('id="failing-source"') :]
    excerpt = excerpt[: excerpt.index("</figure>")]
    assert "<code>my_net.py</code>, line 6" in excerpt
    numbers = [int(n) for n in _between_all(excerpt, 'aria-hidden="true">', "</span>")]
    assert numbers == [4, 5, 6, 7]  # two lines either side, the file has 7
    assert (
        '<span class="line failing"><span class="lineno" aria-hidden="true">6</span>'
        "<mark>    y = layers.SeperableConv2D(8, 3)(x)</mark>"
    ) in excerpt
    hint = '<p class="hint-text" id="error-hint">Did you mean <code>keras.layers.SeparableConv2D'
    assert hint + "</code>?" in html


def _between_all(text: str, start: str, end: str) -> list[str]:
    found = []
    while start in text:
        text = text[text.index(start) + len(start) :]
        found.append(text[: text.index(end)])
    return found


# --- a regrade keeps the previous result in view ---------------------------------------------


def test_a_pending_regrade_shows_the_previous_result(client, student, instructor, assignment):
    submission = make_submission(assignment, student, accuracy=0.8125, params=1234)
    regrade_submission(submission_id=submission.pk, actor=instructor)

    html = page_of(client, student, submission)

    previous = html[html.index('id="previous-result"') :]
    previous = previous[: previous.index("</p>")]
    assert "being regraded" in previous
    assert "<strong>81.25 %</strong>" in previous and "1,234 parameters" in previous
    assert "score <strong>81.25</strong>" in previous
    assert "( trainable)" not in html and 'id="test-accuracy"' not in html
    assert "not decided yet" in html
    teacher = page_of(client, instructor, submission)
    assert "Computed score ." not in teacher and "No computed score yet." in teacher


def test_the_previous_result_goes_once_the_regrade_ends(client, student, instructor, assignment):
    submission = make_submission(assignment, student, accuracy=0.8125)
    regrade_submission(submission_id=submission.pk, actor=instructor)
    Submission.objects.filter(pk=submission.pk).update(status=Status.FINISHED)
    Result.objects.filter(submission=submission).update(accuracy=0.9, passed=True, score=90)

    html = page_of(client, student, submission)

    assert 'id="previous-result"' not in html
    assert '<dd id="test-accuracy">90.00 %</dd>' in html


def test_a_second_regrade_keeps_the_verdict_before_both(student, instructor, assignment):
    submission = make_submission(assignment, student, accuracy=0.5)
    regrade_submission(submission_id=submission.pk, actor=instructor)
    regrade_submission(submission_id=submission.pk, actor=instructor)
    assert Result.objects.get(submission=submission).previous["accuracy"] == 0.5


# --- overrides --------------------------------------------------------------------------------


def override(instructor, submission, *, share: bool) -> None:
    course_services.override_score(
        result=submission.result,
        actor=instructor,
        score=95,
        reason="Late penalty waived: medical note",
        share_reason=share,
    )


def test_a_student_reads_a_shared_override_reason(client, student, instructor, assignment):
    submission = make_submission(assignment, student, accuracy=0.5)
    override(instructor, submission, share=True)

    html = page_of(client, student, submission)

    assert "95 <span" in html
    assert "(set by an instructor: “Late penalty waived: medical note”)" in html


def test_a_private_override_reason_stays_with_the_instructors(
    client, student, instructor, assignment
):
    submission = make_submission(assignment, student, accuracy=0.5)
    override(instructor, submission, share=False)

    assert "medical note" not in page_of(client, student, submission)
    assert "(not shown to the student)" in page_of(client, instructor, submission)


# --- best score and status per assignment -----------------------------------------------------


def test_the_best_is_the_highest_score_not_the_latest(student, assignment):
    now = timezone.now()
    good = make_submission(assignment, student, accuracy=0.7, created_at=now - dt.timedelta(2))
    make_submission(assignment, student, accuracy=0.6, created_at=now - dt.timedelta(1))
    make_submission(
        assignment, student, status=Status.FAILED, reason="build_error", with_result=False
    )
    best = best_by_assignment(student=student, assignments=[assignment])[assignment.pk]
    assert (best.submission_id, best.score, best.status) == (good.pk, 70.0, "finished")


def test_an_override_counts_as_the_score(student, instructor, assignment):
    make_submission(assignment, student, accuracy=0.7)
    low = make_submission(assignment, student, accuracy=0.2, passed=False)
    override(instructor, low, share=False)
    best = best_by_assignment(student=student, assignments=[assignment])[assignment.pk]
    assert (best.submission_id, best.score, best.overridden) == (low.pk, 95, True)


def test_without_a_score_the_latest_submission_stands(student, assignment):
    make_submission(assignment, student, status=Status.QUEUED, with_result=False)
    latest = make_submission(assignment, student, status=Status.BUILDING, with_result=False)
    best = best_by_assignment(student=student, assignments=[assignment])[assignment.pk]
    assert (best.submission_id, best.score, best.status) == (latest.pk, None, "building")


def test_home_assignment_and_my_submissions_show_the_best_score(client, student, assignment):
    good = make_submission(assignment, student, accuracy=0.875)
    make_submission(assignment, student, status=Status.FAILED, reason="rules", accuracy=0.1)
    client.force_login(student)
    expected = (
        f'<a href="/s/{good.pk}/" title="submission #{good.pk:,}"><strong>87.5</strong></a> '
        '<span class="badge status-finished">Finished</span>'
    )
    for url in ("home", "my_submissions"):
        assert expected in client.get(reverse(url)).content.decode(), url
    page = client.get(reverse("assignment_detail", args=[assignment.slug])).content.decode()
    assert expected in page[page.index('id="my-best"') :]


def test_an_assignment_without_submissions_says_so(client, student, assignment):
    client.force_login(student)
    assert "not submitted yet" in client.get(reverse("home")).content.decode()


# --- one display name -------------------------------------------------------------------------


def _leaderboard_name(client, assignment) -> str:
    html = client.get(reverse("leaderboard", args=[assignment.slug])).content.decode()
    row = html[html.index('class="me"') :]
    return row.split('data-label="Student">')[1].split(" <span")[0]


@pytest.mark.parametrize("hidden", [False, True])
def test_the_profile_names_the_student_as_the_leaderboard_does(client, student, assignment, hidden):
    assignment.hide_names_until_deadline = hidden
    assignment.deadline = timezone.now() + dt.timedelta(days=3)
    assignment.save()
    make_submission(assignment, student, accuracy=0.8)
    enrollment = Enrollment.objects.get(user=student)
    client.force_login(student)

    shown = _leaderboard_name(client, assignment)
    profile = client.get(reverse("profile")).content.decode()

    assert shown == (enrollment.pseudonym if hidden else "Alice A.")
    assert 'Leaderboards show you as <strong class="leaderboard-name">Alice A.</strong>' in profile
    if hidden:
        assert f"except <strong>{shown}</strong> on Homework 1 until its deadline" in profile
