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


def _as_pixels(images: np.ndarray) -> np.ndarray:
    """``(N, H, W)`` view of ``(N, H, W, C)`` images, one opaque element per pixel.

    Moving whole pixels instead of C separate numbers makes NumPy's mirrored and strided
    copies several times faster (each pixel is one memcpy, not an inner loop of length C).
    """
    images = np.ascontiguousarray(images)
    pixel = np.dtype((np.void, images.shape[-1] * images.itemsize))
    return images.view(pixel)[..., 0]


def _from_pixels(pixels: np.ndarray, like: np.ndarray) -> np.ndarray:
    return pixels[..., None].view(like.dtype).reshape(pixels.shape + like.shape[-1:])


def random_flip(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mirror each image left-right with probability 1/2."""
    flip = np.less(rng.random(images.shape[0]), 0.5)
    pixels = _as_pixels(images)
    out = pixels.copy()
    out[flip] = pixels[flip, :, ::-1]
    return _from_pixels(out, images)


def _reflect_pad(pixels: np.ndarray, pad: int) -> np.ndarray:
    """``np.pad(..., mode="reflect")`` of rows and columns, by slices (NumPy's is slower)."""
    count, height, width = pixels.shape
    if pad >= min(height, width):  # reflection needs more rows than the pad: NumPy handles it
        return np.pad(pixels, ((0, 0), (pad, pad), (pad, pad)), mode="reflect")
    out = np.empty((count, height + 2 * pad, width + 2 * pad), pixels.dtype)
    out[:, pad : pad + height, pad : pad + width] = pixels
    out[:, :pad, pad : pad + width] = pixels[:, pad:0:-1]
    out[:, pad + height :, pad : pad + width] = pixels[:, height - 2 :: -1][:, :pad]
    out[:, :, :pad] = out[:, :, 2 * pad : pad : -1]
    out[:, :, pad + width :] = out[:, :, pad + width - 2 :: -1][:, :, :pad]
    return out


def random_translate(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shift each image by up to `TRANSLATE_FRACTION` of its side, filling with reflections."""
    count, height, width = images.shape[:3]
    pad = max(1, round(min(height, width) * TRANSLATE_FRACTION))
    padded = _reflect_pad(_as_pixels(images), pad)
    offsets = rng.integers(0, 2 * pad + 1, size=(count, 2)).tolist()
    out = np.empty((count, height, width), padded.dtype)
    # One slice copy per image: faster in NumPy than a batched fancy-index gather, whose
    # per-element indexing dominates at these sizes.
    for index, (row, col) in enumerate(offsets):
        out[index] = padded[index, row : row + height, col : col + width]
    return _from_pixels(out, images)


def random_cutout(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Zero one square of side `CUTOUT_FRACTION` x side per image, at a random centre."""
    count, height, width = images.shape[:3]
    size = max(1, round(min(height, width) * CUTOUT_FRACTION))
    centre = rng.random((count, 2))
    rows = (centre[:, 0] * height).astype(np.int64) - size // 2
    cols = (centre[:, 1] * width).astype(np.int64) - size // 2
    out = images.copy()
    for index, (row, col) in enumerate(zip(rows.tolist(), cols.tolist(), strict=True)):
        # The square is clipped at the borders.
        out[index, max(row, 0) : max(row + size, 0), max(col, 0) : max(col + size, 0)] = 0
    return out


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
