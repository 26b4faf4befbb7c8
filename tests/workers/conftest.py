"""Fixtures for the pipeline tests: rows, uploaded files, a prepared dataset, the Redis broker.

Everything is real: the database is whatever DATABASE_URL says (PostgreSQL in CI), the broker is
the test database of the real Redis server, the dataset is `grader.datasets`' synthetic one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.files import File
from django.utils import timezone

from assignments.models import Assignment, Course, Submission

FIXTURE_MODELS = Path(__file__).resolve().parents[1] / "fixtures" / "models"

# A small separable CNN as a student would submit it: it passes the `smoke` preset statically and
# learns the synthetic dataset within a few epochs.
SMOKE_MODULE = """\
import keras
from keras import layers


def build_model(input_shape, num_classes):
    inputs = keras.Input(shape=input_shape)
    x = layers.SeparableConv2D(16, 3, padding="same", activation="relu")(inputs)
    x = layers.MaxPooling2D()(x)
    x = layers.SeparableConv2D(32, 3, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.SeparableConv2D(32, 3, padding="same", activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="smoke_student")


def training_config():
    return {"epochs": 3, "batch_size": 32, "learning_rate": 0.01}
"""

# Breaks `separable_conv_used` (min_count 2) and `only`-style rules: plain 3x3 convolutions.
PLAIN_CONV_MODULE = """\
import keras
from keras import layers


def build_model(input_shape, num_classes):
    inputs = keras.Input(shape=input_shape)
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs)
"""

RAISING_MODULE = """\
def build_model(input_shape, num_classes):
    raise RuntimeError("the student's model is not finished")
"""


def smoke_rules_yaml(**overrides: Any) -> str:
    """The shipped `smoke` preset's YAML (optionally with top-level keys replaced)."""
    import yaml

    from grader.presets import preset_text

    text = preset_text("smoke")
    if not overrides:
        return text
    data = yaml.safe_load(text)
    data.update(overrides)
    return yaml.safe_dump(data, sort_keys=False)


@pytest.fixture
def grading_settings(settings: Any, tmp_path: Path, prepared_data_dir: Path) -> Any:
    """Uploads and job folders in a temporary directory; the shared prepared datasets."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.GRADER_JOBS_DIR = tmp_path / "jobs"
    settings.GRADER_DATA_DIR = prepared_data_dir
    return settings


@pytest.fixture(scope="session")
def prepared_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory with the synthetic dataset prepared once for the session."""
    from django.conf import settings

    from grader.datasets import prepare_dataset

    root = tmp_path_factory.mktemp("grader-data")
    # The key the pipeline prepares with, so its stages reuse this copy.
    prepare_dataset("synthetic", root, key=settings.GRADER_DATASET_KEY)
    return root


@pytest.fixture
def student(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user(username="student", password="x")


@pytest.fixture
def instructor(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user(username="instructor", password="x")


def make_assignment(**fields: Any) -> Assignment:
    """An assignment of a fresh course, on the `smoke` preset unless told otherwise."""
    course, _ = Course.objects.get_or_create(slug="pipeline", defaults={"title": "Pipeline"})
    values: dict[str, Any] = {
        "course": course,
        "slug": fields.pop("slug", "smoke"),
        "title": "Smoke",
        "dataset": "synthetic",
        "rules_yaml": smoke_rules_yaml(),
        "time_limit_seconds": 300,
        "memory_limit_mb": 3072,
        "max_epochs": 5,
    }
    values.update(fields)
    return Assignment.objects.create(**values)


def make_submission(
    assignment: Assignment,
    student: Any,
    *,
    source: str | Path,
    name: str | None = None,
    **fields: Any,
) -> Submission:
    """A queued submission whose file holds `source` (module text, or a path to copy)."""
    if isinstance(source, Path):
        data = source.read_bytes()
        name = name or source.name
    else:
        data = source.encode("utf-8")
        name = name or "model.py"
    file_format = {"py": "py", "json": "json", "keras": "keras"}[name.rsplit(".", 1)[1]]
    submission = Submission(
        assignment=assignment,
        student=student,
        original_name=name,
        file_format=file_format,
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        **{"queued_at": timezone.now(), **fields},
    )
    from django.core.files.base import ContentFile

    submission.file.save(name, File(ContentFile(data), name=name), save=False)
    submission.save()
    return submission


@pytest.fixture
def redis_broker(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The Celery app pointed at the test Redis database (emptied before and after).

    Yields a `redis.Redis` client of that database, to read the queued messages.
    """
    import redis

    from workers.celery import app

    # Celery prefers the CELERY_BROKER_URL environment variable over its configuration.
    monkeypatch.setenv("CELERY_BROKER_URL", redis_url)
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    saved = (app.conf.broker_url, app.conf.broker_transport_options)
    app.conf.broker_url = redis_url
    app.conf.broker_transport_options = {"visibility_timeout": 3600}
    _reset_connection_pools(app)
    try:
        yield client
    finally:
        app.conf.broker_url, app.conf.broker_transport_options = saved
        _reset_connection_pools(app)
        client.flushdb()
        client.close()


def _reset_connection_pools(app: Any) -> None:
    # Celery caches its broker connection and producer pools on first use (kombu keeps them
    # per broker URL, process-wide); a new broker URL needs fresh pools.
    from kombu import pools

    pools.reset()
    app._pool = None
    app.amqp._producer_pool = None


def queued_tasks(client: Any, queue: str) -> list[tuple[str, list[Any], dict[str, Any]]]:
    """The messages waiting in a Redis queue, oldest first: (task name, args, delivery options).

    Decoded from kombu's Redis message format (JSON envelope, base64 JSON body).
    """
    tasks = []
    for raw in reversed(client.lrange(queue, 0, -1)):  # kombu LPUSHes, consumers BRPOP
        envelope = json.loads(raw)
        body = json.loads(base64.b64decode(envelope["body"]))
        headers = envelope["headers"]
        tasks.append((headers["task"], list(body[0]), {"timelimit": headers.get("timelimit")}))
    return tasks


def copy_fixture_model(name: str, destination: Path) -> Path:
    """Copy a committed fixture model (tests/fixtures/models) to `destination`."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(FIXTURE_MODELS / name, destination)
    return destination
