"""`python manage.py load_demo`: a demo course with the shipped assignments and three users.

Idempotent: rows that exist are left as they are (an instructor's edits, submissions, and above
all passwords survive a second run); only what is missing is created.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from assignments.models import Assignment, Course, Enrollment
from assignments.services.assignment_settings import RULES_SETTING_KEYS

# Used only for the demo accounts, and only when they are first created. Documented in the
# README and printed by the command; scripts/quickstart.sh prints the same default.
DEFAULT_DEMO_PASSWORD = "grader-demo"  # noqa: S105 (public demo value, never for real accounts)
DEMO_COURSE_SLUG = "demo"
DEMO_COURSE_TITLE = "Deep Learning: CNNs (demo)"
DEMO_ASSIGNMENTS = ("smoke", "cifar10-separable", "cifar10-dilated")
DEMO_INSTRUCTOR = "instructor"
DEMO_STUDENTS = ("student1", "student2")

# Preset keys that are assignment settings; the rest of a preset is its rule set.
_SETTING_KEYS = ("title", "description", *RULES_SETTING_KEYS)


def demo_password() -> str:
    """The password given to demo accounts on creation: `DEMO_PASSWORD`, else the default."""
    return os.environ.get("DEMO_PASSWORD") or DEFAULT_DEMO_PASSWORD


def presets_dir() -> Path:
    """Where the shipped assignment presets live (`grader/presets/*.yaml`)."""
    return Path(settings.BASE_DIR) / "grader" / "presets"


@dataclass(frozen=True)
class DemoAssignment:
    """One shipped preset, split into assignment settings and the rule set's YAML."""

    slug: str
    settings: dict[str, Any]
    rules_yaml: str


def read_preset(slug: str) -> DemoAssignment:
    """Read `grader/presets/<slug>.yaml` into assignment settings and a rule-set document.

    Raises:
        CommandError: the file is missing, is not a mapping, or names another slug.
    """
    path = presets_dir() / f"{slug}.yaml"
    if not path.is_file():
        raise CommandError(f"Preset `{slug}` not found. Expected the file {path}.")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise CommandError(f"Preset {path} is not a YAML mapping.")
    if data.get("slug", slug) != slug:
        raise CommandError(f"Preset {path} has slug `{data['slug']}`. Expected `{slug}`.")
    assignment_settings = {key: data[key] for key in _SETTING_KEYS if key in data}
    rules_document = {k: v for k, v in data.items() if k not in (*_SETTING_KEYS, "slug")}
    rules_yaml = yaml.safe_dump(rules_document, sort_keys=False, allow_unicode=True)
    return DemoAssignment(slug=slug, settings=assignment_settings, rules_yaml=rules_yaml)


class Command(BaseCommand):
    help = (
        "Create the demo course (smoke, cifar10-separable, cifar10-dilated), the instructor "
        "`instructor` and the students `student1` and `student2`. Keeps existing data."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        from assignments.services.courses import create_assignment, create_course, enroll

        password = demo_password()
        presets = [read_preset(slug) for slug in DEMO_ASSIGNMENTS]  # fail before any write
        created: list[str] = []
        with transaction.atomic():
            users = {}
            for username in (DEMO_INSTRUCTOR, *DEMO_STUDENTS):
                user, was_created = get_user_model().objects.get_or_create(username=username)
                if was_created:
                    # Only a new account gets the demo password: never reset an existing one.
                    user.set_password(password)
                    user.save(update_fields=["password"])
                    created.append(f"user {username}")
                users[username] = user

            course = Course.objects.filter(slug=DEMO_COURSE_SLUG).first()
            if course is None:
                course = create_course(
                    slug=DEMO_COURSE_SLUG,
                    title=DEMO_COURSE_TITLE,
                    description="A demo course with the assignments shipped with the grader.",
                )
                created.append(f"course {DEMO_COURSE_SLUG}")

            for username, user in users.items():
                if Enrollment.objects.filter(course=course, user=user).exists():
                    continue
                role = (
                    Enrollment.Role.INSTRUCTOR
                    if username == DEMO_INSTRUCTOR
                    else Enrollment.Role.STUDENT
                )
                enroll(course=course, user=user, role=role, display_name=username)
                created.append(f"enrollment {username} ({role})")

            for preset in presets:
                if Assignment.objects.filter(slug=preset.slug).exists():
                    continue
                create_assignment(
                    course=course,
                    actor=users[DEMO_INSTRUCTOR],
                    slug=preset.slug,
                    rules_yaml=preset.rules_yaml,
                    **preset.settings,
                )
                created.append(f"assignment {preset.slug}")

        if created:
            self.stdout.write("Created: " + ", ".join(created) + ".")
        else:
            self.stdout.write("Demo data already present; nothing changed.")
        self.stdout.write(
            f"Demo course `{DEMO_COURSE_SLUG}`: assignments {', '.join(DEMO_ASSIGNMENTS)}.\n"
            f"Demo logins: {DEMO_INSTRUCTOR} (instructor), {', '.join(DEMO_STUDENTS)} "
            f"(students); password for newly created demo accounts: {password}\n"
            "Existing accounts keep their passwords."
        )
