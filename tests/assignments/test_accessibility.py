"""Accessibility and polish (issue 13, part 5): labelled inputs, a skip link, a live status
region, plain 404 pages on the Quick start, API docs with summaries and a way back, and a
batch client a student can download from their profile."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from io import BytesIO

import pytest
from django.urls import reverse

from tests.config.test_settings import DESCRIBE_SETTINGS, run_json
from tests.support.site_fixtures import make_submission

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("uploads_dir")]


def labelled_controls(html: str) -> tuple[set[str], set[str]]:
    """The ids of form controls, and the ids some `<label for=...>` names."""
    ids = set(re.findall(r'<(?:input|select|textarea)[^>]*\bid="([^"]+)"', html))
    hidden = set(re.findall(r'<input[^>]*type="hidden"[^>]*\bid="([^"]+)"', html))
    labelled = set(re.findall(r'<label[^>]*\bfor="([^"]+)"', html))
    return ids - hidden, labelled


def test_the_upload_input_has_a_label(client, student, assignment):
    client.force_login(student)
    html = client.get(reverse("assignment_detail", args=[assignment.slug])).content.decode()
    controls, labelled = labelled_controls(html)
    assert "id_file" in controls and controls <= labelled


def test_the_instructor_filters_are_labelled(client, instructor, assignment):
    client.force_login(instructor)
    html = client.get(reverse("manage_submissions", args=[assignment.slug])).content.decode()
    form = html[html.index('<form method="get" class="filters') :]
    form = form[: form.index("</form>")]
    controls, labelled = labelled_controls(form)
    assert controls == {"id_status", "id_reason", "id_student", "id_sort"} == labelled


def test_every_rules_editor_control_is_labelled(client, instructor, assignment):
    client.force_login(instructor)
    html = client.get(reverse("assignment_edit", args=[assignment.slug])).content.decode()
    controls, labelled = labelled_controls(html)
    assert "id_ruleset-metadata" in controls and "id_ruleset-import_text" in controls
    assert controls - labelled == set()


def test_pages_start_with_a_skip_link_to_the_content(client, student):
    client.force_login(student)
    html = client.get(reverse("home")).content.decode()
    body = html[html.index("<body>") :]
    assert body.split("\n")[1] == '<a class="skip-link" href="#main">Skip to the content</a>'
    assert '<main id="main" tabindex="-1">' in html


def test_the_live_status_is_announced(client, student, assignment):
    submission = make_submission(assignment, student, status="queued", with_result=False)
    client.force_login(student)
    html = client.get(reverse("submission_detail", args=[submission.pk])).content.decode()
    assert 'id="live-announcer" class="visually-hidden" role="status" aria-live="polite"' in html
    assert f'data-status-text="Submission #{submission.pk:,}: Queued"' in html


@pytest.mark.parametrize(("environment", "debug"), [({}, False), ({"DJANGO_DEBUG": "1"}, True)])
def test_the_quick_start_shows_debug_pages_only_when_asked(tmp_path, environment, debug):
    described = run_json(
        DESCRIBE_SETTINGS,
        settings_module="config.settings.local",
        var_dir=tmp_path,
        extra_env=environment,
    )
    assert described["debug"] is debug


def test_every_api_operation_has_a_summary_and_the_docs_link_back(client, student):
    client.force_login(student)
    schema = client.get("/api/schema/?format=json").json()
    operations = [
        (path, method, op)
        for path, methods in schema["paths"].items()
        for method, op in methods.items()
    ]
    assert len(operations) == 9
    assert [(p, m) for p, m, op in operations if not op.get("summary")] == []
    assert "[Back to the site](/)" in schema["info"]["description"]


def test_the_profile_offers_the_batch_client(client, student):
    client.force_login(student)
    html = client.get(reverse("profile")).content.decode()
    section = html[html.index('id="batch-client"') :]
    assert 'href="/client/grader-client.pyz"' in section
    assert "python grader-client.pyz submit --url http://testserver --token" in section


def test_the_downloaded_client_runs_with_python_alone(client, student, tmp_path):
    client.force_login(student)
    response = client.get(reverse("download_client"))
    assert response["Content-Disposition"] == 'attachment; filename="grader-client.pyz"'
    data = b"".join(response.streaming_content) if response.streaming else response.content
    names = zipfile.ZipFile(BytesIO(data)).namelist()
    assert names[0] == "__main__.py" and "assignments/client/cli.py" in names
    archive = tmp_path / "grader-client.pyz"
    archive.write_bytes(data)
    # An isolated interpreter in an empty folder: nothing of the project on its path.
    run = subprocess.run(
        [sys.executable, "-I", str(archive), "submit", "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "--assignment" in run.stdout and "--token" in run.stdout
