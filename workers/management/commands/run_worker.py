"""`python manage.py run_worker`: start a Celery worker for some queues, optionally on one GPU.

A convenience around `celery -A workers worker`: `--gpu ID` sets `GRADER_GPU_DEVICE` for the
worker (every pool process trains on that GPU, `--concurrency` of them at once) and names it
`gpuID@host`, so the dashboard's per-GPU counts read naturally. Run one per GPU:

    python manage.py run_worker --queues gpu --gpu 0 --concurrency 1
    python manage.py run_worker --queues gpu --gpu 1 --concurrency 1
    python manage.py run_worker --queues preflight,maintenance --beat
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

QUEUES = ("preflight", "gpu", "maintenance")


def worker_command(
    *, queues: str, gpu: str | None, concurrency: int, beat: bool, loglevel: str
) -> tuple[list[str], dict[str, str]]:
    """The argv and environment that start the worker.

    Raises:
        CommandError: An unknown queue, or a concurrency below 1.
    """
    names = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = sorted(set(names) - set(QUEUES))
    if not names or unknown:
        raise CommandError(
            f"Queues {', '.join(unknown) or '(none)'} are not served. Expected some of "
            f"{', '.join(QUEUES)}."
        )
    if concurrency < 1:
        raise CommandError(f"--concurrency is {concurrency}. Expected at least 1.")
    celery = str(Path(sys.executable).with_name("celery"))
    argv = [
        celery,
        "-A",
        "workers",
        "worker",
        "-Q",
        ",".join(names),
        "--concurrency",
        str(concurrency),
        "--pool",
        "prefork",
        "--prefetch-multiplier",
        "1",
        "--loglevel",
        loglevel,
    ]
    env = dict(os.environ)
    if gpu is not None:
        env["GRADER_GPU_DEVICE"] = gpu
        argv += ["-n", f"gpu{gpu}@%h"]
    if beat:
        argv.append("-B")
    return argv, env


class Command(BaseCommand):
    help = "Start a Celery worker for the grading queues, optionally owning one GPU."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--queues", default=",".join(QUEUES))
        parser.add_argument("--gpu", default=None, help="The GPU id this worker owns.")
        parser.add_argument("--concurrency", type=int, default=1)
        parser.add_argument("--beat", action="store_true", help="Also run the reaper schedule.")
        parser.add_argument("--loglevel", default="INFO")

    def handle(self, *args: Any, **options: Any) -> None:
        argv, env = worker_command(
            queues=options["queues"],
            gpu=options["gpu"],
            concurrency=options["concurrency"],
            beat=options["beat"],
            loglevel=options["loglevel"],
        )
        self.stdout.write(" ".join(argv))
        self.stdout.flush()
        os.execve(argv[0], argv, env)  # noqa: S606 - replaces this process with the worker
