"""Benchmark: the trainer's input pipeline and fit against a plain ``model.fit`` on NumPy arrays.

Same model (rebuilt from the same JSON with the same seed), same data, same batch size, in one
process. The plain side is what a course notebook does: ``x / 255.0`` in NumPy once, then
``model.fit(x, y, batch_size)``. The trainer side is `grader.training`: uint8 arrays gathered
and scaled per batch in tf.data, stateless shuffling, prefetch, and on a GPU XLA (mixed precision
with --mixed-precision). Each side's first epoch (tracing, compilation) is reported apart; the
steady figure is the median of the later epochs.

Run: ``.venv/bin/python bench/bench_trainer.py --dataset synthetic --epochs 4 --repeats 3``
or ``--dataset cifar10-shaped`` (random 32x32x3 arrays, the course's ~75k-parameter
SeparableConv2D model from ``tests/fixtures/models``). Add ``--augment`` to include flips and
translations on the trainer side (the plain side has none, so that ratio is a cost, not a race).
With ``--repeats N`` the two sides alternate N times and the paired ratios' median is reported,
which keeps a shared machine's changing load from deciding the result.
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


def steady_rate(timer: EpochTimer, samples: int) -> float:
    """Images per second over the epochs after the first (tracing and compilation excluded)."""
    rest = timer.seconds[1:] or timer.seconds
    return samples / statistics.median(rest)


def run_plain(model_config: dict[str, Any], x: np.ndarray, y: np.ndarray, args: Any) -> EpochTimer:
    """Baseline: plain fit on float arrays scaled once in NumPy, float32, no XLA."""
    keras.utils.set_random_seed(0)
    model = build_model(model_config)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    timer = EpochTimer()
    model.fit(
        x.astype(np.float32) / 255.0,
        y,
        batch_size=args.batch_size,
        epochs=args.epochs,
        callbacks=[timer],
        verbose=0,
    )
    return timer


def run_trainer(
    model_config: dict[str, Any], x: np.ndarray, y: np.ndarray, args: Any, accelerator: Any
) -> EpochTimer:
    """The grader's path: tf.data pipeline, compile_model, XLA (and mixed precision) on a GPU."""
    augmentation = ["flip", "translate"] if args.augment else []
    training = validate_training_config(
        {"epochs": args.epochs, "batch_size": args.batch_size, "augmentation": augmentation},
        {"max_epochs": args.epochs, "max_batch_size": 4096},
    )
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
    return timer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["synthetic", "cifar10-shaped"], default="synthetic")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=1, help="alternating runs of each side")
    parser.add_argument("--augment", action="store_true")
    parser.add_argument(
        "--mixed-precision", action="store_true", help="on a GPU, the trainer side in bfloat16"
    )
    args = parser.parse_args()

    x, y, model_config = load_data(args.dataset, args.samples)
    accelerator = configure_accelerator(allow_mixed_precision=args.mixed_precision)
    device = tf.config.list_physical_devices("GPU") or ["CPU"]
    print(f"device: {device[0]}; trainer side: {accelerator}")
    print(
        f"dataset {args.dataset}: {args.samples:,} images {x.shape[1:]}, batch "
        f"{args.batch_size}, {args.epochs} epochs, {args.repeats} repeat(s)"
    )
    gpu_settings = ", XLA" + (
        f", {accelerator.mixed_precision}" if accelerator.mixed_precision else ""
    )
    label = "grader trainer (tf.data" + (gpu_settings if accelerator.gpu else "") + ")"
    rates: dict[str, list[float]] = {"plain": [], "trainer": []}
    ratios = []
    for repeat in range(args.repeats):
        # Alternate the sides so that a change in machine load hits both alike.
        plain = run_plain(model_config, x, y, args)
        ours = run_trainer(model_config, x, y, args, accelerator)
        for name, timer in (("plain", plain), ("trainer", ours)):
            rates[name].append(steady_rate(timer, args.samples))
            print(
                f"  repeat {repeat + 1} {name:<8} first epoch {timer.seconds[0]:7.2f} s   "
                f"steady {args.samples / rates[name][-1]:7.2f} s/epoch   "
                f"{rates[name][-1]:9,.0f} images/s"
            )
        ratios.append(rates["trainer"][-1] / rates["plain"][-1])
    for name, title in (("plain", "plain model.fit(numpy)"), ("trainer", label)):
        rate = statistics.median(rates[name])
        print(f"{title:<34} median {args.samples / rate:7.2f} s/epoch   {rate:9,.0f} images/s")
    print(f"ratio trainer / plain (median of paired runs): {statistics.median(ratios):.2f}x")


if __name__ == "__main__":
    main()
