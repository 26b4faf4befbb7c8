"""A ready worker reports itself for the queue-health page, and its clean stop (workers.celery's
`worker_ready` / `worker_shutdown` handlers, `workers.presence`)."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from assignments.models import WorkerPresence

pytestmark = [pytest.mark.django_db(transaction=True)]


class Queues(dict):
    """What `app.amqp.queues` is: a mapping, with the names consumed in `consume_from`."""


def ready_consumer(node: str):
    app = SimpleNamespace(amqp=SimpleNamespace(queues=Queues()))
    app.amqp.queues.consume_from = {"gpu": object(), "maintenance": object()}
    return SimpleNamespace(app=app, hostname=node, controller=SimpleNamespace(concurrency=4))


def wait_for(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not reported in time"
        time.sleep(0.05)


def test_a_ready_worker_reports_itself_until_it_stops(settings, monkeypatch):
    from workers import celery as worker_app

    settings.GRADER_SANDBOX = "docker"
    settings.GRADER_WORKER_PRESENCE_SECONDS = 0.2
    monkeypatch.setenv("GRADER_GPU_IDS", "0,1")
    monkeypatch.setattr(worker_app, "_presence", None)

    worker_app._report_presence(sender=ready_consumer("gpu@host"))
    wait_for(lambda: WorkerPresence.objects.filter(node="gpu@host").exists())
    first = WorkerPresence.objects.get().last_seen
    wait_for(lambda: WorkerPresence.objects.get().last_seen > first)  # it keeps reporting

    row = WorkerPresence.objects.get()
    assert (row.queues, row.sandbox, row.gpus, row.concurrency) == (
        ["gpu", "maintenance"],
        "docker",
        ["0", "1"],
        4,
    )
    worker_app._report_stop()
    assert WorkerPresence.objects.get().stopped_at is not None
    worker_app._presence.join(timeout=5)
    assert not worker_app._presence.is_alive()
