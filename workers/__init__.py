"""Celery app and tasks, sandbox backends, and the runner executed inside the sandbox."""
