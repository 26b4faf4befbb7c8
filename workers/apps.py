from django.apps import AppConfig


class WorkersConfig(AppConfig):
    name = "workers"
    verbose_name = "Grading workers"

    def ready(self) -> None:
        # Every process that runs Django (web, commands, workers) sends tasks through this app:
        # importing it makes it the default app of every thread (`assignments.dispatch` uses
        # `celery.current_app`).
        from workers.celery import app  # noqa: F401
