"""The Celery app. Queues: `preflight` (CPU: build, check) and `gpu` (train, evaluate)."""

from __future__ import annotations

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("grader")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = (Queue("preflight"), Queue("gpu"), Queue("maintenance"))
app.autodiscover_tasks(["workers"])
