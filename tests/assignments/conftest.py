"""Fixtures of the site's tests (rows, uploads folder, broker folder), from `site_fixtures`."""

from tests.assignments.site_fixtures import (  # noqa: F401 - re-exported as fixtures
    assignment,
    broker_dir,
    course,
    instructor,
    other_course,
    other_instructor,
    other_student,
    student,
    uploads_dir,
)
