"""The trainer's input pipeline, augmentations, schedules and mixed-precision rewrite.

The key property for resumption: the batches from epoch ``k`` on are identical whether the
pipeline starts at epoch 0 or at ``k``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from grader.training.accelerator import with_dtype_policy
from grader.training.config import learning_rate_at, validate_training_config
from grader.training.trainer import split_indices

pytestmark = pytest.mark.tf

MODELS = Path(__file__).resolve().parents[2] / "fixtures" / "models"


def _batches(dataset: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(x.numpy(), y.numpy()) for x, y in dataset]


def _data(count: int = 100) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (count, 8, 8, 3), dtype=np.uint8), np.arange(count) % 4


def test_resumed_pipeline_yields_the_same_batches() -> None:
    from grader.training.pipeline import make_train_dataset

    x, y = _data()
    config = validate_training_config(
        {"epochs": 4, "batch_size": 32, "augmentation": ["flip", "translate", "cutout"]},
        {"max_epochs": 4},
    )
    common = {"config": config, "num_classes": 4, "seed": 7}
    full, steps = make_train_dataset(x, y, initial_epoch=0, **common)
    resumed, _ = make_train_dataset(x, y, initial_epoch=2, **common)
    full_batches, resumed_batches = _batches(full), _batches(resumed)
    assert steps == 4 and len(full_batches) == 16 and len(resumed_batches) == 8
    for (xa, ya), (xb, yb) in zip(full_batches[8:], resumed_batches, strict=True):
        assert np.array_equal(xa, xb) and np.array_equal(ya, yb)


def test_each_epoch_visits_every_example_once_in_a_new_order() -> None:
    from grader.training.pipeline import make_train_dataset

    x, y = _data()
    config = validate_training_config({"epochs": 2, "batch_size": 32}, {"max_epochs": 2})
    dataset, steps = make_train_dataset(x, y, config=config, num_classes=4, seed=1, initial_epoch=0)
    batches = _batches(dataset)
    expected = np.sort(x.reshape(100, -1).astype(np.float32) / 255.0, axis=0)
    orders = []
    for epoch in range(2):
        images = np.concatenate([b[0] for b in batches[epoch * steps : (epoch + 1) * steps]])
        assert images.dtype == np.float32 and images.max() <= 1.0
        np.testing.assert_allclose(np.sort(images.reshape(100, -1), axis=0), expected, rtol=1e-6)
        orders.append(images[:, 0, 0, 0])
    assert not np.array_equal(orders[0], orders[1])


def test_label_smoothing_makes_one_hot_targets() -> None:
    from grader.training.pipeline import make_train_dataset

    x, y = _data(8)
    config = validate_training_config(
        {"epochs": 1, "batch_size": 8, "label_smoothing": 0.1}, {"max_epochs": 1}
    )
    dataset, _ = make_train_dataset(x, y, config=config, num_classes=4, seed=0, initial_epoch=0)
    ((_, targets),) = _batches(dataset)
    assert targets.shape == (8, 4) and np.all(targets.sum(axis=1) == 1.0)


def test_flip_mirrors_or_keeps_each_image() -> None:
    import tensorflow as tf

    from grader.training.augment import random_flip

    x = np.random.default_rng(1).random((64, 5, 6, 3)).astype(np.float32)
    out = random_flip(tf.constant(x), tf.constant([3, 4], dtype=tf.int64)).numpy()
    mirrored = [np.array_equal(o, i[:, ::-1]) for o, i in zip(out, x, strict=True)]
    kept = [np.array_equal(o, i) for o, i in zip(out, x, strict=True)]
    assert all(m or k for m, k in zip(mirrored, kept, strict=True))
    assert 10 < sum(mirrored) < 54  # about half, per image


def test_translate_is_a_crop_of_the_reflect_padded_image() -> None:
    import tensorflow as tf

    from grader.training.augment import random_translate

    x = np.random.default_rng(2).random((16, 16, 16, 1)).astype(np.float32)
    out = random_translate(tf.constant(x), tf.constant([5, 6], dtype=tf.int64)).numpy()
    pad = 2  # 16 * 0.125
    shifts = set()
    for image, original in zip(out, x, strict=True):
        padded = np.pad(original, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
        matches = [
            (dr, dc)
            for dr in range(2 * pad + 1)
            for dc in range(2 * pad + 1)
            if np.array_equal(image, padded[dr : dr + 16, dc : dc + 16])
        ]
        assert matches, "not a crop of the padded image"
        shifts.add(matches[0])
    assert len(shifts) > 3  # offsets differ between images


def test_cutout_zeroes_one_square_per_image() -> None:
    import tensorflow as tf

    from grader.training.augment import random_cutout

    x = np.ones((32, 16, 16, 3), dtype=np.float32)
    out = random_cutout(tf.constant(x), tf.constant([1, 2], dtype=tf.int64)).numpy()
    for image in out:
        zero = image[..., 0] == 0
        assert 0 < zero.sum() <= 16  # a 4x4 square, clipped at borders
        rows, cols = np.nonzero(zero)
        assert zero[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all()
        assert np.all(image[zero] == 0) and np.all(image[~zero] == 1)


@pytest.mark.parametrize(
    "schedule",
    [
        "constant",
        {"name": "step", "step_epochs": 2, "factor": 0.5},
        {"name": "exponential", "decay_rate": 0.8},
        {"name": "cosine", "min_fraction": 0.1},
        {"name": "cosine", "warmup_epochs": 1},
        {"name": "one-cycle", "warmup_fraction": 0.25, "initial_fraction": 0.1},
    ],
)
def test_keras_schedules_match_the_reference_arithmetic(schedule: Any) -> None:
    from grader.training.optimization import make_schedule

    config = validate_training_config(
        {"learning_rate": 0.1, "epochs": 6, "schedule": schedule}, {"max_epochs": 6}
    )
    keras_schedule = make_schedule(config, steps_per_epoch=10)
    for step in (0, 1, 5, 10, 19, 20, 33, 45, 59):
        got = keras_schedule if isinstance(keras_schedule, float) else float(keras_schedule(step))
        assert got == pytest.approx(learning_rate_at(config, step, 10), rel=1e-5, abs=1e-7)


def test_mixed_precision_rewrite_keeps_outputs_in_float32() -> None:
    from grader.training.safe_model import build_model

    config = json.loads((MODELS / "cifar10_separable_reference.json").read_text())
    model = build_model(with_dtype_policy(config, "mixed_bfloat16"))
    policies = {layer.name: layer.dtype_policy.name for layer in model.layers}
    assert policies["classifier"] == "float32"
    assert policies["separable_conv2d"] == "mixed_bfloat16"
    output = model(np.zeros((2, 32, 32, 3), dtype=np.float32))
    assert output.dtype.name == "float32"
    # The rewrite leaves the caller's config untouched.
    assert build_model(config).layers[1].dtype_policy.name == "float32"


def test_validation_split_is_deterministic_and_disjoint() -> None:
    train, val = split_indices(1000, 0.1, seed=3)
    again, _ = split_indices(1000, 0.1, seed=3)
    other, _ = split_indices(1000, 0.1, seed=4)
    assert len(val) == 100 and len(train) == 900
    assert np.array_equal(train, again) and not np.array_equal(train, other)
    assert not set(train) & set(val) and set(train) | set(val) == set(range(1000))
