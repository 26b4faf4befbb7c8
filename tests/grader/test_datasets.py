"""Datasets: determinism, split separation, read-only files, and the Keras file formats.

The CIFAR-10, MNIST and Fashion-MNIST parsers run on small files written here in the exact
upstream formats (a Python-2-style pickled batch dict, an ``.npz``, gzipped IDX files), and their
output is compared with the arrays that went in.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import os
import pickle
import stat
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest

from grader.datasets import (
    DATASETS,
    held_out_indices,
    keras_formats,
    load_split,
    prepare_dataset,
    read_split_meta,
    split_indices,
)
from grader.datasets.fetch import fetch_dataset
from grader.datasets.synthetic import make_synthetic
from grader.errors import DatasetUnavailable
from tests.support.dataset_key import OTHER_DATASET_KEY, TEST_DATASET_KEY


def _write_cifar_batch(path: Path, images_nhwc: np.ndarray, labels: list[int]) -> None:
    # Upstream layout: rows of 3,072 bytes, all red values, then green, then blue.
    data = images_nhwc.transpose(0, 3, 1, 2).reshape(len(labels), 3072)
    batch = {b"batch_label": b"synthetic", b"labels": labels, b"data": data, b"filenames": []}
    path.write_bytes(pickle.dumps(batch, protocol=2))


def _write_cifar(directory: Path, per_batch: int = 3) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(1)
    directory.mkdir(parents=True)
    parts = []
    for name in (*keras_formats.CIFAR10_TRAIN_BATCHES, keras_formats.CIFAR10_TEST_BATCH):
        images = rng.integers(0, 256, size=(per_batch, 32, 32, 3), dtype=np.uint8)
        labels = rng.integers(0, 10, size=per_batch).tolist()
        _write_cifar_batch(directory / name, images, labels)
        parts.append((images, np.array(labels)))
    x_train = np.concatenate([p[0] for p in parts[:5]])
    y_train = np.concatenate([p[1] for p in parts[:5]])
    return x_train, y_train, parts[5][0], parts[5][1]


def _idx_bytes(array: np.ndarray) -> bytes:
    magic = 2048 + array.ndim
    header = struct.pack(f">i{array.ndim}i", magic, *array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes())


# --- synthetic -----------------------------------------------------------------------------


def test_synthetic_is_deterministic_per_seed() -> None:
    x1, y1 = make_synthetic(64, seed=3)
    x2, y2 = make_synthetic(64, seed=3)
    x3, _ = make_synthetic(64, seed=4)
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    assert not np.array_equal(x1, x3)


def test_synthetic_is_balanced_and_images_vary() -> None:
    x, y = make_synthetic(400, seed=0)
    assert x.shape == (400, 16, 16, 3) and x.dtype == np.uint8
    assert np.bincount(y).tolist() == [100, 100, 100, 100]
    # Every image differs from every other: a model cannot memorise a template.
    assert len({image.tobytes() for image in x}) == 400


def test_synthetic_classes_are_linearly_separable_on_orientation_features() -> None:
    # Independent check that the labels mean something: horizontal stripes vary down the rows,
    # vertical stripes across the columns. Mean absolute row/column differences tell them apart.
    x, y = make_synthetic(200, seed=5)
    grey = x.astype(np.float64).mean(axis=-1)
    row_change = np.abs(np.diff(grey, axis=1)).mean(axis=(1, 2))
    col_change = np.abs(np.diff(grey, axis=2)).mean(axis=(1, 2))
    horizontal, vertical = y == 0, y == 1
    assert (row_change[horizontal] > col_change[horizontal]).mean() > 0.95
    assert (col_change[vertical] > row_change[vertical]).mean() > 0.95


# --- prepare_dataset ---------------------------------------------------------------------------


def test_prepare_writes_separate_read_only_splits(tmp_path: Path) -> None:
    prepared = prepare_dataset("synthetic", tmp_path, key=TEST_DATASET_KEY)
    assert prepared.train_dir != prepared.test_dir
    assert not prepared.test_dir.is_relative_to(prepared.train_dir)
    for split_dir in (prepared.train_dir, prepared.test_dir):
        assert sorted(p.name for p in split_dir.iterdir()) == ["meta.json", "x.npy", "y.npy"]
        for path in split_dir.iterdir():
            assert stat.S_IMODE(path.stat().st_mode) == 0o444
    x_train, y_train = load_split(prepared.train_dir)
    x_test, _ = load_split(prepared.test_dir)
    assert x_train.shape == (2048, 16, 16, 3) and y_train.dtype == np.int64
    assert x_test.shape == (512, 16, 16, 3)
    train_images = {image.tobytes() for image in x_train}
    assert not any(image.tobytes() in train_images for image in x_test)


def test_prepare_is_deterministic_across_data_dirs(tmp_path: Path) -> None:
    first = prepare_dataset("synthetic", tmp_path / "a", key=TEST_DATASET_KEY)
    second = prepare_dataset("synthetic", tmp_path / "b", key=TEST_DATASET_KEY)
    for split in ("train_dir", "train_part_dir", "held_out_dir", "test_dir"):
        for name in ("x.npy", "y.npy"):
            a = (getattr(first, split) / name).read_bytes()
            b = (getattr(second, split) / name).read_bytes()
            assert hashlib.sha256(a).digest() == hashlib.sha256(b).digest()


def test_prepare_reuses_a_valid_copy(tmp_path: Path) -> None:
    first = prepare_dataset("synthetic", tmp_path, key=TEST_DATASET_KEY)
    before = (first.train_dir / "x.npy").stat().st_mtime_ns
    second = prepare_dataset("synthetic", tmp_path, key=TEST_DATASET_KEY)
    assert second == first
    assert (second.train_dir / "x.npy").stat().st_mtime_ns == before


def test_prepare_rebuilds_a_corrupted_copy(tmp_path: Path) -> None:
    prepared = prepare_dataset("synthetic", tmp_path, key=TEST_DATASET_KEY)
    labels = prepared.train_dir / "y.npy"
    os.chmod(labels, 0o644)
    np.save(labels, np.zeros(3, dtype=np.int64))
    rebuilt = prepare_dataset("synthetic", tmp_path, key=TEST_DATASET_KEY)
    assert load_split(rebuilt.train_dir)[1].shape == (2048,)


def test_the_training_part_is_the_train_split_minus_exactly_the_held_out_part(
    tmp_path: Path,
) -> None:
    prepared = prepare_dataset("synthetic", tmp_path, key=TEST_DATASET_KEY)
    x, y = load_split(prepared.train_dir)
    x_part, y_part = load_split(prepared.train_part_dir)
    x_held, y_held = load_split(prepared.held_out_dir)

    assert len(y_part) == 2048 - 205 and len(y_held) == 205  # round(2048 * 0.1) held out
    for split_dir in (prepared.train_part_dir, prepared.held_out_dir):
        assert not split_dir.is_relative_to(prepared.train_dir)  # split directories of their own
        for path in split_dir.iterdir():
            assert stat.S_IMODE(path.stat().st_mode) == 0o444
    held_images = {image.tobytes() for image in x_held}
    assert not any(image.tobytes() in held_images for image in x_part)
    # Nothing else is missing: the part and the held-out examples make up the split again.
    together = sorted(
        [(image.tobytes(), int(label)) for image, label in zip(x_part, y_part, strict=True)]
        + [(image.tobytes(), int(label)) for image, label in zip(x_held, y_held, strict=True)]
    )
    assert together == sorted(
        (image.tobytes(), int(label)) for image, label in zip(x, y, strict=True)
    )
    # The held-out part is what `held_out_indices` chooses with the key, in order.
    kept, held_out = held_out_indices("synthetic", 2048, TEST_DATASET_KEY)
    assert np.array_equal(x_held, x[held_out]) and np.array_equal(y_part, y[kept])
    assert read_split_meta(prepared.train_part_dir).split == "train-part"
    assert read_split_meta(prepared.held_out_dir).split == "held-out"


def test_the_held_out_part_is_not_the_one_the_public_seed_would_choose(tmp_path: Path) -> None:
    # The first format held out `split_indices(n, 0.1, 0)`: anything holding the code could
    # compute it. Now the key chooses, so the overlap with that choice is about chance (10 %).
    prepared = prepare_dataset("synthetic", tmp_path, key=TEST_DATASET_KEY)
    _, public = split_indices(2048, 0.1, 0)
    _, keyed = held_out_indices("synthetic", 2048, TEST_DATASET_KEY)
    assert len(set(public) & set(keyed)) < 0.2 * len(keyed)
    assert np.array_equal(
        load_split(prepared.held_out_dir)[1], load_split(prepared.train_dir)[1][keyed]
    )


def test_a_copy_prepared_with_another_key_is_prepared_again(tmp_path: Path) -> None:
    first = prepare_dataset("synthetic", tmp_path, key=TEST_DATASET_KEY)
    test_before = (first.test_dir / "x.npy").read_bytes()

    second = prepare_dataset("synthetic", tmp_path, key=OTHER_DATASET_KEY)

    assert second.test_dir == first.test_dir
    assert (second.test_dir / "x.npy").read_bytes() != test_before
    origin = json.loads((tmp_path / "prepared" / "synthetic" / "origin.json").read_text())
    # The key itself is written nowhere; only a short keyed digest that names it.
    assert OTHER_DATASET_KEY not in json.dumps(origin) and origin["format"] == 2
    assert prepare_dataset("synthetic", tmp_path, key=TEST_DATASET_KEY).test_dir == first.test_dir
    assert (first.test_dir / "x.npy").read_bytes() == test_before


def test_a_copy_in_the_first_format_is_prepared_again(tmp_path: Path) -> None:
    # An instructor's host prepared `synthetic` before keys existed: format 1, train/ and test/
    # only, split with the public seed. The next preparation replaces it.
    root = tmp_path / "prepared" / "synthetic"
    for split in ("train", "test"):
        (root / split).mkdir(parents=True)
        np.save(root / split / "x.npy", np.zeros((4, 16, 16, 3), dtype=np.uint8))
        np.save(root / split / "y.npy", np.zeros(4, dtype=np.int64))
        meta = {
            "format": 1,
            "dataset": "synthetic",
            "split": split,
            "input_shape": [16, 16, 3],
            "num_classes": 4,
            "class_names": list(DATASETS["synthetic"].class_names),
            "num_examples": 4,
        }
        (root / split / "meta.json").write_text(json.dumps(meta))
    (root / "train-part-0.1-0").mkdir()

    prepared = prepare_dataset("synthetic", tmp_path, key=TEST_DATASET_KEY)

    assert read_split_meta(prepared.test_dir).num_examples == 512
    assert sorted(p.name for p in root.iterdir()) == [
        "held-out",
        "origin.json",
        "test",
        "train",
        "train-part",
    ]


@pytest.mark.parametrize("key", [None, "", "short-key"], ids=["none", "empty", "short"])
def test_preparing_without_a_real_key_is_refused(tmp_path: Path, key: str | None) -> None:
    with pytest.raises(DatasetUnavailable, match="GRADER_DATASET_KEY"):
        prepare_dataset("synthetic", tmp_path, key=key)  # type: ignore[arg-type]
    assert not (tmp_path / "prepared" / "synthetic").exists()


def test_meta_json_describes_the_split(tmp_path: Path) -> None:
    prepared = prepare_dataset("synthetic", tmp_path, key=TEST_DATASET_KEY)
    meta = read_split_meta(prepared.test_dir)
    assert (meta.dataset, meta.split, meta.num_examples) == ("synthetic", "test", 512)
    raw = json.loads((prepared.test_dir / "meta.json").read_text())
    digest = hashlib.sha256((prepared.test_dir / "x.npy").read_bytes()).hexdigest()
    assert raw["sha256"]["x.npy"] == digest


def test_load_split_refuses_pickled_arrays(tmp_path: Path) -> None:
    prepared = prepare_dataset("synthetic", tmp_path, key=TEST_DATASET_KEY)
    labels = prepared.train_dir / "y.npy"
    os.chmod(labels, 0o644)
    np.save(labels, np.array([{"evil": 1}] * 2048, dtype=object), allow_pickle=True)
    with pytest.raises(DatasetUnavailable, match="cannot be loaded"):
        load_split(prepared.train_dir)


def test_digits_is_stratified_and_real(tmp_path: Path) -> None:
    from sklearn.datasets import load_digits

    prepared = prepare_dataset("digits", tmp_path, key=TEST_DATASET_KEY)
    x_train, y_train = load_split(prepared.train_dir)
    x_test, y_test = load_split(prepared.test_dir)
    assert prepared.input_shape == (8, 8, 1) and prepared.num_classes == 10
    assert x_train.shape[0] + x_test.shape[0] == load_digits().images.shape[0] == 1797
    assert x_train.max() == 255
    # Each class keeps about a fifth of its images for the test split.
    fractions = np.bincount(y_test, minlength=10) / (
        np.bincount(y_test, minlength=10) + np.bincount(y_train, minlength=10)
    )
    assert np.all(np.abs(fractions - 0.2) < 0.01)


def test_unknown_dataset_names_the_choices(tmp_path: Path) -> None:
    with pytest.raises(DatasetUnavailable, match=r"Unknown dataset `imagenet`. Expected one of"):
        prepare_dataset("imagenet", tmp_path, key=TEST_DATASET_KEY)


def test_missing_raw_files_say_how_to_fetch(tmp_path: Path) -> None:
    with pytest.raises(DatasetUnavailable, match="fetch_dataset cifar10"):
        prepare_dataset("cifar10", tmp_path, key=TEST_DATASET_KEY)


# --- Keras formats -------------------------------------------------------------------------------


@pytest.mark.parametrize("dirname", keras_formats.CIFAR10_DIRNAMES)
def test_cifar10_batches_parse_to_nhwc(tmp_path: Path, dirname: str) -> None:
    x_train, y_train, x_test, y_test = _write_cifar(tmp_path / dirname)
    prepared = prepare_dataset("cifar10", tmp_path, key=TEST_DATASET_KEY)
    got_x, got_y = load_split(prepared.train_dir)
    assert np.array_equal(got_x, x_train) and np.array_equal(got_y, y_train)
    got_x, got_y = load_split(prepared.test_dir)
    assert np.array_equal(got_x, x_test) and np.array_equal(got_y, y_test)


def test_cifar10_pixel_order_matches_upstream_description(tmp_path: Path) -> None:
    # Upstream: "the first 1024 entries contain the red channel values ... row-major order".
    data = np.zeros((1, 3072), dtype=np.uint8)
    data[0, 0] = 200  # red, row 0, column 0
    data[0, 1024 + 33] = 100  # green, row 1, column 1
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps({b"data": data, b"labels": [7]}, protocol=2))
    images, labels = keras_formats.read_cifar10_batch(path)
    assert images[0, 0, 0, 0] == 200 and images[0, 1, 1, 1] == 100 and labels.tolist() == [7]


def test_cifar10_refuses_code_in_a_pickle(tmp_path: Path) -> None:
    class Exploit:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (os.system, ("true",))

    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps({b"data": Exploit(), b"labels": []}))
    with pytest.raises(DatasetUnavailable, match=r"Refusing to load `(posix|os)\.system`"):
        keras_formats.read_cifar10_batch(path)


def test_mnist_npz_parses(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    arrays = {
        "x_train": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, 5, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, 3, dtype=np.uint8),
    }
    np.savez(tmp_path / "mnist.npz", **arrays)
    prepared = prepare_dataset("mnist", tmp_path, key=TEST_DATASET_KEY)
    x, y = load_split(prepared.train_dir)
    assert np.array_equal(x[..., 0], arrays["x_train"]) and np.array_equal(y, arrays["y_train"])
    assert prepared.input_shape == (28, 28, 1)


def test_fashion_mnist_idx_parses(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    directory = tmp_path / "fashion-mnist"
    directory.mkdir()
    x_train = rng.integers(0, 256, (4, 28, 28), dtype=np.uint8)
    y_train = rng.integers(0, 10, 4, dtype=np.uint8)
    x_test = rng.integers(0, 256, (2, 28, 28), dtype=np.uint8)
    y_test = rng.integers(0, 10, 2, dtype=np.uint8)
    files = keras_formats.FASHION_MNIST_FILES
    (directory / files["train_images"]).write_bytes(_idx_bytes(x_train))
    (directory / files["train_labels"]).write_bytes(_idx_bytes(y_train))
    (directory / files["test_images"]).write_bytes(_idx_bytes(x_test))
    (directory / files["test_labels"]).write_bytes(_idx_bytes(y_test))
    prepared = prepare_dataset("fashion_mnist", tmp_path, key=TEST_DATASET_KEY)
    x, y = load_split(prepared.test_dir)
    assert np.array_equal(x[..., 0], x_test) and np.array_equal(y, y_test)
    assert prepared.class_names[9] == "Ankle boot"


def test_fashion_mnist_rejects_a_truncated_file(tmp_path: Path) -> None:
    directory = tmp_path / "fashion-mnist"
    directory.mkdir()
    truncated = gzip.compress(struct.pack(">iiii", 2051, 4, 28, 28) + b"\0" * 100)
    (directory / keras_formats.FASHION_MNIST_FILES["train_labels"]).write_bytes(
        _idx_bytes(np.zeros(4, dtype=np.uint8))
    )
    (directory / keras_formats.FASHION_MNIST_FILES["train_images"]).write_bytes(truncated)
    with pytest.raises(DatasetUnavailable, match=r"declares shape \(4, 28, 28\)"):
        prepare_dataset("fashion_mnist", tmp_path, key=TEST_DATASET_KEY)


# --- fetch ---------------------------------------------------------------------------------------


def _serve_from(directory: Path):  # type: ignore[no-untyped-def]
    return lambda item: (directory / Path(item.url).name).as_uri()


def test_fetch_extracts_cifar_archive_and_checks_digest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    upstream = tmp_path / "upstream"
    _write_cifar(upstream / "cifar-10-batches-py")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(upstream / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    (upstream / "cifar-10-python.tar.gz").write_bytes(buffer.getvalue())
    digest = hashlib.sha256(buffer.getvalue()).hexdigest()
    source = DATASETS["cifar10"]
    item = source.downloads[0]
    # The real digest belongs to the real archive; point the registry at our small one.
    monkeypatch.setitem(
        DATASETS,
        "cifar10",
        dataclasses.replace(source, downloads=(dataclasses.replace(item, sha256=digest),)),
    )
    data_dir = tmp_path / "data"
    fetch_dataset("cifar10", data_dir, url_override=_serve_from(upstream))
    assert prepare_dataset("cifar10", data_dir, key=TEST_DATASET_KEY).num_classes == 10


def test_fetch_rejects_a_digest_mismatch(tmp_path: Path) -> None:
    upstream = tmp_path / "upstream"
    upstream.mkdir()
    (upstream / "mnist.npz").write_bytes(b"not the real file")
    with pytest.raises(DatasetUnavailable, match=r"has SHA-256 .* Expected 731c5ac6"):
        fetch_dataset("mnist", tmp_path / "data", url_override=_serve_from(upstream))
    assert not (tmp_path / "data" / "mnist.npz").exists()
