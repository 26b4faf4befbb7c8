"""Datasets as the course staff see them: installed or not, size, classes, the submissions
waiting for each, and the command that installs a missing one (instructors only: it names host
paths and operator commands)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from assignments.models import Assignment
from assignments.services.data_wait import waiting_by_dataset
from grader.datasets import DATASETS
from grader.datasets.status import DatasetStatus, dataset_status


@dataclass(frozen=True)
class DatasetRow:
    """One dataset on the instructor's pages."""

    status: DatasetStatus
    waiting: int  # submissions waiting for it to be installed
    used_by: tuple[str, ...]  # slugs of the viewer's assignments that train on it


def dataset_rows(assignments: Iterable[Assignment] | None = None) -> list[DatasetRow]:
    """The datasets `assignments` use (every registered one when None), missing ones first.

    Args:
        assignments: the viewer's assignments; their datasets are listed, with their slugs.

    Returns:
        One row per dataset: its state on this host (the workers' ``GRADER_DATA_DIR``), the
        number of submissions waiting for it, and which of the assignments use it.
    """
    used: dict[str, list[str]] = {}
    if assignments is not None:
        for assignment in assignments:
            used.setdefault(assignment.dataset, []).append(assignment.slug)
        names = [name for name in used if name in DATASETS]
    else:
        names = sorted(DATASETS)
    waiting = waiting_by_dataset()
    data_dir = Path(settings.GRADER_DATA_DIR)
    rows = [
        DatasetRow(
            status=dataset_status(name, data_dir, key=settings.GRADER_DATASET_KEY),
            waiting=waiting.get(name, 0),
            used_by=tuple(used.get(name, ())),
        )
        for name in sorted(names)
    ]
    rows.sort(key=lambda row: (row.status.installed, row.status.name))
    return rows
