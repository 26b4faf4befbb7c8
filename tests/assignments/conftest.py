"""Fixtures of the site's tests: rows and uploads folder (defined in `site_fixtures`) and an
isolated broker folder."""

import pytest

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


@pytest.fixture
def broker_dir(tmp_path, settings):
    """The real filesystem broker, in a temporary folder: tasks sent on commit land here.

    The messages are real kombu messages (a worker pointed at the folder would run them); the
    tests count them to check what was enqueued, and the developer's var/broker stays clean.
    """
    from workers.celery import app

    if not str(app.conf.broker_url or "").startswith("filesystem://"):
        pytest.skip("the broker is not the filesystem transport")
    folder = tmp_path / "broker"
    (folder / "out").mkdir(parents=True)
    (folder / "processed").mkdir()
    (folder / "control").mkdir()
    previous = app.conf.broker_transport_options
    app.conf.broker_transport_options = {
        "data_folder_in": str(folder / "out"),
        "data_folder_out": str(folder / "out"),
        "processed_folder": str(folder / "processed"),
        "control_folder": str(folder / "control"),
        "store_processed": False,
    }
    _drop_connections(app)  # the next send connects with the options above
    yield folder / "out"
    app.conf.broker_transport_options = previous
    _drop_connections(app)


def _drop_connections(app) -> None:
    if app._pool is not None:
        app._pool.force_close_all()
        app._pool = None
    app.amqp._producer_pool = None
