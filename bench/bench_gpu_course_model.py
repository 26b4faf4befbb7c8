"""Benchmark: the course's CIFAR-10 model on a GPU, float32 against the trainer's GPU settings.

The trainer (`grader.training`) turns on two things when it finds a GPU: a mixed-precision
dtype policy written into the model config (`with_dtype_policy`: bfloat16 on compute
capability 8.0 and newer, outputs kept in float32) and XLA compilation of the train step. This
benchmark measures what those choices are worth for the course's model, and the images/s and
seconds per epoch an instructor can plan a deadline with, on CIFAR-10 shaped data (random
uint8 32x32x3 images, 10 classes, 45,000 training images: the 50,000 of CIFAR-10 less the 10%
the trainer holds out for validation).

It builds the model the way the trainer does (`grader.training.safe_model.build_model` from the
config JSON, fresh weights, the same seed) and times `model.fit` on NumPy arrays with each
setting, in one process:

- ``float32``: no policy, no XLA (what a course notebook does);
- ``float32+xla``: XLA only;
- ``bf16+xla``: the trainer's GPU settings.

The first epoch (tracing, compilation) is reported apart; the steady figure is the median of the
later epochs. ``--backend`` picks the Keras backend: ``tensorflow`` is the product's; ``jax`` is
for GPU hosts that have JAX but no TensorFlow (the settings under test are Keras', so they apply
to both, but the input pipeline here is plain NumPy on both).

Run: ``python bench/bench_gpu_course_model.py --backend jax --epochs 3``

Measured on an NVIDIA H200 (Keras 3.15.1, JAX backend, 2026-11-26), steady epoch of 45,000
images: batch 128, float32+xla 0.92 s (48,786 images/s), bf16+xla 1.04 s (43,322 images/s,
0.89x); batch 512, float32+xla 0.27 s (167,244 images/s), bf16+xla 0.32 s (140,591 images/s,
0.84x). First epoch (compilation): 22 s float32, 64-74 s bfloat16. Hence the trainer's default
of XLA without mixed precision (`grader.training.accelerator`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "tests" / "fixtures" / "models" / "cifar10_separable_reference.json"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("tensorflow", "jax"), default="tensorflow")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--images", type=int, default=45_000)
    parser.add_argument("--batch-size", type=int, default=128)
    # With the JAX backend, a step without XLA runs eagerly, op by op: far too slow to time
    # (no epoch of 45,000 images ended within 7 minutes on an H200).
    parser.add_argument("--settings", default="", help="default: all three (jax: the XLA two)")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    os.environ["KERAS_BACKEND"] = args.backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, str(ROOT))

    import keras
    import numpy as np

    from grader.loading import load_model_config
    from grader.training.accelerator import with_dtype_policy
    from grader.training.safe_model import build_model

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.seconds: list[float] = []

        def on_epoch_begin(self, epoch: int, logs: object = None) -> None:
            self._started = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: object = None) -> None:
            self.seconds.append(time.perf_counter() - self._started)

    devices = keras.distribution.list_devices()
    print(f"backend {keras.backend.backend()}, keras {keras.__version__}, devices {devices}")
    config = load_model_config(MODEL)
    rng = np.random.default_rng(0)
    x = (rng.integers(0, 256, size=(args.images, 32, 32, 3), dtype=np.uint8) / 255.0).astype(
        np.float32
    )
    y = rng.integers(0, 10, size=(args.images,), dtype=np.int64)

    results = []
    for setting in args.settings.split(","):
        keras.utils.set_random_seed(0)
        model_config = with_dtype_policy(config, "mixed_bfloat16") if "bf16" in setting else config
        model = build_model(model_config)
        model.compile(
            optimizer=keras.optimizers.SGD(learning_rate=0.05, momentum=0.9, nesterov=True),
            loss=keras.losses.SparseCategoricalCrossentropy(),
            metrics=["accuracy"],
            jit_compile="xla" in setting,
        )
        timer = EpochTimer()
        model.fit(
            x, y, batch_size=args.batch_size, epochs=args.epochs, verbose=0, callbacks=[timer]
        )
        steady = (
            statistics.median(timer.seconds[1:]) if len(timer.seconds) > 1 else timer.seconds[0]
        )
        row = {
            "setting": setting,
            "params": model.count_params(),
            "first_epoch_s": round(timer.seconds[0], 2),
            "epoch_s": round(steady, 2),
            "images_per_s": round(args.images / steady),
        }
        results.append(row)
        print(json.dumps(row), flush=True)

    base = results[0]["images_per_s"]
    print(
        f"\n{'setting':<14}{'first epoch s':>15}{'epoch s':>10}{'images/s':>11}"
        f"{'vs ' + results[0]['setting']:>16}"
    )
    for row in results:
        ratio = row["images_per_s"] / base
        print(
            f"{row['setting']:<14}{row['first_epoch_s']:>15}{row['epoch_s']:>10}"
            f"{row['images_per_s']:>11}{ratio:>15.2f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
