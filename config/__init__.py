"""Project configuration: settings, URLs, WSGI/ASGI and the Celery app's import hook."""

# Importing the Celery app here makes `@shared_task` and `transaction.on_commit` enqueues use it
# as soon as Django starts (the pattern Celery's Django guide recommends).
from workers.celery import app as celery_app

__all__ = ["celery_app"]
