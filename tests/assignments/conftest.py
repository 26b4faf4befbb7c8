"""Fixtures of the site's tests (rows, uploads folder, broker folder), from `site_fixtures`."""

import pytest
from django.core.cache import cache

from tests.support.site_fixtures import (  # noqa: F401 - re-exported as fixtures
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


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    """API rate-limit counters live in the cache: each test starts with none."""
    cache.clear()
    yield
    cache.clear()
