"""A deterministic, seeded image dataset that small CNNs learn in seconds on a CPU.

Four classes of 16x16 RGB patterns: horizontal stripes, vertical stripes, a Gaussian blob and a
checkerboard. Each image draws its own period, phase, position, foreground and background colours
and additive noise, so no two images repeat and a model has to learn the pattern's geometry, not
a colour or a pixel. The `smoke` preset relies on a small separable CNN reaching at least 0.8
validation accuracy in a few epochs here.

The graded copy is `make_keyed_synthetic`: each image is drawn from a generator of its own, seeded
from the deployment's dataset key (`grader.datasets.keys`), so the test images cannot be
regenerated from this code, nor from the training images a sandbox sees (recovering one image's
generator state reveals nothing about another's). `make_synthetic` (one public seed) is for
experiments and tests.
"""

from __future__ import annotations

import numpy as np

from grader.datasets.keys import derive_seed

CLASS_NAMES: tuple[str, ...] = ("horizontal_stripes", "vertical_stripes", "blob", "checkerboard")
IMAGE_SIZE = 16
NOISE_STD = 0.08


def _pattern(label: int, rng: np.random.Generator, size: int) -> np.ndarray:
    """One pattern in [0, 1] of shape (size, size)."""
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    if label in (0, 1):
        period = rng.uniform(3.0, 6.0)
        phase = rng.uniform(0.0, period)
        axis = rows if label == 0 else cols
        return 0.5 + 0.5 * np.sin(2.0 * np.pi * (axis + phase) / period)
    if label == 2:
        centre_r, centre_c = rng.uniform(size * 0.25, size * 0.75, size=2)
        sigma = rng.uniform(1.8, 3.2)
        return np.exp(-((rows - centre_r) ** 2 + (cols - centre_c) ** 2) / (2.0 * sigma**2))
    cell = int(rng.integers(2, 5))
    offset_r, offset_c = rng.integers(0, cell, size=2)
    return (((rows + offset_r) // cell + (cols + offset_c) // cell) % 2).astype(np.float64)


def _render(label: int, rng: np.random.Generator) -> np.ndarray:
    """One uint8 image of class `label`, drawing everything it varies from `rng`."""
    pattern = _pattern(label, rng, IMAGE_SIZE)[..., None]
    foreground = rng.uniform(0.55, 1.0, size=3)
    background = rng.uniform(0.0, 0.35, size=3)
    image = background + (foreground - background) * pattern
    image += rng.normal(0.0, NOISE_STD, size=image.shape)
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def make_keyed_synthetic(
    num_examples: int, *, key: str, split: str
) -> tuple[np.ndarray, np.ndarray]:
    """Generate the `split` split of the graded synthetic dataset from the dataset key.

    Args:
        num_examples: how many images; balanced like `make_synthetic`.
        key: the deployment's dataset key (`grader.datasets.keys.check_key`).
        split: names the split (``"train"``, ``"test"``); each split's images are independent.

    Returns:
        ``(x, y)`` as `make_synthetic` returns them.

    Raises:
        DatasetUnavailable: the key is missing or too short.
    """
    labels = np.arange(num_examples, dtype=np.int64) % len(CLASS_NAMES)
    order = np.random.Generator(np.random.PCG64(derive_seed(key, "synthetic", split, "order")))
    order.shuffle(labels)
    images = np.empty((num_examples, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    for index, label in enumerate(labels):
        seed = derive_seed(key, "synthetic", split, "image", str(index))
        images[index] = _render(int(label), np.random.Generator(np.random.PCG64(seed)))
    return images, labels


def make_synthetic(num_examples: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Generate `num_examples` balanced images and labels from `seed`.

    Args:
        num_examples: how many images; the classes take turns, so counts differ by at most one.
        seed: the same seed always gives the same arrays, on every platform (PCG64 is portable).

    Returns:
        ``(x, y)``: uint8 images of shape (n, 16, 16, 3) and int64 labels in ``[0, 4)``.
    """
    rng = np.random.Generator(np.random.PCG64(seed))
    labels = np.arange(num_examples, dtype=np.int64) % len(CLASS_NAMES)
    rng.shuffle(labels)
    images = np.empty((num_examples, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    for index, label in enumerate(labels):
        images[index] = _render(int(label), rng)
    return images, labels
