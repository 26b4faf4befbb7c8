"""`manage.py load_demo`: the Quick start's demo course, created once and kept afterwards.

The expected assignments are read from the shipped preset files themselves, not restated here.
"""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path

import pytest
import yaml
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.core.management.base import CommandError

from assignments.management.commands.load_demo import (
    DEFAULT_DEMO_PASSWORD,
    DEMO_ASSIGNMENTS,
    presets_dir,
)
from assignments.models import Assignment, Course, Enrollment, Submission

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

ROOT = Path(__file__).resolve().parents[2]
DEMO_USERS = {"instructor": "instructor", "student1": "student", "student2": "student"}


@pytest.fixture(autouse=True)
def _isolated(settings, tmp_path, monkeypatch):
    settings.MEDIA_ROOT = tmp_path / "uploads"
    monkeypatch.delenv("DEMO_PASSWORD", raising=False)


def load_demo() -> str:
    out = io.StringIO()
    call_command("load_demo", stdout=out)
    return out.getvalue()


def shipped_preset(slug: str) -> dict:
    return yaml.safe_load((presets_dir() / f"{slug}.yaml").read_text(encoding="utf-8"))


def test_creates_the_course_the_three_assignments_and_enrolled_users():
    output = load_demo()

    course = Course.objects.get(slug="demo")
    assert sorted(course.assignments.values_list("slug", flat=True)) == sorted(
        ["smoke", "cifar10-separable", "cifar10-dilated"]
    )
    roles = {e.user.username: e.role for e in course.enrollments.select_related("user")}
    assert roles == DEMO_USERS
    for username in DEMO_USERS:
        user = get_user_model().objects.get(username=username)
        assert user.check_password(DEFAULT_DEMO_PASSWORD), f"{username} lacks the demo password"
    assert DEFAULT_DEMO_PASSWORD in output


@pytest.mark.parametrize("slug", DEMO_ASSIGNMENTS)
def test_each_assignment_carries_its_shipped_preset(slug):
    load_demo()

    preset = shipped_preset(slug)
    assignment = Assignment.objects.get(slug=slug)
    for field in ("title", "dataset", "mode", "max_epochs", "time_limit_seconds"):
        if field in preset:
            assert getattr(assignment, field) == preset[field], field
    assert yaml.safe_load(assignment.rules_yaml)["rules"] == preset["rules"]


def test_demo_password_comes_from_the_environment_when_set(monkeypatch):
    monkeypatch.setenv("DEMO_PASSWORD", "from-the-environment-42")
    load_demo()

    student = get_user_model().objects.get(username="student1")
    assert student.check_password("from-the-environment-42")
    assert not student.check_password(DEFAULT_DEMO_PASSWORD)


def test_second_run_keeps_submissions_edits_and_passwords():
    load_demo()
    student = get_user_model().objects.get(username="student1")
    student.set_password("chosen-by-the-student")
    student.save()
    smoke = Assignment.objects.get(slug="smoke")
    smoke.title = "Edited by the instructor"
    smoke.save()
    content = b"def build_model(input_shape, num_classes):\n    ...\n"
    submission = Submission.objects.create(
        assignment=smoke,
        student=student,
        file=ContentFile(content, name="model.py"),
        original_name="model.py",
        file_format=Submission.FileFormat.PYTHON,
        sha256=hashlib.sha256(content).hexdigest(),
        size_bytes=len(content),
    )

    output = load_demo()

    assert "nothing changed" in output
    assert Submission.objects.filter(pk=submission.pk, student=student).exists()
    assert Course.objects.count() == 1
    assert Assignment.objects.count() == len(DEMO_ASSIGNMENTS)
    assert Enrollment.objects.count() == len(DEMO_USERS)
    assert get_user_model().objects.count() == len(DEMO_USERS)
    student.refresh_from_db()
    assert student.check_password("chosen-by-the-student")
    assert Assignment.objects.get(slug="smoke").title == "Edited by the instructor"


def test_completes_a_partial_demo_without_touching_what_exists():
    existing = get_user_model().objects.create_user("student2", password="their-own-password")

    load_demo()

    existing.refresh_from_db()
    assert existing.check_password("their-own-password")
    assert Enrollment.objects.get(user=existing).role == Enrollment.Role.STUDENT


def test_missing_preset_fails_before_writing_anything(settings, tmp_path):
    settings.BASE_DIR = tmp_path  # no grader/presets there

    with pytest.raises(CommandError, match=r"Preset `smoke` not found"):
        load_demo()

    assert not Course.objects.exists()
    assert not get_user_model().objects.exists()


def test_quickstart_prints_the_same_default_password_as_the_command():
    script = (ROOT / "scripts" / "quickstart.sh").read_text(encoding="utf-8")
    match = re.search(r'DEMO_PASSWORD="\$\{DEMO_PASSWORD:-([^}]*)\}"', script)
    assert match, "scripts/quickstart.sh no longer sets a default DEMO_PASSWORD"
    assert match.group(1) == DEFAULT_DEMO_PASSWORD
