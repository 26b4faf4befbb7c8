"""Fixtures of the site's tests (rows, uploads folder), defined in `site_fixtures`."""

from tests.assignments.site_fixtures import (  # noqa: F401 - re-exported as fixtures
    assignment,
    course,
    instructor,
    other_course,
    other_instructor,
    other_student,
    student,
    uploads_dir,
)
