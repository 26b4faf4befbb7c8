"""The tf.data input pipelines: uint8 arrays in, float32 batches in [0, 1] out.

Images stay uint8 (a quarter of float32's memory) until a batch is gathered. Training batches
are shuffled per epoch with ``stateless_shuffle`` seeded by ``(seed, epoch)`` and augmented with
stateless ops seeded by ``(seed, global step)``: the stream from epoch ``k`` on is the same
whether or not the run was interrupted before ``k``, which is what makes resuming exact.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from grader.training.config import TrainingConfig

PIXEL_SCALE = 1.0 / 255.0  # inputs reach every model as float32 in [0, 1]


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

    from grader.training.augment import augment_batch

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


def make_eval_dataset(
    x: np.ndarray, y: np.ndarray | None, *, batch_size: int, num_classes: int, one_hot: bool
) -> Any:
    """Batches of float32 images in [0, 1] (and labels, when given), in order, no augmentation."""
    import tensorflow as tf

    def scale(batch: Any) -> Any:
        return tf.cast(batch, tf.float32) * PIXEL_SCALE

    def scale_with_target(batch: Any, target: Any) -> tuple[Any, Any]:
        return scale(batch), tf.one_hot(target, num_classes) if one_hot else target

    images = tf.data.Dataset.from_tensor_slices(np.ascontiguousarray(x))
    if y is None:
        return images.batch(batch_size).map(scale).prefetch(tf.data.AUTOTUNE)
    labels = tf.data.Dataset.from_tensor_slices(np.ascontiguousarray(y))
    return (
        tf.data.Dataset.zip((images, labels))
        .batch(batch_size)
        .map(scale_with_target)
        .prefetch(tf.data.AUTOTUNE)
    )
