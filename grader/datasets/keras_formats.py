"""Parsers for the files Keras downloads: CIFAR-10 batches, ``mnist.npz``, Fashion-MNIST IDX.

These read the layout of Keras' own cache (``~/.keras/datasets``) so an instructor can copy that
directory, or run ``manage.py fetch_dataset``, and grade offline. They run on the trusted host
only, during preparation; sandboxes only ever see the ``.npy`` arrays written afterwards.

CIFAR-10 batches are Python pickles. They are read with an unpickler that resolves nothing but
the three globals a NumPy array needs, so a tampered file cannot execute code.
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np

from grader.errors import DatasetUnavailable

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]

_ALLOWED_PICKLE_GLOBALS = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        # Protocol-2 pickles written by Python 3 carry bytes as `_codecs.encode(text, "latin1")`;
        # it only converts text to bytes.
        ("_codecs", "encode"),
    }
)

CIFAR10_DIRNAMES = ("cifar-10-batches-py", "cifar-10-batches-py-target/cifar-10-batches-py")
CIFAR10_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_BATCH = "test_batch"
MNIST_FILENAME = "mnist.npz"
FASHION_MNIST_DIRNAME = "fashion-mnist"
FASHION_MNIST_FILES = {
    "train_labels": "train-labels-idx1-ubyte.gz",
    "train_images": "train-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
}
_IDX_LABELS_MAGIC = 2049
_IDX_IMAGES_MAGIC = 2051


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Resolves only what rebuilding a NumPy array needs; anything else is refused."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_PICKLE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"Refusing to load `{module}.{name}` from a CIFAR-10 batch. Expected only NumPy "
            "arrays, lists and bytes; the file is corrupted or was tampered with."
        )


def read_cifar10_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 batch file into ``(images NHWC uint8, labels int64)``.

    Raises:
        DatasetUnavailable: the file is missing, is not a CIFAR batch, or has inconsistent sizes.
    """
    try:
        with path.open("rb") as handle:
            batch = _ArrayOnlyUnpickler(handle, encoding="bytes").load()
    except FileNotFoundError as exc:
        raise DatasetUnavailable(f"CIFAR-10 batch `{path}` is missing.") from exc
    except (pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise DatasetUnavailable(f"CIFAR-10 batch `{path}` cannot be read: {exc}") from exc
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise DatasetUnavailable(
            f"CIFAR-10 batch `{path}` is not a dict with `data` and `labels` entries."
        )
    data = np.asarray(batch[b"data"])
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DatasetUnavailable(
            f"CIFAR-10 batch `{path}` has data of shape {data.shape} and dtype {data.dtype}. "
            "Expected shape (n, 3072) and dtype uint8."
        )
    if labels.shape != (data.shape[0],):
        raise DatasetUnavailable(
            f"CIFAR-10 batch `{path}` has {data.shape[0]} images but {labels.size} labels."
        )
    # Rows are channel-major (1,024 red, then green, then blue values); models want NHWC.
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def find_cifar10_dir(data_dir: Path) -> Path:
    """The directory holding the CIFAR-10 batches, in either Keras cache layout."""
    for dirname in CIFAR10_DIRNAMES:
        candidate = data_dir / dirname
        if (candidate / CIFAR10_TEST_BATCH).is_file():
            return candidate
    raise DatasetUnavailable(
        f"CIFAR-10 is not in `{data_dir}`. Expected `{CIFAR10_DIRNAMES[0]}/` with "
        f"`{'`, `'.join(CIFAR10_TRAIN_BATCHES)}` and `{CIFAR10_TEST_BATCH}`; run "
        "`manage.py fetch_dataset cifar10` on a host with internet access."
    )


def read_cifar10(data_dir: Path) -> Arrays:
    """Read CIFAR-10 from Keras' layout: ``(x_train, y_train, x_test, y_test)``."""
    directory = find_cifar10_dir(data_dir)
    parts = [read_cifar10_batch(directory / name) for name in CIFAR10_TRAIN_BATCHES]
    x_test, y_test = read_cifar10_batch(directory / CIFAR10_TEST_BATCH)
    x_train = np.concatenate([images for images, _ in parts])
    y_train = np.concatenate([labels for _, labels in parts])
    return x_train, y_train, x_test, y_test


def read_mnist_npz(path: Path) -> Arrays:
    """Read Keras' ``mnist.npz`` (no pickles allowed): ``(x_train, y_train, x_test, y_test)``."""
    if not path.is_file():
        raise DatasetUnavailable(
            f"`{path}` is missing; run `manage.py fetch_dataset mnist` on a host with internet."
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = tuple(
                np.asarray(archive[key]) for key in ("x_train", "y_train", "x_test", "y_test")
            )
    except (KeyError, ValueError, OSError) as exc:
        raise DatasetUnavailable(f"`{path}` is not a Keras MNIST archive: {exc}") from exc
    x_train, y_train, x_test, y_test = arrays
    for images, labels, split in ((x_train, y_train, "train"), (x_test, y_test, "test")):
        if images.ndim != 3 or images.dtype != np.uint8 or labels.shape != (images.shape[0],):
            raise DatasetUnavailable(
                f"`{path}` {split} split has images {images.shape} {images.dtype} and labels "
                f"{labels.shape}. Expected uint8 images (n, 28, 28) and n labels."
            )
    return x_train[..., None], y_train.astype(np.int64), x_test[..., None], y_test.astype(np.int64)


def _read_idx(path: Path, magic: int) -> np.ndarray:
    """Read a gzipped IDX file (the format of the original MNIST distribution)."""
    if not path.is_file():
        raise DatasetUnavailable(
            f"`{path}` is missing; run `manage.py fetch_dataset fashion_mnist` on a host with "
            "internet access."
        )
    with gzip.open(path, "rb") as handle:
        payload = handle.read()
    stream = io.BytesIO(payload)
    (found,) = struct.unpack(">i", stream.read(4))
    if found != magic:
        raise DatasetUnavailable(f"`{path}` has IDX magic number {found}. Expected {magic}.")
    dims = struct.unpack(f">{magic - 2048}i", stream.read(4 * (magic - 2048)))
    values = np.frombuffer(payload, dtype=np.uint8, offset=4 + 4 * len(dims))
    if values.size != int(np.prod(dims)):
        raise DatasetUnavailable(
            f"`{path}` declares shape {dims} ({int(np.prod(dims)):,} values) but holds "
            f"{values.size:,} values."
        )
    return values.reshape(dims)


def read_fashion_mnist(data_dir: Path) -> Arrays:
    """Read Fashion-MNIST's four IDX files from ``fashion-mnist/``."""
    directory = data_dir / FASHION_MNIST_DIRNAME
    files = {key: directory / name for key, name in FASHION_MNIST_FILES.items()}
    y_train = _read_idx(files["train_labels"], _IDX_LABELS_MAGIC).astype(np.int64)
    x_train = _read_idx(files["train_images"], _IDX_IMAGES_MAGIC)
    y_test = _read_idx(files["test_labels"], _IDX_LABELS_MAGIC).astype(np.int64)
    x_test = _read_idx(files["test_images"], _IDX_IMAGES_MAGIC)
    for images, labels, split in ((x_train, y_train, "train"), (x_test, y_test, "test")):
        if images.shape[0] != labels.shape[0]:
            raise DatasetUnavailable(
                f"Fashion-MNIST {split} split has {images.shape[0]:,} images but "
                f"{labels.shape[0]:,} labels."
            )
    return x_train[..., None], y_train, x_test[..., None], y_test
