"""The trainer's input pipeline as shipped before it became NumPy: tf.data and tf.* augmentation.

Kept for `bench_trainer.py` only, as the baseline the NumPy pipeline (`grader.training.pipeline`)
must not be slower than on TensorFlow. Verbatim from commit 41605bc (`grader/training/pipeline.py`
and `augment.py`), the two modules joined; nothing in the product imports it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from grader.training.config import TrainingConfig

PIXEL_SCALE = 1.0 / 255.0
TRANSLATE_FRACTION = 0.125
CUTOUT_FRACTION = 0.25


def random_flip(images: Any, seed: Any) -> Any:
    """Mirror each image left-right with probability 1/2."""
    import tensorflow as tf

    flip = tf.random.stateless_uniform([tf.shape(images)[0], 1, 1, 1], seed=seed) < 0.5
    return tf.where(flip, tf.reverse(images, axis=[2]), images)


def random_translate(images: Any, seed: Any) -> Any:
    """Shift each image by up to `TRANSLATE_FRACTION` of its side, filling with reflections."""
    import tensorflow as tf

    height, width = images.shape[1], images.shape[2]
    pad = max(1, round(min(height, width) * TRANSLATE_FRACTION))
    padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
    batch = tf.shape(images)[0]
    offsets = tf.random.stateless_uniform(
        [batch, 2], seed=seed, minval=0, maxval=2 * pad + 1, dtype=tf.int32
    )
    rows = offsets[:, :1] + tf.range(height)[None, :]
    cols = offsets[:, 1:] + tf.range(width)[None, :]
    # Per-example crops as two batched gathers: no Python loop, no per-image map.
    cropped = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(cropped, cols, axis=2, batch_dims=1)


def random_cutout(images: Any, seed: Any) -> Any:
    """Zero one square of side `CUTOUT_FRACTION` x side per image, at a random centre."""
    import tensorflow as tf

    height, width = images.shape[1], images.shape[2]
    size = max(1, round(min(height, width) * CUTOUT_FRACTION))
    batch = tf.shape(images)[0]
    centre = tf.random.stateless_uniform([batch, 2], seed=seed, minval=0.0, maxval=1.0)
    centre_r = tf.cast(centre[:, 0] * height, tf.int32)[:, None, None]
    centre_c = tf.cast(centre[:, 1] * width, tf.int32)[:, None, None]
    rows = tf.range(height)[None, :, None]
    cols = tf.range(width)[None, None, :]
    half = size // 2
    inside = (
        (rows >= centre_r - half)
        & (rows < centre_r - half + size)
        & (cols >= centre_c - half)
        & (cols < centre_c - half + size)
    )
    return images * tf.cast(~inside, images.dtype)[..., None]


AUGMENTERS = {"flip": random_flip, "translate": random_translate, "cutout": random_cutout}


def augment_batch(images: Any, names: tuple[str, ...], seed: Any) -> Any:
    """Apply the named augmentations in canonical order, each with its own derived seed."""
    import tensorflow as tf

    for index, name in enumerate(names):
        op_seed = tf.random.experimental.stateless_fold_in(seed, index)
        images = AUGMENTERS[name](images, op_seed)
    return images


def make_train_dataset(
    x: np.ndarray,
    y: np.ndarray,
    *,
    config: TrainingConfig,
    num_classes: int,
    seed: int,
    initial_epoch: int,
) -> tuple[Any, int]:
    """The training input pipeline from `initial_epoch` to the last epoch, and steps per epoch.

    uint8 images stay uint8 until a batch is gathered, then become float32 in [0, 1]; shuffling
    and augmentation are stateless functions of the seed, epoch and step (see module docstring).
    """
    import tensorflow as tf

    count = int(x.shape[0])
    batch_size = config.batch_size
    steps = math.ceil(count / batch_size)
    images = tf.constant(np.ascontiguousarray(x))
    labels = tf.constant(np.ascontiguousarray(y))
    base_seed = tf.constant(seed, dtype=tf.int64)

    def epoch_batches(epoch: Any) -> Any:
        order = tf.random.experimental.stateless_shuffle(
            tf.range(count, dtype=tf.int64), seed=tf.stack([base_seed, epoch])
        )

        def global_step(step: Any, index: Any) -> tuple[Any, Any]:
            return epoch * steps + step, index

        batches = tf.data.Dataset.from_tensor_slices(order).batch(batch_size).enumerate()
        return batches.map(global_step)

    def load(step: Any, index: Any) -> tuple[Any, Any]:
        batch = tf.cast(tf.gather(images, index), tf.float32) * PIXEL_SCALE
        if config.augmentation:
            batch = augment_batch(batch, config.augmentation, tf.stack([base_seed, step]))
        target = tf.gather(labels, index)
        if config.label_smoothing:
            target = tf.one_hot(target, num_classes)
        return batch, target

    dataset = (
        tf.data.Dataset.range(initial_epoch, config.epochs)
        .flat_map(epoch_batches)
        .map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .prefetch(tf.data.AUTOTUNE)
    )
    return dataset, steps
