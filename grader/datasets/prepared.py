"""Prepared datasets: ``train/`` and ``test/`` directories of read-only ``.npy`` arrays."""

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

from grader.datasets.registry import DatasetSource, get_source
from grader.errors import DatasetUnavailable

FORMAT_VERSION = 1
PREPARED_DIRNAME = "prepared"
META_FILENAME = "meta.json"
SPLITS = ("train", "test")
TRAINING_PART_PREFIX = "train-part"


@dataclass(frozen=True)
class PreparedDataset:
    """A dataset ready to be mounted into sandboxes, one directory per split.

    Attributes:
        name: registry name.
        train_dir: directory with the training split (``x.npy``, ``y.npy``, ``meta.json``).
        test_dir: directory with the test split, never mounted for build or train.
        input_shape: image shape (height, width, channels).
        num_classes: number of classes.
        class_names: label names, index = label.
    """

    name: str
    train_dir: Path
    test_dir: Path
    input_shape: tuple[int, int, int]
    num_classes: int
    class_names: tuple[str, ...]


@dataclass(frozen=True)
class SplitMeta:
    """What ``meta.json`` says about one split."""

    dataset: str
    split: str
    input_shape: tuple[int, int, int]
    num_classes: int
    class_names: tuple[str, ...]
    num_examples: int


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
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
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
    """Deterministic ``(train, validation)`` index arrays over the training split.

    The trainer holds the validation part out of training; the evaluate stage measures the
    trained weights on the same part; a custom training never sees it (`training_part`).
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


def _is_valid(root: Path, source: DatasetSource) -> bool:
    try:
        for split in SPLITS:
            meta = read_split_meta(root / split)
            if (meta.dataset, meta.split) != (source.name, split) or (
                meta.input_shape,
                meta.class_names,
            ) != (source.input_shape, source.class_names):
                return False
            load_split(root / split)
    except DatasetUnavailable:
        return False
    return True


def _as_prepared(root: Path, source: DatasetSource) -> PreparedDataset:
    return PreparedDataset(
        name=source.name,
        train_dir=root / "train",
        test_dir=root / "test",
        input_shape=source.input_shape,
        num_classes=source.num_classes,
        class_names=source.class_names,
    )


def prepare_dataset(name: str, data_dir: Path | str) -> PreparedDataset:
    """Prepare dataset `name` under ``data_dir/prepared/<name>/{train,test}``, or reuse it.

    Idempotent and safe to race: a valid prepared copy is reused as is; otherwise the arrays are
    written into a temporary directory that is renamed into place in one step, so readers never
    see half-written files.

    Args:
        name: a key of `grader.datasets.DATASETS`.
        data_dir: the data directory; raw downloads sit in it in Keras' cache layout.

    Returns:
        The prepared dataset's directories and metadata.

    Raises:
        DatasetUnavailable: unknown name, or the raw files are missing or malformed.
    """
    source = get_source(name)
    data_dir = Path(data_dir)
    root = data_dir / PREPARED_DIRNAME / source.name
    if _is_valid(root, source):
        return _as_prepared(root, source)

    x_train, y_train, x_test, y_test = source.read(data_dir)
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{source.name}.", dir=root.parent))
    try:
        _write_split(staging / "train", source, "train", x_train, y_train)
        _write_split(staging / "test", source, "test", x_test, y_test)
        if root.exists():
            # Present but invalid (interrupted by hand, older format): replace it.
            shutil.rmtree(root)
        try:
            os.rename(staging, root)
        except OSError:
            # Another process renamed its copy first; theirs is as good as ours.
            if not _is_valid(root, source):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return _as_prepared(root, source)


def _raw_meta(split_dir: Path) -> dict[str, Any]:
    try:
        raw = json.loads((Path(split_dir) / META_FILENAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return raw if isinstance(raw, dict) else {}


def training_part(train_dir: Path | str, *, validation_split: float, seed: int) -> Path:
    """The training split without its held-out validation part, as a split directory of its own.

    A custom training (the student's own ``train()``) is mounted this directory instead of the
    whole training split, so the validation part the grader measures the trained weights on is
    never seen by student code. Written once next to `train_dir` (``train-part-<split>-<seed>``),
    reused while the training split it was cut from is unchanged, and safe to race like
    `prepare_dataset`.

    Args:
        train_dir: a prepared ``train/`` directory.
        validation_split: the fraction the trainer holds out (`split_indices`).
        seed: the seed of the split.

    Returns:
        The directory (``x.npy``, ``y.npy``, ``meta.json`` with ``split`` = ``"train"``).

    Raises:
        DatasetUnavailable: the training split is missing or malformed.
    """
    train_dir = Path(train_dir)
    meta = read_split_meta(train_dir)
    origin = {
        "sha256": _raw_meta(train_dir).get("sha256"),
        "validation_split": validation_split,
        "seed": seed,
    }
    target = train_dir.parent / f"{TRAINING_PART_PREFIX}-{validation_split:g}-{seed}"
    if _raw_meta(target).get("cut_from") == origin:
        try:
            load_split(target)
            return target
        except DatasetUnavailable:
            pass
    x, y = load_split(train_dir)
    keep, _ = split_indices(len(y), validation_split, seed)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=train_dir.parent))
    try:
        part = staging / "split"
        part.mkdir()
        np.save(part / "x.npy", np.ascontiguousarray(x[keep]), allow_pickle=False)
        np.save(part / "y.npy", np.ascontiguousarray(y[keep]), allow_pickle=False)
        record = {
            "format": FORMAT_VERSION,
            "dataset": meta.dataset,
            "split": "train",
            "input_shape": list(meta.input_shape),
            "num_classes": meta.num_classes,
            "class_names": list(meta.class_names),
            "num_examples": len(keep),
            "sha256": {name: _sha256(part / name) for name in ("x.npy", "y.npy")},
            "cut_from": origin,
        }
        (part / META_FILENAME).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        for name in ("x.npy", "y.npy", META_FILENAME):
            os.chmod(part / name, 0o444)
        os.chmod(part, 0o755)  # noqa: S103 - read-only data, readable by the sandbox user
        if target.exists():
            if _raw_meta(target).get("cut_from") == origin:
                return target  # another worker cut it meanwhile
            shutil.rmtree(target)  # cut from an earlier preparation of the split
        try:
            os.rename(part, target)
        except OSError:
            # Another worker renamed its copy first; it was cut the same way.
            if _raw_meta(target).get("cut_from") != origin:
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
