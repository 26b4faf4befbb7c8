"""`python manage.py fetch_dataset NAME [--data-dir DIR]`: download a dataset, then prepare it.

Needs internet access (run it on a host that has some, then copy the data directory). Files go
into Keras' cache layout under ``GRADER_DATA_DIR``, their SHA-256 digests are checked where
Keras publishes them, and the dataset is then prepared into read-only arrays as
``prepare_dataset`` does (with ``GRADER_DATASET_KEY``). ``synthetic`` and ``digits`` need no
download. Exit status 2 on any failure.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from grader.datasets import DATASETS, prepare_dataset
from grader.datasets.fetch import fetch_dataset
from grader.errors import GraderError


class Command(BaseCommand):
    help = "Download a registered dataset into the data directory and prepare it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", choices=sorted(DATASETS))
        parser.add_argument("--data-dir", type=Path, default=None)
        parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request")

    def handle(self, *args: object, **options: object) -> None:
        name = str(options["name"])
        data_dir = Path(options["data_dir"] or settings.GRADER_DATA_DIR)  # type: ignore[arg-type]
        try:
            fetch_dataset(
                name,
                data_dir,
                timeout=float(options["timeout"]),  # type: ignore[arg-type]
                log=lambda line: self.stdout.write(line),
            )
            prepared = prepare_dataset(name, data_dir, key=settings.GRADER_DATASET_KEY)
        except GraderError as exc:
            raise CommandError(exc.message, returncode=2) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"{name}: train {prepared.train_dir}, test {prepared.test_dir}, "
                f"{prepared.num_classes} classes, input {prepared.input_shape}"
            )
        )
