"""Batched, stateless data augmentation in TensorFlow ops (vectorised: cheap on CPU and GPU).

Every op takes a whole batch and a ``seed`` tensor of shape (2,), and draws its randomness with
``tf.random.stateless_*``: the same seed gives the same augmented batch, so an interrupted and
resumed training run sees exactly the data an uninterrupted one would.
"""

from __future__ import annotations

from typing import Any

# Translation pads by this fraction of the image side (4 pixels on 32x32, as in the ResNet
# CIFAR recipe); cutout masks a square of this fraction of the side.
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
