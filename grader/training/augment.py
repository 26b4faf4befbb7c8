"""Batched, seeded data augmentation in NumPy (vectorised over the batch, any Keras backend).

Every op takes a whole batch of images (``(N, H, W, C)``, any dtype: the pipeline augments the
uint8 images before scaling them, a quarter of float32's memory traffic) and a NumPy
`Generator`, and returns a new batch. `augment_batch` derives each op's generator from
``(seed, global step, op index)`` alone: the same step gives the same augmented batch, so an
interrupted and resumed training run sees exactly the data an uninterrupted one would.

Every op only moves, mirrors or zeroes pixels, so augmenting before or after the scaling to
[0, 1] gives the same values.
"""

from __future__ import annotations

import numpy as np

from grader.training.seeds import AUGMENT_STREAM, generator

# Translation pads by this fraction of the image side (4 pixels on 32x32, as in the ResNet
# CIFAR recipe); cutout masks a square of this fraction of the side.
TRANSLATE_FRACTION = 0.125
CUTOUT_FRACTION = 0.25


def random_flip(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mirror each image left-right with probability 1/2."""
    flip = np.less(rng.random(images.shape[0]), 0.5)
    return np.where(flip[:, None, None, None], images[:, :, ::-1], images)


def random_translate(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shift each image by up to `TRANSLATE_FRACTION` of its side, filling with reflections."""
    count, height, width = images.shape[:3]
    pad = max(1, round(min(height, width) * TRANSLATE_FRACTION))
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
    offsets = rng.integers(0, 2 * pad + 1, size=(count, 2))
    rows = offsets[:, :1] + np.arange(height)[None, :]
    cols = offsets[:, 1:] + np.arange(width)[None, :]
    # Per-example crops as one batched gather: no Python loop over images.
    return padded[np.arange(count)[:, None, None], rows[:, :, None], cols[:, None, :]]


def random_cutout(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Zero one square of side `CUTOUT_FRACTION` x side per image, at a random centre."""
    count, height, width = images.shape[:3]
    size = max(1, round(min(height, width) * CUTOUT_FRACTION))
    centre = rng.random((count, 2))
    centre_r = (centre[:, 0] * height).astype(np.int64)[:, None, None]
    centre_c = (centre[:, 1] * width).astype(np.int64)[:, None, None]
    rows = np.arange(height)[None, :, None]
    cols = np.arange(width)[None, None, :]
    half = size // 2
    inside = (
        (rows >= centre_r - half)
        & (rows < centre_r - half + size)
        & (cols >= centre_c - half)
        & (cols < centre_c - half + size)
    )
    return np.where(inside[..., None], np.zeros((), images.dtype), images)


AUGMENTERS = {"flip": random_flip, "translate": random_translate, "cutout": random_cutout}


def augment_batch(images: np.ndarray, names: tuple[str, ...], seed: int, step: int) -> np.ndarray:
    """Apply the named augmentations in canonical order, each with its own derived generator.

    Args:
        images: the batch, ``(N, H, W, C)``.
        names: augmentation names (keys of `AUGMENTERS`), applied in this order.
        seed: the training run's seed.
        step: the global step (``epoch * steps_per_epoch + step in epoch``) of this batch.

    Returns:
        The augmented batch (same shape and dtype); a pure function of the arguments.
    """
    for index, name in enumerate(names):
        images = AUGMENTERS[name](images, generator(seed, AUGMENT_STREAM, step, index))
    return images
