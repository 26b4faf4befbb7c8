"""What students and instructors read when a dataset is missing or the grader failed on its side:
students never see a host path or an operator command; instructors see the datasets, the
submissions waiting for each, and the command that installs a missing one."""

from __future__ import annotations

import pytest
from django.urls import reverse

from assignments.models import Submission
from assignments.presentation import INFRASTRUCTURE_MESSAGE
from assignments.services import data_wait
from tests.support.site_fixtures import make_submission

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("uploads_dir")]

Status = Submission.Status
OPERATOR_DETAIL = (
    "CIFAR-10 is not in `/srv/grader/data`. Expected `cifar-10-batches-py/`; run "
    "`manage.py fetch_dataset cifar10` on a host with internet access."
)


@pytest.fixture
def empty_data_dir(settings, tmp_path):
    settings.GRADER_DATA_DIR = tmp_path / "data"
    settings.GRADER_DATA_DIR.mkdir()
    return settings.GRADER_DATA_DIR


@pytest.fixture
def infrastructure_error(assignment, student) -> Submission:
    return make_submission(
        assignment,
        student,
        status=Status.ERROR,
        reason=Submission.Reason.INFRASTRUCTURE,
        with_result=False,
    )


def with_message(submission: Submission, message: str) -> Submission:
    Submission.objects.filter(pk=submission.pk).update(message=message)
    return submission


def test_a_student_reads_no_host_path_or_command_of_an_infrastructure_error(
    client, student, infrastructure_error
):
    with_message(infrastructure_error, OPERATOR_DETAIL)
    client.force_login(student)

    page = client.get(reverse("submission_detail", args=[infrastructure_error.pk])).content.decode()
    api = client.get(reverse("api-submission-detail", args=[infrastructure_error.pk])).json()

    assert INFRASTRUCTURE_MESSAGE in page and api["message"] == INFRASTRUCTURE_MESSAGE
    for text in (page, api["message"]):
        assert "/srv/grader" not in text and "manage.py" not in text


def test_the_instructor_reads_the_infrastructure_errors_details(
    client, instructor, infrastructure_error
):
    with_message(infrastructure_error, OPERATOR_DETAIL)
    client.force_login(instructor)

    page = client.get(reverse("submission_detail", args=[infrastructure_error.pk])).content.decode()
    api = client.get(reverse("api-submission-detail", args=[infrastructure_error.pk])).json()

    assert "<code>manage.py fetch_dataset cifar10</code>" in page
    assert api["message"] == OPERATOR_DETAIL


def test_a_waiting_submission_shows_its_checks_and_why_training_waits(client, student, assignment):
    submission = make_submission(assignment, student, status=Status.WAITING_DATA, passed=None)
    with_message(submission, data_wait.WAITING_MESSAGE)
    client.force_login(student)

    page = client.get(reverse("submission_detail", args=[submission.pk])).content.decode()

    assert "Training is not available yet: the course staff has been told." in page
    assert 'data-stage="training">Training: waiting for data' in page
    assert 'class="stage waiting"' in page
    assert 'id="rule-report"' in page and "max_params" in page
    assert 'data-active="true"' in page  # keeps polling: it trains once the data is in
    assert "Cancel this submission" in page


def test_the_dashboard_shows_a_missing_dataset_with_the_command_and_the_waiting_count(
    client, instructor, student, assignment, empty_data_dir
):
    assignment.dataset = "cifar10"
    assignment.save()
    make_submission(assignment, student, status=Status.WAITING_DATA, passed=None)
    client.force_login(instructor)

    for name, title in (("manage_dashboard", "Instructor"), ("queue_health", "Queue health")):
        page = client.get(reverse(name)).content.decode()
        assert f"<title>{title} · CNN Grader</title>" in page
        assert page.count('id="dataset-cifar10"') == 1
        row = page[page.index('id="dataset-cifar10"') :]
        row = row[: row.index("</tr>")]
        assert "not installed" in row
        assert '<code class="command">python manage.py fetch_dataset cifar10</code>' in row
        assert '<strong class="waiting-count">1</strong>' in row
        assert "airplane, automobile, bird" in row and "10:" in row


def test_an_installed_dataset_shows_its_size_and_images(
    client, instructor, assignment, empty_data_dir, settings
):
    from grader.datasets import prepare_dataset

    prepare_dataset("synthetic", empty_data_dir, key=settings.GRADER_DATASET_KEY)
    client.force_login(instructor)

    page = client.get(reverse("manage_dashboard")).content.decode()

    row = page[page.index('id="dataset-synthetic"') :]
    row = row[: row.index("</tr>")]
    assert "✔ installed" in row
    # 2,048 training images, 10 % held out with the key; 512 test images (registry.py).
    assert "1,843 / 512" in row
    size = sum(p.stat().st_size for p in (empty_data_dir / "prepared").rglob("*") if p.is_file())
    from django.template.defaultfilters import filesizeformat

    origin = (empty_data_dir / "prepared" / "synthetic" / "origin.json").stat().st_size
    assert filesizeformat(size - origin) in row


def test_students_never_see_the_dataset_cards(client, student, assignment):
    client.force_login(student)
    assert client.get(reverse("manage_dashboard")).status_code == 404
    assert client.get(reverse("queue_health")).status_code == 404
