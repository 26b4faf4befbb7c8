"""Rows for the site's tests: a course with an instructor and students, an assignment, and
submissions with results. Test modules import the fixtures they use from here.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Callable

import pytest
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.utils import timezone

from assignments.models import Assignment, Course, Enrollment, Result, Submission

# A static-only rule set (decided without training), so results are meaningful without a GPU.
RULES_YAML = """\
rules:
  - id: max_params
    limit: 20000
    points: 2
  - id: max_dropout
    limit: 0.2
  - id: min_receptive_field
    limit: 3
"""

PASSWORD = "correct horse battery staple"


def tiny_model_config(filters: int = 4, name: str = "tiny") -> dict:
    """A small valid Keras 3 Sequential config: conv, global pooling, dense."""
    return {
        "module": "keras",
        "class_name": "Sequential",
        "config": {
            "name": name,
            "layers": [
                {
                    "module": "keras.layers",
                    "class_name": "InputLayer",
                    "config": {"batch_shape": [None, 16, 16, 3], "name": "input"},
                },
                {
                    "module": "keras.layers",
                    "class_name": "Conv2D",
                    "config": {
                        "name": "conv",
                        "filters": filters,
                        "kernel_size": [3, 3],
                        "strides": [1, 1],
                        "padding": "valid",
                        "dilation_rate": [1, 1],
                        "use_bias": True,
                        "activation": "relu",
                        "data_format": "channels_last",
                        "groups": 1,
                    },
                },
                {
                    "module": "keras.layers",
                    "class_name": "GlobalAveragePooling2D",
                    "config": {"name": "pool", "data_format": "channels_last", "keepdims": False},
                },
                {
                    "module": "keras.layers",
                    "class_name": "Dense",
                    "config": {
                        "name": "out",
                        "units": 4,
                        "use_bias": True,
                        "activation": "softmax",
                    },
                },
            ],
        },
    }


def model_json(filters: int = 4) -> bytes:
    return json.dumps(tiny_model_config(filters)).encode()


PY_MODEL = b"""\
import keras


def build_model(input_shape, num_classes):
    return keras.Sequential([
        keras.Input(input_shape),
        keras.layers.SeparableConv2D(8, 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(num_classes, activation="softmax"),
    ])
"""


def make_user(username: str, *, superuser: bool = False):
    model = get_user_model()
    if superuser:
        return model.objects.create_superuser(username, f"{username}@example.org", PASSWORD)
    return model.objects.create_user(username, f"{username}@example.org", PASSWORD)


@pytest.fixture
def course(db) -> Course:
    return Course.objects.create(slug="dl101", title="Deep Learning 101")


@pytest.fixture
def other_course(db) -> Course:
    return Course.objects.create(slug="cv201", title="Computer Vision 201")


@pytest.fixture
def instructor(course):
    user = make_user("prof")
    Enrollment.objects.create(course=course, user=user, role=Enrollment.Role.INSTRUCTOR)
    return user


@pytest.fixture
def student(course):
    user = make_user("alice")
    Enrollment.objects.create(course=course, user=user, display_name="Alice A.")
    return user


@pytest.fixture
def other_student(course):
    user = make_user("bob")
    Enrollment.objects.create(course=course, user=user, display_name="Bob B.")
    return user


@pytest.fixture
def other_instructor(other_course):
    user = make_user("otherprof")
    Enrollment.objects.create(course=other_course, user=user, role=Enrollment.Role.INSTRUCTOR)
    return user


@pytest.fixture
def assignment(course) -> Assignment:
    return Assignment.objects.create(
        course=course,
        slug="hw1",
        title="Homework 1",
        description="Build a **small** CNN.",
        dataset="synthetic",
        rules_yaml=RULES_YAML,
        daily_quota=3,
        # Room for the whole daily quota at once: the quota's tests upload more files than the
        # default limit of unfinished submissions (2), which test_waiting_limit.py tests.
        max_waiting_per_student=10,
    )


@pytest.fixture
def uploads_dir(settings, tmp_path):
    """Uploads go to a temporary MEDIA_ROOT, away from the developer's var/."""
    settings.MEDIA_ROOT = tmp_path / "uploads"
    return settings.MEDIA_ROOT


def make_submission(
    assignment: Assignment,
    student,
    *,
    status: str = Submission.Status.FINISHED,
    reason: str = "",
    accuracy: float | None = None,
    params: int | None = 1000,
    passed: bool | None = True,
    created_at: dt.datetime | None = None,
    log: str = "",
    rules: list | None = None,
    checks: dict | None = None,
    with_result: bool = True,
    data: bytes | None = None,
) -> Submission:
    """A stored submission (with a file) and, unless `with_result=False`, its result.

    The file holds unique bytes unless `data` is given (a real model for the pipeline driver).
    """
    data = data if data is not None else uuid.uuid4().bytes
    submission = Submission(
        assignment=assignment,
        student=student,
        original_name="model.json",
        file_format=Submission.FileFormat.JSON,
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        status=status,
        reason=reason,
        log=log,
        queued_at=timezone.now(),
    )
    submission.file.save("model.json", ContentFile(data), save=False)
    submission.save()
    if created_at is not None:
        Submission.objects.filter(pk=submission.pk).update(created_at=created_at)
        submission.created_at = created_at
    if with_result:
        Result.objects.create(
            submission=submission,
            rules_version=assignment.rules_version,
            passed=passed,
            accuracy=accuracy,
            params_total=params,
            params_trainable=params,
            score=None if accuracy is None else round(accuracy * 100, 3),
            rules=rules
            if rules is not None
            else [
                {
                    "id": "max_params",
                    "name": "max_params",
                    "passed": passed,
                    "measured": params,
                    "limit": 20000,
                    "message": "",
                    "hint": None,
                    "points": 2.0,
                },
            ],
            checks=checks or {},
        )
    return submission


class SentTasks:
    """Counts the task messages sent to the real broker since the fixture started."""

    def __init__(self, count: Callable[[], int]) -> None:
        self._count = count
        self._start = count()

    def count(self) -> int:
        return self._count() - self._start


@pytest.fixture
def broker_dir(tmp_path):
    """The real broker, isolated: tasks sent on commit are real messages, counted by tests.

    With the filesystem transport (the embedded default) messages land in a temporary folder,
    keeping the developer's var/broker clean; with Redis (CI) they go to the configured
    database and are counted by queue length.
    """
    from workers.celery import app

    url = str(app.conf.broker_url or "")
    if url.startswith("redis://"):
        import redis

        client = redis.Redis.from_url(url)
        queues = ("preflight", "gpu")
        client.delete(*queues)
        yield SentTasks(lambda: sum(client.llen(q) for q in queues))
        client.delete(*queues)
        return
    if not url.startswith("filesystem://"):
        pytest.fail(f"No way to count messages on broker {url.split('://')[0]}://.")
    folder = tmp_path / "broker"
    for sub in ("out", "processed", "control"):
        (folder / sub).mkdir(parents=True)
    previous = app.conf.broker_transport_options
    app.conf.broker_transport_options = {
        "data_folder_in": str(folder / "out"),
        "data_folder_out": str(folder / "out"),
        "processed_folder": str(folder / "processed"),
        "control_folder": str(folder / "control"),
        "store_processed": False,
    }
    _drop_connections(app)  # the next send connects with the options above
    yield SentTasks(lambda: len(list((folder / "out").iterdir())))
    app.conf.broker_transport_options = previous
    _drop_connections(app)


def _drop_connections(app) -> None:
    if app._pool is not None:
        app._pool.force_close_all()
        app._pool = None
    app.amqp._producer_pool = None
