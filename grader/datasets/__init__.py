"""Datasets the grader trains and evaluates on, prepared as plain ``.npy`` arrays.

`prepare_dataset(name, data_dir, key=...)` turns a registered dataset into separate directories
(``train/``, ``train-part/``, ``held-out/``, ``test/``; see `grader.datasets.prepared`), each
holding ``x.npy`` (uint8 images, NHWC), ``y.npy`` (int64 labels) and ``meta.json``. Separate
directories let a sandbox mount the training examples without ever seeing the held-out
validation part or the test split, and the deployment's secret dataset key
(`grader.datasets.keys`) chooses those examples, so code running in a sandbox cannot compute
them. Prepared files are read-only and are loaded with ``allow_pickle=False``: the only place a
pickle is ever read is the trusted host-side parsing of CIFAR-10's upstream batches.

Registered: ``synthetic`` and ``digits`` (offline), ``cifar10``, ``mnist`` and ``fashion_mnist``
(read from files in Keras' own download layout, see `grader.datasets.keras_formats`).
"""

from __future__ import annotations

from grader.datasets.keys import MIN_KEY_LENGTH
from grader.datasets.prepared import (
    VALIDATION_FRACTION,
    PreparedDataset,
    SplitMeta,
    held_out_indices,
    load_split,
    prepare_dataset,
    read_split_meta,
    split_indices,
)
from grader.datasets.registry import DATASETS, DatasetSource, get_source

__all__ = [
    "DATASETS",
    "MIN_KEY_LENGTH",
    "VALIDATION_FRACTION",
    "DatasetSource",
    "PreparedDataset",
    "SplitMeta",
    "get_source",
    "held_out_indices",
    "load_split",
    "prepare_dataset",
    "read_split_meta",
    "split_indices",
]
