"""Benchmark: the trainer's input pipeline and fit against a plain ``model.fit`` on NumPy arrays.

Same model (rebuilt from the same JSON with the same seed), same data, same batch size, in one
process. The plain side is what a course notebook does: ``x / 255.0`` in NumPy once, then
``model.fit(x, y, batch_size)``. The trainer side is `grader.training`: uint8 arrays gathered
and scaled per batch in tf.data, stateless shuffling, prefetch, and on a GPU mixed precision
plus XLA. Each side's first epoch (tracing, compilation) is reported apart; the steady figure is
the median of the later epochs.

Run: ``.venv/bin/python bench/bench_trainer.py --dataset synthetic --epochs 3 --samples 2048``
or ``--dataset cifar10-shaped`` (random 32x32x3 arrays, the course's ~75k-parameter
SeparableConv2D model from ``tests/fixtures/models``). Add ``--augment`` to include flips and
translations on the trainer side (the plain side has none, so that ratio is a cost, not a race).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ["KERAS_BACKEND"] = "tensorflow"
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras
import numpy as np
import tensorflow as tf

from grader.datasets.synthetic import make_synthetic
from grader.training.accelerator import configure_accelerator, with_dtype_policy
from grader.training.config import validate_training_config
from grader.training.optimization import compile_model
from grader.training.pipeline import make_train_dataset
from grader.training.safe_model import build_model

MODELS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "models"


class EpochTimer(keras.callbacks.Callback):
    """Wall time of each epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        self.seconds.append(time.perf_counter() - self._started)


def load_data(name: str, samples: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    if name == "synthetic":
        x, y = make_synthetic(samples, seed=0)
        config = json.loads((MODELS / "smoke_separable.json").read_text())
    else:
        rng = np.random.default_rng(0)
        x = rng.integers(0, 256, (samples, 32, 32, 3), dtype=np.uint8)
        y = rng.integers(0, 10, samples).astype(np.int64)
        config = json.loads((MODELS / "cifar10_separable_reference.json").read_text())
    return x, y, config


def summarise(label: str, timer: EpochTimer, samples: int) -> float:
    first, rest = timer.seconds[0], timer.seconds[1:] or timer.seconds
    steady = statistics.median(rest)
    print(
        f"{label:<34} first epoch {first:7.2f} s   steady {steady:7.2f} s/epoch   "
        f"{samples / steady:9,.0f} images/s"
    )
    return samples / steady


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["synthetic", "cifar10-shaped"], default="synthetic")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--augment", action="store_true")
    args = parser.parse_args()

    x, y, model_config = load_data(args.dataset, args.samples)
    accelerator = configure_accelerator()
    device = tf.config.list_physical_devices("GPU") or ["CPU"]
    print(f"device: {device[0]}; trainer side: {accelerator}")
    print(f"dataset {args.dataset}: {args.samples:,} images {x.shape[1:]}, batch {args.batch_size}")

    augmentation = ["flip", "translate"] if args.augment else []
    training = validate_training_config(
        {"epochs": args.epochs, "batch_size": args.batch_size, "augmentation": augmentation},
        {"max_epochs": args.epochs, "max_batch_size": 4096},
    )

    # Baseline: plain fit on float arrays scaled once in NumPy, float32, no XLA.
    keras.utils.set_random_seed(0)
    plain = build_model(model_config)
    plain.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    timer = EpochTimer()
    plain.fit(
        x.astype(np.float32) / 255.0,
        y,
        batch_size=args.batch_size,
        epochs=args.epochs,
        callbacks=[timer],
        verbose=0,
    )
    baseline = summarise("plain model.fit(numpy)", timer, args.samples)

    keras.utils.set_random_seed(0)
    config = (
        with_dtype_policy(model_config, accelerator.mixed_precision)
        if accelerator.mixed_precision
        else model_config
    )
    model = build_model(config)
    dataset, steps = make_train_dataset(
        x, y, config=training, num_classes=int(y.max()) + 1, seed=0, initial_epoch=0
    )
    compile_model(model, training, steps, accelerator.jit_compile)
    timer = EpochTimer()
    model.fit(
        dataset,
        epochs=args.epochs,
        steps_per_epoch=steps,
        callbacks=[timer],
        shuffle=False,
        verbose=0,
    )
    label = "grader trainer (tf.data"
    label += ", mixed+XLA)" if accelerator.gpu else ")"
    ours = summarise(label, timer, args.samples)
    print(f"ratio trainer / plain: {ours / baseline:.2f}x images/s")


if __name__ == "__main__":
    main()
