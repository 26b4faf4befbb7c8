"""Datasets the grader trains and evaluates on, prepared as plain ``.npy`` arrays.

`prepare_dataset(name, data_dir)` turns a registered dataset into two separate directories,
``train/`` and ``test/``, each holding ``x.npy`` (uint8 images, NHWC), ``y.npy`` (int64 labels) and
``meta.json``. Separate directories let a sandbox mount the training split without ever seeing
the test split. Prepared files are read-only and are loaded with ``allow_pickle=False``: the only
place a pickle is ever read is the trusted host-side parsing of CIFAR-10's upstream batches.

Registered: ``synthetic`` and ``digits`` (offline), ``cifar10``, ``mnist`` and ``fashion_mnist``
(read from files in Keras' own download layout, see `grader.datasets.keras_formats`).
"""

from __future__ import annotations

from grader.datasets.prepared import (
    PreparedDataset,
    SplitMeta,
    load_split,
    prepare_dataset,
    read_split_meta,
    split_indices,
    training_part,
)
from grader.datasets.registry import DATASETS, DatasetSource, get_source

__all__ = [
    "DATASETS",
    "DatasetSource",
    "PreparedDataset",
    "SplitMeta",
    "get_source",
    "load_split",
    "prepare_dataset",
    "read_split_meta",
    "split_indices",
    "training_part",
]
