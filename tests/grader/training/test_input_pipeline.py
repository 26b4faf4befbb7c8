"""The trainer's input pipeline and augmentations: NumPy only, the same on every Keras backend.

The key property for resumption: the batches from epoch ``k`` on are identical whether the
pipeline starts at epoch 0 or at ``k``, and whichever thread prepared them.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from grader.training.augment import augment_batch, random_cutout, random_flip, random_translate
from grader.training.config import validate_training_config
from grader.training.pipeline import TrainBatches, make_train_dataset
from grader.training.seeds import generator

AUGMENT_ALL = ["flip", "translate", "cutout"]


def _data(count: int = 100) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (count, 8, 8, 3), dtype=np.uint8), np.arange(count) % 4


def test_resumed_pipeline_yields_the_same_batches() -> None:
    x, y = _data()
    config = validate_training_config(
        {"epochs": 4, "batch_size": 32, "augmentation": AUGMENT_ALL}, {"max_epochs": 4}
    )
    common = {"config": config, "num_classes": 4, "seed": 7}
    full, steps = make_train_dataset(x, y, initial_epoch=0, **common)
    resumed, _ = make_train_dataset(x, y, initial_epoch=2, **common)
    full_batches, resumed_batches = list(full), list(resumed)
    assert steps == 4 and len(full_batches) == 16 and len(resumed_batches) == 8
    for (xa, ya), (xb, yb) in zip(full_batches[8:], resumed_batches, strict=True):
        assert np.array_equal(xa, xb) and np.array_equal(ya, yb)
    # Augmentation happened: the first epoch's batches are not the plain scaled images.
    plain = x.astype(np.float32) / np.float32(255.0)
    assert not any(np.array_equal(full_batches[0][0], plain[i : i + 32]) for i in range(69))


@pytest.mark.parametrize("workers", [1, 4])
def test_prefetching_threads_give_the_batches_in_order(workers: int) -> None:
    x, y = _data()
    config = validate_training_config(
        {"epochs": 3, "batch_size": 16, "augmentation": AUGMENT_ALL}, {"max_epochs": 3}
    )
    batches = TrainBatches(x, y, config=config, num_classes=4, seed=5)
    streamed = list(batches.stream(0, workers=workers, prefetch=6))
    assert len(streamed) == 3 * batches.steps
    for position, (images, labels) in enumerate(streamed):
        epoch, step = divmod(position, batches.steps)
        expected_images, expected_labels = batches.batch(epoch, step)
        assert np.array_equal(images, expected_images) and np.array_equal(labels, expected_labels)


def test_each_epoch_visits_every_example_once_in_a_new_order() -> None:
    x, y = _data()
    config = validate_training_config({"epochs": 2, "batch_size": 32}, {"max_epochs": 2})
    dataset, steps = make_train_dataset(x, y, config=config, num_classes=4, seed=1, initial_epoch=0)
    batches = list(dataset)
    expected = np.sort(x.reshape(100, -1).astype(np.float32) / 255.0, axis=0)
    orders = []
    for epoch in range(2):
        images = np.concatenate([b[0] for b in batches[epoch * steps : (epoch + 1) * steps]])
        labels = np.concatenate([b[1] for b in batches[epoch * steps : (epoch + 1) * steps]])
        assert images.dtype == np.float32 and images.max() <= 1.0
        np.testing.assert_allclose(np.sort(images.reshape(100, -1), axis=0), expected, rtol=1e-6)
        # Each image still carries its own label.
        for image, label in zip(images[:10], labels[:10], strict=True):
            (index,) = np.nonzero(
                np.all(x == np.round(image * 255).astype(np.uint8), axis=(1, 2, 3))
            )
            assert y[index[0]] == label
        orders.append(images[:, 0, 0, 0])
    assert not np.array_equal(orders[0], orders[1])


def test_another_seed_gives_another_order() -> None:
    x, y = _data()
    config = validate_training_config({"epochs": 1, "batch_size": 100}, {"max_epochs": 1})
    first = TrainBatches(x, y, config=config, num_classes=4, seed=0).batch(0, 0)[1]
    again = TrainBatches(x, y, config=config, num_classes=4, seed=0).batch(0, 0)[1]
    other = TrainBatches(x, y, config=config, num_classes=4, seed=1).batch(0, 0)[1]
    assert np.array_equal(first, again) and not np.array_equal(first, other)


def test_label_smoothing_makes_one_hot_targets() -> None:
    x, y = _data(8)
    config = validate_training_config(
        {"epochs": 1, "batch_size": 8, "label_smoothing": 0.1}, {"max_epochs": 1}
    )
    dataset, _ = make_train_dataset(x, y, config=config, num_classes=4, seed=0, initial_epoch=0)
    ((_, targets),) = list(dataset)
    assert targets.shape == (8, 4) and targets.dtype == np.float32
    assert np.all(targets.sum(axis=1) == 1.0)


def test_a_stream_dropped_early_stops_its_threads() -> None:
    x, y = _data(1000)
    config = validate_training_config({"epochs": 50, "batch_size": 10}, {"max_epochs": 50})
    before = threading.active_count()
    stream = TrainBatches(x, y, config=config, num_classes=4, seed=0).stream(0, workers=3)
    next(stream)
    stream.close()  # what dropping the iterator does once a fit ends early
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= before


def test_flip_mirrors_or_keeps_each_image() -> None:
    x = np.random.default_rng(1).random((64, 5, 6, 3)).astype(np.float32)
    out = random_flip(x, generator(3, 4))
    mirrored = [np.array_equal(o, i[:, ::-1]) for o, i in zip(out, x, strict=True)]
    kept = [np.array_equal(o, i) for o, i in zip(out, x, strict=True)]
    assert all(m or k for m, k in zip(mirrored, kept, strict=True))
    assert 10 < sum(mirrored) < 54  # about half, per image


@pytest.mark.parametrize(
    ("shape", "dtype"),
    [
        ((16, 16, 16, 1), np.float32),
        ((16, 32, 32, 3), np.uint8),
        ((16, 9, 14, 3), np.uint8),
        ((16, 28, 28, 1), np.uint8),
    ],
)
def test_translate_is_a_crop_of_the_reflect_padded_image(shape: tuple, dtype: type) -> None:
    x = (np.random.default_rng(2).random(shape) * 255).astype(dtype)
    out = random_translate(x, generator(5, 6))
    assert out.shape == x.shape and out.dtype == x.dtype
    height, width = shape[1:3]
    pad = max(1, round(min(height, width) * 0.125))
    shifts = set()
    for image, original in zip(out, x, strict=True):
        padded = np.pad(original, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
        matches = [
            (dr, dc)
            for dr in range(2 * pad + 1)
            for dc in range(2 * pad + 1)
            if np.array_equal(image, padded[dr : dr + height, dc : dc + width])
        ]
        assert matches, "not a crop of the padded image"
        shifts.add(matches[0])
    assert len(shifts) > 3  # offsets differ between images


def test_cutout_zeroes_one_square_per_image() -> None:
    x = np.ones((32, 16, 16, 3), dtype=np.uint8)
    out = random_cutout(x, generator(1, 2))
    assert out.dtype == np.uint8
    for image in out:
        zero = image[..., 0] == 0
        assert 0 < zero.sum() <= 16  # a 4x4 square, clipped at borders
        rows, cols = np.nonzero(zero)
        assert zero[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all()
        assert np.all(image[zero] == 0) and np.all(image[~zero] == 1)


def test_augmenting_uint8_then_scaling_equals_scaling_then_augmenting() -> None:
    # The pipeline augments uint8 images before scaling them: the ops only move, mirror and
    # zero pixels, so the order must not matter.
    x = np.random.default_rng(3).integers(0, 256, (32, 12, 12, 3), dtype=np.uint8)
    names = ("flip", "translate", "cutout")
    scaled_after = augment_batch(x, names, seed=9, step=4).astype(np.float32) / np.float32(255)
    scaled_before = augment_batch(x.astype(np.float32) / np.float32(255), names, seed=9, step=4)
    assert np.array_equal(scaled_after, scaled_before)
    # A pure function of (seed, step): the same again, another step differs.
    assert np.array_equal(augment_batch(x, names, seed=9, step=4), augment_batch(x, names, 9, 4))
    assert not np.array_equal(augment_batch(x, names, 9, 4), augment_batch(x, names, 9, 5))
