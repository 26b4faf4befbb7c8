"""The dataset key chooses the hidden examples: same key, same splits; another key, others.

Before the key, the held-out validation part was `split_indices(n, 0.1, 0)`, the synthetic
dataset came from a seed written in `registry.py` and digits' test split from another: code that
every sandbox mounts could rebuild all of them. These tests pin down that the choice now depends
on the key alone, and that a key's choice looks like chance from the public seeds' point of view.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from grader.datasets import held_out_indices, load_split, prepare_dataset, split_indices
from grader.datasets.keys import derive_seed, key_id
from grader.datasets.synthetic import make_keyed_synthetic, make_synthetic
from grader.errors import DatasetUnavailable
from tests.support.dataset_key import OTHER_DATASET_KEY, TEST_DATASET_KEY


def _rows(x: np.ndarray) -> set[bytes]:
    return {image.tobytes() for image in x}


def test_seeds_depend_on_the_key_and_the_purpose_only() -> None:
    assert derive_seed(TEST_DATASET_KEY, "digits", "test") == derive_seed(
        TEST_DATASET_KEY, "digits", "test"
    )
    assert derive_seed(TEST_DATASET_KEY, "digits", "test") != derive_seed(
        OTHER_DATASET_KEY, "digits", "test"
    )
    assert derive_seed(TEST_DATASET_KEY, "digits", "test") != derive_seed(
        TEST_DATASET_KEY, "synthetic", "test"
    )
    # Purposes are joined unambiguously: ("a", "bc") is not ("ab", "c").
    assert derive_seed(TEST_DATASET_KEY, "a", "bc") != derive_seed(TEST_DATASET_KEY, "ab", "c")
    assert 0 <= derive_seed(TEST_DATASET_KEY, "x") < 2**256
    assert key_id(TEST_DATASET_KEY) != key_id(OTHER_DATASET_KEY)
    assert TEST_DATASET_KEY not in key_id(TEST_DATASET_KEY)


@pytest.mark.parametrize("key", ["", "x" * 31, None], ids=["empty", "31-chars", "none"])
def test_a_missing_or_short_key_is_refused_naming_the_setting(key: str | None) -> None:
    with pytest.raises(DatasetUnavailable, match="at least 32 characters"):
        derive_seed(key, "digits")  # type: ignore[arg-type]


def test_the_held_out_part_depends_on_the_key() -> None:
    kept, held = held_out_indices("synthetic", 2048, TEST_DATASET_KEY)
    again_kept, again_held = held_out_indices("synthetic", 2048, TEST_DATASET_KEY)
    _, other_held = held_out_indices("synthetic", 2048, OTHER_DATASET_KEY)
    _, public_held = split_indices(2048, 0.1, 0)  # what the code used to hold out

    assert np.array_equal(held, again_held) and np.array_equal(kept, again_kept)
    assert len(held) == len(other_held) == 205
    assert sorted({*kept, *held}) == list(range(2048)) and not set(kept) & set(held)
    # Two independent choices of 205 out of 2,048 share about 205 * 0.1 = 20 indices.
    for other in (other_held, public_held):
        assert len(set(held) & set(other)) < 45


def test_keyed_synthetic_images_depend_on_the_key_and_split() -> None:
    x, y = make_keyed_synthetic(64, key=TEST_DATASET_KEY, split="test")
    x_again, y_again = make_keyed_synthetic(64, key=TEST_DATASET_KEY, split="test")
    x_other, _ = make_keyed_synthetic(64, key=OTHER_DATASET_KEY, split="test")
    x_train, _ = make_keyed_synthetic(64, key=TEST_DATASET_KEY, split="train")

    assert np.array_equal(x, x_again) and np.array_equal(y, y_again)
    assert np.bincount(y).tolist() == [16, 16, 16, 16]
    assert not _rows(x) & _rows(x_other) and not _rows(x) & _rows(x_train)


def test_keyed_synthetic_is_none_of_what_the_public_seeds_generate() -> None:
    # Whatever seed a student tries, `make_synthetic` draws other images: the keyed split is a
    # different function, not one with a guessable seed. The former fixed seed is among those.
    x, _ = make_keyed_synthetic(128, key=TEST_DATASET_KEY, split="test")
    tried = set()
    for seed in (0, 1, 42, 20_240_601):
        tried |= _rows(make_synthetic(2560, seed=seed)[0])
    assert not _rows(x) & tried


def test_synthetic_splits_depend_on_the_key(tmp_path: Path) -> None:
    first = prepare_dataset("synthetic", tmp_path / "a", key=TEST_DATASET_KEY)
    other = prepare_dataset("synthetic", tmp_path / "b", key=OTHER_DATASET_KEY)

    for split in ("train_dir", "held_out_dir", "test_dir"):
        a, _ = load_split(getattr(first, split))
        b, _ = load_split(getattr(other, split))
        assert a.shape == b.shape and not _rows(a) & _rows(b), split


def test_digits_test_split_depends_on_the_key(tmp_path: Path) -> None:
    first = prepare_dataset("digits", tmp_path / "a", key=TEST_DATASET_KEY)
    again = prepare_dataset("digits", tmp_path / "b", key=TEST_DATASET_KEY)
    other = prepare_dataset("digits", tmp_path / "c", key=OTHER_DATASET_KEY)

    x_first, y_first = load_split(first.test_dir)
    x_again, y_again = load_split(again.test_dir)
    x_other, _ = load_split(other.test_dir)
    assert np.array_equal(x_first, x_again) and np.array_equal(y_first, y_again)
    # The same 1,797 images, another fifth of each class tested: the overlap of two independent
    # stratified choices of 20 % is about 20 % of the test split, far from all of it.
    from sklearn.datasets import load_digits

    per_class = np.bincount(load_digits().target)
    assert len(x_first) == len(x_other) == sum(round(count * 0.2) for count in per_class)
    assert len(_rows(x_first) & _rows(x_other)) < 0.4 * len(x_first)
