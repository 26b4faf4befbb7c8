"""Benchmark: the trainer's input pipeline and fit against its tf.data predecessor and plain fit.

Same model (rebuilt from the same JSON with the same seed), same data, same batch size, in one
process, three sides:

- ``plain``: what a course notebook does: ``x / 255.0`` in NumPy once, then
  ``model.fit(x, y, batch_size)``;
- ``tf.data``: the trainer's pipeline as shipped before it became backend-agnostic (uint8 arrays
  gathered, scaled and augmented per batch in tf.data with stateless ops; kept in
  ``bench/tf_data_pipeline.py`` for this comparison only), TensorFlow backend only;
- ``trainer``: `grader.training` today: the NumPy pipeline (per-batch gather, scaling and
  augmentation from counter-based seeds, prepared ahead in threads), `compile_model`, and on a
  GPU XLA (mixed precision with --mixed-precision).

The gate: on TensorFlow, ``trainer`` is not slower than ``tf.data`` (ratio >= 1.00 within noise).
Each side's first epoch (tracing, compilation) is reported apart; the steady figure is the
median of the later epochs.

Run: ``.venv/bin/python bench/bench_trainer.py --dataset synthetic --epochs 4 --repeats 3``
or ``--dataset cifar10-shaped`` (random 32x32x3 arrays, the course's ~75k-parameter
SeparableConv2D model from ``tests/fixtures/models``). Add ``--augment`` to include flips and
translations on the trainer and tf.data sides (the plain side has none, so that ratio is a cost,
not a race).
With ``--repeats N`` the sides alternate N times and the paired ratios' medians are reported,
which keeps a shared machine's changing load from deciding the result. ``--backend jax`` runs the
plain and trainer sides on Keras' JAX backend (TensorFlow is then never imported).
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
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# The backend is fixed when Keras is imported: read it from the command line first.
_early = argparse.ArgumentParser(add_help=False)
_early.add_argument("--backend", default="tensorflow")
BACKEND = _early.parse_known_args()[0].backend
from grader.training.backend import select_backend  # noqa: E402

select_backend(BACKEND)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from grader.datasets.synthetic import make_synthetic  # noqa: E402
from grader.training.accelerator import configure_accelerator, with_dtype_policy  # noqa: E402
from grader.training.backend import set_random_seed  # noqa: E402
from grader.training.config import validate_training_config  # noqa: E402
from grader.training.optimization import compile_model  # noqa: E402
from grader.training.pipeline import make_train_dataset  # noqa: E402
from grader.training.safe_model import build_model  # noqa: E402

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
    """Baseline: plain fit on float arrays scaled once in NumPy, float32, no XLA (JAX: XLA)."""
    set_random_seed(0)
    model = build_model(model_config)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=BACKEND == "jax",
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
    model_config: dict[str, Any],
    x: np.ndarray,
    y: np.ndarray,
    args: Any,
    accelerator: Any,
    pipeline: str = "numpy",
) -> EpochTimer:
    """The grader's path: its input pipeline (`pipeline`: ``numpy``, today's, or the former
    ``tf.data``), compile_model, XLA (and mixed precision) on a GPU."""
    augmentation = ["flip", "translate"] if args.augment else []
    training = validate_training_config(
        {"epochs": args.epochs, "batch_size": args.batch_size, "augmentation": augmentation},
        {"max_epochs": args.epochs, "max_batch_size": 4096},
    )
    set_random_seed(0)
    config = (
        with_dtype_policy(model_config, accelerator.mixed_precision)
        if accelerator.mixed_precision
        else model_config
    )
    model = build_model(config)
    make = make_train_dataset
    if pipeline == "tf.data":
        from tf_data_pipeline import make_train_dataset as make  # type: ignore[no-redef]
    dataset, steps = make(
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
    parser.add_argument(
        "--backend",
        choices=["tensorflow", "jax"],
        default="tensorflow",
        help="Keras backend (jax: no tf.data side)",
    )
    args = parser.parse_args()

    x, y, model_config = load_data(args.dataset, args.samples)
    accelerator = configure_accelerator(allow_mixed_precision=args.mixed_precision)
    print(f"Keras {keras.__version__} on {BACKEND}; trainer side: {accelerator}")
    print(
        f"dataset {args.dataset}: {args.samples:,} images {x.shape[1:]}, batch "
        f"{args.batch_size}, {args.epochs} epochs, {args.repeats} repeat(s)"
        + (", augmented (flip, translate)" if args.augment else "")
    )
    gpu_settings = ", XLA" + (
        f", {accelerator.mixed_precision}" if accelerator.mixed_precision else ""
    )
    suffix = gpu_settings if accelerator.gpu else ""
    sides = {
        "plain": "plain model.fit(numpy)",
        "tf.data": "former trainer (tf.data" + suffix + ")",
        "trainer": "grader trainer (NumPy" + suffix + ")",
    }
    if BACKEND != "tensorflow":
        del sides["tf.data"]
    rates: dict[str, list[float]] = {name: [] for name in sides}
    ratios: dict[str, list[float]] = {"trainer / tf.data": [], "trainer / plain": []}
    for repeat in range(args.repeats):
        # Alternate the sides so that a change in machine load hits all alike.
        timers = {}
        for name in sides:
            if name == "plain":
                timers[name] = run_plain(model_config, x, y, args)
            else:
                pipeline = "tf.data" if name == "tf.data" else "numpy"
                timers[name] = run_trainer(model_config, x, y, args, accelerator, pipeline)
        for name, timer in timers.items():
            rates[name].append(steady_rate(timer, args.samples))
            print(
                f"  repeat {repeat + 1} {name:<8} first epoch {timer.seconds[0]:7.2f} s   "
                f"steady {args.samples / rates[name][-1]:7.2f} s/epoch   "
                f"{rates[name][-1]:9,.0f} images/s"
            )
        for ratio in ratios:
            other = ratio.split(" / ")[1]
            if other in rates:
                ratios[ratio].append(rates["trainer"][-1] / rates[other][-1])
    for name, title in sides.items():
        rate = statistics.median(rates[name])
        print(f"{title:<34} median {args.samples / rate:7.2f} s/epoch   {rate:9,.0f} images/s")
    for ratio, values in ratios.items():
        if values:
            shown = ", ".join(f"{value:.2f}" for value in values)
            print(
                f"ratio {ratio} (images/s; median of paired runs): "
                f"{statistics.median(values):.2f}x   [{shown}]"
            )


if __name__ == "__main__":
    main()
