"""`python manage.py prepare_dataset NAME [--data-dir DIR] [--json]`: prepare, offline.

Turns raw files already in the data directory (Keras' cache layout) into the read-only
``train/``, ``train-part/``, ``held-out/`` and ``test/`` arrays (`grader.datasets.prepared`);
the secret ``GRADER_DATASET_KEY`` chooses the held-out validation part and, for ``synthetic``
and ``digits``, the test split. Reuses a valid prepared copy (same key). Prints the directories
(``--json``: one JSON object). Exit status 2 when the dataset is unknown, the key is missing, or
the raw files are missing (the message says how to fetch them).

Once the dataset is prepared in the workers' data directory, the submissions waiting for it are
sent on to training (`assignments.services.data_wait.resume_waiting`).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from grader.datasets import DATASETS, prepare_dataset
from grader.errors import GraderError
from workers.management.commands.fetch_dataset import resume_if_workers_read


class Command(BaseCommand):
    help = "Prepare a registered dataset into read-only train/held-out/test arrays."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", choices=sorted(DATASETS))
        parser.add_argument("--data-dir", type=Path, default=None)
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args: object, **options: object) -> None:
        name = str(options["name"])
        data_dir = Path(options["data_dir"] or settings.GRADER_DATA_DIR)  # type: ignore[arg-type]
        try:
            prepared = prepare_dataset(name, data_dir, key=settings.GRADER_DATASET_KEY)
        except GraderError as exc:
            raise CommandError(exc.message, returncode=2) from exc
        summary = {
            "name": prepared.name,
            "train_dir": str(prepared.train_dir),
            "train_part_dir": str(prepared.train_part_dir),
            "held_out_dir": str(prepared.held_out_dir),
            "test_dir": str(prepared.test_dir),
            "input_shape": list(prepared.input_shape),
            "num_classes": prepared.num_classes,
            "class_names": list(prepared.class_names),
        }
        if options["json"]:
            self.stdout.write(json.dumps(summary))
        else:
            self.stdout.write(
                f"{name}: train {summary['train_dir']}, test {summary['test_dir']}, "
                f"{prepared.num_classes} classes, input {prepared.input_shape}"
            )
        # With --json, standard output holds the one JSON object and nothing else.
        resume_if_workers_read(name, data_dir, io.StringIO() if options["json"] else self.stdout)
