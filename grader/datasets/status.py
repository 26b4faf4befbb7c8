"""What an instructor needs to know about each dataset on this host: installed or not, how big,
which classes, and what to run to install it.

Host side only: reads the prepared copy's metadata and array headers, never the images.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from grader.datasets.prepared import (
    SPLITS,
    TRAIN_PART,
    is_prepared,
    prepared_root,
    read_split_meta,
)
from grader.datasets.registry import DATASETS, get_source
from grader.errors import DatasetUnavailable


@dataclass(frozen=True)
class DatasetStatus:
    """One registered dataset as this host has it.

    Attributes:
        name: registry name.
        description: one line for people.
        input_shape: image shape (height, width, channels).
        class_names: label names, index = label.
        installed: a valid prepared copy (this format, this deployment's key) is present.
        size_bytes: bytes of the prepared copy on disk (0 when not installed).
        train_examples: examples the trainer sees (``train-part/``), when installed.
        test_examples: examples of the test split, when installed.
        needs_download: the raw files come from the internet (``fetch_dataset``); False for the
            datasets generated or bundled offline (``synthetic``, ``digits``).
        install_command: what an operator runs to install it.
        problem: why it is not installed, for operators (may name host paths), else "".
    """

    name: str
    description: str
    input_shape: tuple[int, int, int]
    class_names: tuple[str, ...]
    installed: bool
    size_bytes: int
    train_examples: int | None
    test_examples: int | None
    needs_download: bool
    install_command: str
    problem: str = ""

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)


def install_command(name: str) -> str:
    """The management command that installs dataset `name` on a host.

    Raises:
        DatasetUnavailable: `name` is not a registered dataset.
    """
    source = get_source(name)
    verb = "fetch_dataset" if source.downloads else "prepare_dataset"
    return f"python manage.py {verb} {source.name}"


def _tree_size(root: Path) -> int:
    total = 0
    for directory, _dirs, files in os.walk(root):
        for filename in files:
            try:
                total += (Path(directory) / filename).stat().st_size
            except OSError:
                continue  # replaced while we looked: the size is a display figure only
    return total


def dataset_status(name: str, data_dir: Path | str, *, key: str) -> DatasetStatus:
    """How dataset `name` stands in `data_dir` under the deployment's dataset `key`.

    Args:
        name: a key of `grader.datasets.DATASETS`.
        data_dir: the data directory (``GRADER_DATA_DIR``).
        key: the deployment's dataset key; a copy prepared with another key is not installed.

    Returns:
        The dataset's `DatasetStatus`.

    Raises:
        DatasetUnavailable: `name` is not a registered dataset.
    """
    source = get_source(name)
    root = prepared_root(name, data_dir)
    problem = ""
    try:
        installed = is_prepared(name, data_dir, key=key)
    except DatasetUnavailable as exc:  # the key itself is missing or short
        installed, problem = False, exc.message
    train = test = None
    size = 0
    if installed:
        train = read_split_meta(root / TRAIN_PART).num_examples
        test = read_split_meta(root / "test").num_examples
        size = sum(_tree_size(root / split) for split in SPLITS)
    elif not problem:
        problem = (
            f"No prepared copy in `{root}`."
            if source.downloads
            else f"Not prepared yet in `{root}` (no download needed)."
        )
    return DatasetStatus(
        name=source.name,
        description=source.description,
        input_shape=source.input_shape,
        class_names=source.class_names,
        installed=installed,
        size_bytes=size,
        train_examples=train,
        test_examples=test,
        needs_download=bool(source.downloads),
        install_command=install_command(name),
        problem=problem,
    )


def all_dataset_statuses(data_dir: Path | str, *, key: str) -> list[DatasetStatus]:
    """`dataset_status` of every registered dataset, by name."""
    return [dataset_status(name, data_dir, key=key) for name in sorted(DATASETS)]
