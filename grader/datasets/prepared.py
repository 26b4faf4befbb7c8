"""Prepared datasets: one directory of read-only ``.npy`` arrays per split, cut on the host.

Layout of ``<data dir>/prepared/<name>/``:

- ``train/``: the whole training split. Host side only: never mounted into a sandbox.
- ``train-part/``: the training split without its held-out validation part: what training
  sandboxes get (the trainer, and a submission's own ``train()`` when custom training is allowed).
- ``held-out/``: the held-out validation part (`VALIDATION_FRACTION` of the training split):
  mounted for the trusted trainer's validation curves and for the evaluate stage, which both run
  no student code.
- ``test/``: the test split, mounted for the evaluate stage only.
- ``origin.json``: the format, and which dataset key (`grader.datasets.keys.key_id`) chose the
  splits; a copy prepared with another key, or in an older format, is prepared again.

Which examples are held out (and, for ``synthetic`` and ``digits``, which form the test split)
is derived from the deployment's dataset key, so nothing mounted where student code runs can
compute them; the splits reach sandboxes as data only.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from grader.datasets.keys import check_key, derive_seed, key_id
from grader.datasets.registry import DatasetSource, get_source
from grader.errors import DatasetUnavailable

# 2: splits chosen with the dataset key; train-part/ and held-out/ prepared with them.
FORMAT_VERSION = 2
PREPARED_DIRNAME = "prepared"
META_FILENAME = "meta.json"
ORIGIN_FILENAME = "origin.json"
TRAIN_PART = "train-part"
HELD_OUT = "held-out"
SPLITS = ("train", TRAIN_PART, HELD_OUT, "test")
# The share of the training split held out for validation (what the trainer and the evaluate
# stage measure validation accuracy on).
VALIDATION_FRACTION = 0.1


@dataclass(frozen=True)
class PreparedDataset:
    """A dataset ready to be mounted into sandboxes, one directory per split.

    Attributes:
        name: registry name.
        train_dir: the whole training split (``x.npy``, ``y.npy``, ``meta.json``); host side
            only, never mounted.
        test_dir: the test split, mounted for evaluate only.
        input_shape: image shape (height, width, channels).
        num_classes: number of classes.
        class_names: label names, index = label.
        train_part_dir: the training split without its held-out part: what training sees.
        held_out_dir: the held-out validation part, never mounted where student code runs.
    """

    name: str
    train_dir: Path
    test_dir: Path
    input_shape: tuple[int, int, int]
    num_classes: int
    class_names: tuple[str, ...]
    train_part_dir: Path
    held_out_dir: Path


@dataclass(frozen=True)
class SplitMeta:
    """What ``meta.json`` says about one split.

    `sha256` holds the digests of ``x.npy`` and ``y.npy`` (in that order) as written, which
    identify the split's content (the trainer's checkpoints record them).
    """

    dataset: str
    split: str
    input_shape: tuple[int, int, int]
    num_classes: int
    class_names: tuple[str, ...]
    num_examples: int
    sha256: tuple[str, ...] = ()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_split_meta(split_dir: Path) -> SplitMeta:
    """Read and check a split's ``meta.json``.

    Raises:
        DatasetUnavailable: the file is missing or malformed.
    """
    path = Path(split_dir) / META_FILENAME
    try:
        raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        if raw.get("format") != FORMAT_VERSION:
            raise ValueError(f"format {raw.get('format')!r}, expected {FORMAT_VERSION}")
        return SplitMeta(
            dataset=str(raw["dataset"]),
            split=str(raw["split"]),
            input_shape=tuple(int(v) for v in raw["input_shape"]),  # type: ignore[arg-type]
            num_classes=int(raw["num_classes"]),
            class_names=tuple(str(v) for v in raw["class_names"]),
            num_examples=int(raw["num_examples"]),
            sha256=tuple(str(raw.get("sha256", {}).get(name, "")) for name in ("x.npy", "y.npy")),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DatasetUnavailable(f"Split metadata `{path}` is missing or invalid: {exc}") from exc


def load_split(split_dir: Path, *, mmap: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Load one prepared split as ``(x uint8 NHWC, y int64)``, never unpickling anything.

    Args:
        split_dir: a ``train/`` or ``test/`` directory written by `prepare_dataset`.
        mmap: map the images read-only instead of reading them into memory.

    Raises:
        DatasetUnavailable: files are missing, or their shapes disagree with ``meta.json``.
    """
    split_dir = Path(split_dir)
    meta = read_split_meta(split_dir)
    try:
        x = np.load(split_dir / "x.npy", allow_pickle=False, mmap_mode="r" if mmap else None)
        y = np.load(split_dir / "y.npy", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DatasetUnavailable(f"Split `{split_dir}` cannot be loaded: {exc}") from exc
    expected_x = (meta.num_examples, *meta.input_shape)
    if x.shape != expected_x or x.dtype != np.uint8:
        raise DatasetUnavailable(
            f"Split `{split_dir}` has images of shape {x.shape} and dtype {x.dtype}. "
            f"Expected shape {expected_x} and dtype uint8."
        )
    if y.shape != (meta.num_examples,) or y.dtype != np.int64:
        raise DatasetUnavailable(
            f"Split `{split_dir}` has labels of shape {y.shape} and dtype {y.dtype}. "
            f"Expected shape ({meta.num_examples},) and dtype int64."
        )
    return x, y


def split_indices(
    num_examples: int, validation_split: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic ``(train, validation)`` index arrays over `num_examples` examples.

    `prepare_dataset` cuts the held-out validation part with a seed derived from the dataset
    key (so only the host knows it); the trainer uses a plain seed only when it is given no
    held-out directory (direct calls, tests).
    """
    if not 0.0 <= validation_split < 1.0:
        raise ValueError(f"validation_split is {validation_split}. Expected a number in [0, 1).")
    order = np.random.Generator(np.random.PCG64(seed)).permutation(num_examples)
    held_out = round(num_examples * validation_split)
    return np.sort(order[held_out:]), np.sort(order[:held_out])


def _write_split(
    directory: Path, source: DatasetSource, split: str, x: np.ndarray, y: np.ndarray
) -> None:
    directory.mkdir(parents=True)
    x = np.ascontiguousarray(x, dtype=np.uint8)
    y = np.ascontiguousarray(y, dtype=np.int64)
    if x.shape[1:] != source.input_shape or y.shape != (x.shape[0],):
        raise DatasetUnavailable(
            f"Dataset `{source.name}` {split} split read as images {x.shape} and labels "
            f"{y.shape}. Expected images (n, {', '.join(map(str, source.input_shape))}) and "
            "n labels."
        )
    if y.size and (y.min() < 0 or y.max() >= source.num_classes):
        raise DatasetUnavailable(
            f"Dataset `{source.name}` {split} split has labels in [{y.min()}, {y.max()}]. "
            f"Expected labels in [0, {source.num_classes - 1}]."
        )
    np.save(directory / "x.npy", x, allow_pickle=False)
    np.save(directory / "y.npy", y, allow_pickle=False)
    meta = {
        "format": FORMAT_VERSION,
        "dataset": source.name,
        "split": split,
        "input_shape": list(source.input_shape),
        "num_classes": source.num_classes,
        "class_names": list(source.class_names),
        "num_examples": int(x.shape[0]),
        "sha256": {name: _sha256(directory / name) for name in ("x.npy", "y.npy")},
    }
    (directory / META_FILENAME).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    for name in ("x.npy", "y.npy", META_FILENAME):
        # Read-only: nothing downstream (a sandbox, a careless script) may alter graded data.
        os.chmod(directory / name, 0o444)


def _origin(source: DatasetSource, key: str) -> dict[str, Any]:
    return {
        "format": FORMAT_VERSION,
        "dataset": source.name,
        "key_id": key_id(key),
        "validation_fraction": VALIDATION_FRACTION,
    }


def _is_valid(root: Path, source: DatasetSource, key: str) -> bool:
    try:
        origin = json.loads((root / ORIGIN_FILENAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if origin != _origin(source, key):
        return False
    counts = {}
    try:
        for split in SPLITS:
            meta = read_split_meta(root / split)
            if (meta.dataset, meta.split) != (source.name, split) or (
                meta.input_shape,
                meta.class_names,
            ) != (source.input_shape, source.class_names):
                return False
            load_split(root / split)
            counts[split] = meta.num_examples
    except DatasetUnavailable:
        return False
    return counts["train"] == counts[TRAIN_PART] + counts[HELD_OUT]


def prepared_root(name: str, data_dir: Path | str) -> Path:
    """Where dataset `name` is (or would be) prepared: ``data_dir/prepared/<name>/``."""
    return Path(data_dir) / PREPARED_DIRNAME / get_source(name).name


def is_prepared(name: str, data_dir: Path | str, *, key: str) -> bool:
    """Whether a valid prepared copy of `name` (this format, this key) is in `data_dir`.

    Reads only metadata and array headers: cheap enough for a page or a periodic check.

    Raises:
        DatasetUnavailable: `name` is not a registered dataset.
    """
    source = get_source(name)
    return _is_valid(prepared_root(name, data_dir), source, key)


def _as_prepared(root: Path, source: DatasetSource) -> PreparedDataset:
    return PreparedDataset(
        name=source.name,
        train_dir=root / "train",
        test_dir=root / "test",
        input_shape=source.input_shape,
        num_classes=source.num_classes,
        class_names=source.class_names,
        train_part_dir=root / TRAIN_PART,
        held_out_dir=root / HELD_OUT,
    )


def held_out_indices(name: str, num_examples: int, key: str) -> tuple[np.ndarray, np.ndarray]:
    """``(kept, held out)`` indices of dataset `name`'s training split, chosen with `key`.

    Host side: `prepare_dataset` cuts ``train-part/`` and ``held-out/`` with them.

    Raises:
        DatasetUnavailable: the key is missing or too short.
    """
    return split_indices(num_examples, VALIDATION_FRACTION, derive_seed(key, name, HELD_OUT))


def prepare_dataset(name: str, data_dir: Path | str, *, key: str) -> PreparedDataset:
    """Prepare dataset `name` under ``data_dir/prepared/<name>/``, or reuse it.

    Idempotent and safe to race: a valid prepared copy (same format, same key) is reused as is;
    otherwise the arrays are written into a temporary directory that is renamed into place in
    one step, so readers never see half-written files.

    Args:
        name: a key of `grader.datasets.DATASETS`.
        data_dir: the data directory; raw downloads sit in it in Keras' cache layout.
        key: the deployment's dataset key (at least 32 characters), which chooses the held-out
            validation part and, for ``synthetic`` and ``digits``, the test split. The same key
            always prepares the same arrays; never pass it to a sandbox.

    Returns:
        The prepared dataset's directories and metadata.

    Raises:
        DatasetUnavailable: unknown name, a missing or short key, or the raw files are missing
            or malformed.
    """
    source = get_source(name)
    check_key(key)
    data_dir = Path(data_dir)
    root = data_dir / PREPARED_DIRNAME / source.name
    if _is_valid(root, source, key):
        return _as_prepared(root, source)

    x_train, y_train, x_test, y_test = source.read(data_dir, key)
    kept, held_out = held_out_indices(source.name, len(y_train), key)
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{source.name}.", dir=root.parent))
    try:
        _write_split(staging / "train", source, "train", x_train, y_train)
        _write_split(staging / TRAIN_PART, source, TRAIN_PART, x_train[kept], y_train[kept])
        _write_split(staging / HELD_OUT, source, HELD_OUT, x_train[held_out], y_train[held_out])
        _write_split(staging / "test", source, "test", x_test, y_test)
        origin = staging / ORIGIN_FILENAME
        origin.write_text(json.dumps(_origin(source, key), indent=2) + "\n", encoding="utf-8")
        os.chmod(origin, 0o444)
        if root.exists():
            # Present but invalid (interrupted by hand, older format, another key): replace it.
            shutil.rmtree(root)
        try:
            os.rename(staging, root)
        except OSError:
            # Another process renamed its copy first; theirs is as good as ours.
            if not _is_valid(root, source, key):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return _as_prepared(root, source)
