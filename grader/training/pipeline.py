"""The input pipelines, in NumPy: uint8 arrays in, float32 batches in [0, 1] out, any backend.

Images stay uint8 (a quarter of float32's memory) until a batch is gathered. Training batches
are shuffled per epoch with a generator seeded by ``(seed, epoch)`` and augmented with one
seeded by ``(seed, global step)`` (`grader.training.seeds`): every batch is a pure function of
the seed, its epoch and its step, so the stream from epoch ``k`` on is the same whether or not
the run was interrupted before ``k``, which is what makes resuming exact, and the same on the
TensorFlow and the JAX backends.

Batches are prepared ahead by a small thread pool (NumPy's gathers and copies release the GIL)
and handed to Keras in order: Keras feeds a Python iterator to every backend (on TensorFlow
through ``tf.data.Dataset.from_generator``), so nothing here imports a framework, and with the
JAX backend selected the training path never imports TensorFlow.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from grader.training.config import TrainingConfig
from grader.training.seeds import SHUFFLE_STREAM, generator

PIXEL_SCALE = np.float32(1.0 / 255.0)  # inputs reach every model as float32 in [0, 1]
#: Threads preparing training batches, and how many batches may wait ready (or in the making).
PIPELINE_WORKERS = 2
PIPELINE_PREFETCH = 4

Batch = tuple[np.ndarray, np.ndarray]


def scale_images(images: np.ndarray) -> np.ndarray:
    """uint8 images to float32 in [0, 1], exactly as every model is fed (training and grading)."""
    return np.multiply(images, PIXEL_SCALE, dtype=np.float32)  # one pass, no uint8 copy


def to_one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """float32 one-hot rows of integer labels."""
    return np.eye(num_classes, dtype=np.float32)[labels]


class TrainBatches:
    """Every training batch of a run as a pure function of ``(epoch, step)``.

    Args:
        x: uint8 images ``(N, H, W, C)`` (a memory map is read into memory once).
        y: int64 labels ``(N,)``.
        config: the validated training config (batch size, epochs, augmentation, smoothing).
        num_classes: for one-hot targets (label smoothing).
        seed: the run's seed.
    """

    def __init__(
        self, x: np.ndarray, y: np.ndarray, *, config: TrainingConfig, num_classes: int, seed: int
    ) -> None:
        self.images = np.ascontiguousarray(x)
        self.labels = np.ascontiguousarray(y)
        self.config = config
        self.num_classes = num_classes
        self.seed = seed
        self.count = int(self.images.shape[0])
        self.steps = math.ceil(self.count / config.batch_size)

    def order(self, epoch: int) -> np.ndarray:
        """The example indices of `epoch`, in the order they are visited."""
        return generator(self.seed, SHUFFLE_STREAM, epoch).permutation(self.count)

    def load(self, index: np.ndarray, global_step: int) -> Batch:
        """The batch of the examples at `index`, augmented as global step `global_step`."""
        from grader.training.augment import augment_batch

        images = np.take(self.images, index, axis=0)
        if self.config.augmentation:
            images = augment_batch(images, self.config.augmentation, self.seed, global_step)
        target = np.take(self.labels, index, axis=0)
        if self.config.label_smoothing:
            target = to_one_hot(target, self.num_classes)
        return scale_images(images), target

    def batch(self, epoch: int, step: int) -> Batch:
        """Batch `step` of `epoch` (for tests and tools; the stream computes each order once)."""
        size = self.config.batch_size
        index = self.order(epoch)[step * size : (step + 1) * size]
        return self.load(index, epoch * self.steps + step)

    def stream(
        self,
        initial_epoch: int,
        *,
        workers: int = PIPELINE_WORKERS,
        prefetch: int = PIPELINE_PREFETCH,
    ) -> Generator[Batch, None, None]:
        """The batches of epochs `initial_epoch` .. last, in order, prepared ahead in threads."""
        size = self.config.batch_size

        def keys() -> Iterator[tuple[np.ndarray, int]]:
            for epoch in range(initial_epoch, self.config.epochs):
                order = self.order(epoch)
                for step in range(self.steps):
                    yield order[step * size : (step + 1) * size], epoch * self.steps + step

        pending: collections.deque[Future[Batch]] = collections.deque()
        pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="grader-batch")
        try:
            for index, global_step in keys():
                pending.append(pool.submit(self.load, index, global_step))
                if len(pending) > max(1, prefetch):
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            # A fit that stops early (a NaN loss, an interruption) drops the iterator.
            pool.shutdown(wait=False, cancel_futures=True)


def make_train_dataset(
    x: np.ndarray,
    y: np.ndarray,
    *,
    config: TrainingConfig,
    num_classes: int,
    seed: int,
    initial_epoch: int,
) -> tuple[Generator[Batch, None, None], int]:
    """The training batches from `initial_epoch` to the last epoch, and steps per epoch.

    uint8 images stay uint8 until a batch is gathered, then become float32 in [0, 1]; shuffling
    and augmentation are pure functions of the seed, epoch and step (see module docstring). Pass
    the iterator to ``model.fit`` with ``steps_per_epoch`` (Keras then keeps drawing from it
    across epochs). Its threads stop when it is exhausted, closed or garbage-collected (not
    closed by the trainer: a backend's own prefetching may be inside it when a fit ends).
    """
    batches = TrainBatches(x, y, config=config, num_classes=num_classes, seed=seed)
    return batches.stream(initial_epoch), batches.steps


def make_eval_dataset(
    x: np.ndarray, y: np.ndarray | None, *, batch_size: int, num_classes: int, one_hot: bool
) -> Any:
    """A ``keras.utils.PyDataset`` of float32 images in [0, 1] (and labels, when given), in
    order, no augmentation; re-iterable, so it serves as per-epoch validation data."""
    import keras

    images = np.ascontiguousarray(x)
    labels = None if y is None else np.ascontiguousarray(y)

    class EvalBatches(keras.utils.PyDataset):
        def __len__(self) -> int:
            return math.ceil(len(images) / batch_size)

        def __getitem__(self, index: int) -> Any:
            chunk = slice(index * batch_size, (index + 1) * batch_size)
            batch = scale_images(images[chunk])
            if labels is None:
                return (batch,)
            target = labels[chunk]
            return batch, to_one_hot(target, num_classes) if one_hot else target

    return EvalBatches()
