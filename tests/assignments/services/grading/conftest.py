"""The grading services run with the workers' fixtures: a prepared dataset, the real broker.

These tests drive `assignments.services.grading` as the workers do, so they use the same rows
and settings as `tests/workers` (a plain student, the real Redis queue), not the site's.
"""

from tests.workers.conftest import (  # noqa: F401 - re-exported as fixtures
    grading_settings,
    instructor,
    prepared_data_dir,
    redis_broker,
    student,
)
