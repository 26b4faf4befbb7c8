"""Benchmark: how many students' models one GPU grades, with the product's own trainer on JAX.

Runs `grader.training.trainer.train` (the trusted trainer of the train sandbox: NumPy input
pipeline, per-epoch validation, per-epoch checkpoints, final ``weights.npz``) on Keras' JAX
backend, on the course's CIFAR-shaped model (``tests/fixtures/models/
cifar10_separable_reference.json``: seven SeparableConv2D layers, about 75k parameters) with the
``cifar10-separable`` preset's training settings, on synthetic CIFAR-shaped data (random uint8
32x32x3 images, 10 classes; 50,000 by default, of which the trainer holds 10% out for
validation, as it does without a host-prepared held-out part). Timing only: random labels teach
nothing.

Phases, each training in a process of its own (as each grading has its own sandbox):

1. one training alone for ``--epochs`` epochs (50): seconds per epoch (median of the epochs
   after the first), first-epoch compile time (first epoch less a steady one), images/s, the
   process's peak GPU memory (JAX's allocator) and the GPU's (``nvidia-smi``, when present);
2. 2, 4 and 8 trainings started together sharing the GPU (``--shared-epochs`` each, 10 by
   default: enough for a steady rate): total images/s, and what it means in gradings per hour
   of ``--epochs`` epochs each.

A phase that would overrun ``--budget-s`` (570 s by default: the whole run fits 10 minutes) is
stopped and reported from the epochs it finished. Progress goes to stderr; the summary table to
stdout and, with ``--json PATH``, as JSON.

Never imports TensorFlow or Django (the GPU host has JAX with CUDA, not TensorFlow): the script
selects the JAX backend before Keras loads and checks, in every training process, that no
``tensorflow`` module was loaded. Needs the repository and the pure-Python ``keras`` with its
dependencies (``h5py``, ``optree``, ``rich``, ``namex``, ``absl-py``, ``ml-dtypes``); see the
README's "Keras backends".

Run (GPU host): ``python bench/bench_gpu_grading.py --json "$OUT/gpu_grading.json"``
Run (here, a few minutes on a loaded 2-core CPU): ``python bench/bench_gpu_grading.py --smoke``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "tests" / "fixtures" / "models" / "cifar10_separable_reference.json"
#: The `training:` block of grader/presets/cifar10-separable.yaml (a test keeps them equal; the
#: GPU host may lack PyYAML).
COURSE_TRAINING = {
    "optimizer": "adam",
    "learning_rate": 0.002,
    "schedule": "cosine",
    "batch_size": 128,
    "epochs": 50,
    "augmentation": ["flip", "translate"],
}
NUM_CLASSES = 10
VALIDATION_SPLIT = 0.1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--epochs", type=int, default=50, help="epochs of the lone training")
    parser.add_argument("--shared-epochs", type=int, default=10, help="epochs of each shared one")
    parser.add_argument("--shares", default="2,4,8", help="trainings sharing the GPU, per phase")
    parser.add_argument("--batch-size", type=int, default=COURSE_TRAINING["batch_size"])
    parser.add_argument("--budget-s", type=float, default=570.0)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--workdir", type=Path, help="default: a temporary folder, removed")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes (320 images, 2 epochs, shares 2): checks the script end to end on CPU",
    )
    parser.add_argument(
        "--child", nargs=3, metavar=("DATA", "WORK", "EPOCHS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.smoke:
        # Whole batches only (288 to train, 32 to validate): one compiled step shape each.
        args.images, args.epochs, args.shared_epochs, args.shares = 320, 2, 2, "2"
        args.batch_size = 32
    return args


# --- one training (a child process) ---------------------------------------------------------


def child(data_dir: Path, work_dir: Path, epochs: int, seed: int, batch_size: int) -> int:
    """Train once with the product's trainer; one JSON line per epoch on stdout, then a summary."""
    started = time.time()
    sys.path.insert(0, str(ROOT))
    from grader.training.backend import select_backend

    select_backend("jax")

    import jax
    import keras

    from grader.training.config import validate_training_config
    from grader.training.trainer import train

    def emit(record: dict[str, Any]) -> None:
        print(json.dumps(record), flush=True)

    config = validate_training_config(
        {**COURSE_TRAINING, "epochs": epochs, "batch_size": batch_size},
        {"max_epochs": max(epochs, 1), "max_batch_size": 4096},
    )
    device = jax.devices()[0]
    emit({"event": "start", "import_s": round(time.time() - started, 3), "t": time.time()})

    def progress(record: dict[str, Any]) -> None:
        emit({"event": "epoch", "t": time.time(), **record})

    outcome = train(
        model_config=json.loads(MODEL.read_text()),
        config=config,
        train_dir=data_dir,
        work_dir=work_dir,
        validation_split=VALIDATION_SPLIT,
        seed=seed,
        progress=progress,
    )
    stats = device.memory_stats() or {}
    emit(
        {
            "event": "done",
            "t": time.time(),
            "seconds": outcome.seconds,
            "peak_bytes": stats.get("peak_bytes_in_use"),
            "device": f"{device.platform}: {device.device_kind}",
            "keras": keras.__version__,
            "jax": jax.__version__,
            "tensorflow_modules": sorted(m for m in sys.modules if m.split(".")[0] == "tensorflow"),
            "django_modules": sorted(m for m in sys.modules if m.split(".")[0] == "django"),
        }
    )
    return 0


# --- the data ---------------------------------------------------------------------------------


def write_split(directory: Path, images: int, seed: int = 0) -> None:
    """A prepared split (``x.npy``, ``y.npy``, ``meta.json``) of random CIFAR-shaped images."""
    import hashlib

    import numpy as np

    sys.path.insert(0, str(ROOT))
    from grader.datasets.prepared import FORMAT_VERSION, META_FILENAME

    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (images, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, NUM_CLASSES, images).astype(np.int64)
    np.save(directory / "x.npy", x, allow_pickle=False)
    np.save(directory / "y.npy", y, allow_pickle=False)
    digests = {
        name: hashlib.sha256((directory / name).read_bytes()).hexdigest()
        for name in ("x.npy", "y.npy")
    }
    meta = {
        "format": FORMAT_VERSION,
        "dataset": "synthetic-cifar10-shaped",
        "split": "train",
        "input_shape": [32, 32, 3],
        "num_classes": NUM_CLASSES,
        "class_names": [f"class {i}" for i in range(NUM_CLASSES)],
        "num_examples": images,
        "sha256": digests,
    }
    (directory / META_FILENAME).write_text(json.dumps(meta, indent=2))


# --- the GPU, seen from outside -----------------------------------------------------------------


class GpuSampler:
    """Peak memory used and mean utilisation of GPU 0 from ``nvidia-smi``, twice a second."""

    def __init__(self) -> None:
        self.available = shutil.which("nvidia-smi") is not None
        self.name = ""
        self.total_mib = 0
        self.peak_mib = 0
        self.baseline_mib: int | None = None
        self.utilisation: list[int] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> tuple[str, int, int, int] | None:
        try:
            out = subprocess.run(
                [
                    "nvidia-smi",
                    "--query-gpu=name,memory.used,memory.total,utilization.gpu",
                    "--format=csv,noheader,nounits",
                    "--id=0",
                ],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            ).stdout
            name, used, total, util = (part.strip() for part in out.splitlines()[0].split(","))
            return name, int(used), int(total), int(util)
        except (OSError, subprocess.SubprocessError, ValueError, IndexError):
            return None

    def __enter__(self) -> GpuSampler:
        if self.available:
            first = self._sample()
            if first:
                self.name, self.baseline_mib, self.total_mib, _ = first
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            sample = self._sample()
            if sample:
                self.peak_mib = max(self.peak_mib, sample[1])
                self.utilisation.append(sample[3])

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=15)

    def summary(self) -> dict[str, Any]:
        if not self.available:
            return {}
        return {
            "gpu": self.name,
            "gpu_memory_total_mib": self.total_mib,
            "gpu_memory_peak_mib": self.peak_mib,
            "gpu_memory_before_mib": self.baseline_mib,
            "gpu_utilisation_mean_pct": round(statistics.fmean(self.utilisation), 1)
            if self.utilisation
            else None,
        }


# --- a phase: N trainings at once -----------------------------------------------------------------


def run_phase(
    args: argparse.Namespace,
    data_dir: Path,
    root: Path,
    trainings: int,
    epochs: int,
    deadline: float,
) -> dict[str, Any]:
    """Start `trainings` child processes together; collect their epochs until done or `deadline`."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logs = []
    stderrs = []
    processes = []
    started = time.time()
    for index in range(trainings):
        log = (root / f"n{trainings}-{index}.jsonl").open("w")
        logs.append(log)
        # A file, not a pipe: a chatty child must never block on a full pipe.
        stderr = (root / f"n{trainings}-{index}.stderr").open("w")
        stderrs.append(stderr)
        work = root / f"work-n{trainings}-{index}"
        processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    str(Path(__file__).resolve()),
                    "--batch-size",
                    str(args.batch_size),
                    "--child",
                    str(data_dir),
                    str(work),
                    str(epochs),
                ],
                env={**env, "GRADER_BENCH_SEED": str(index)},
                stdout=log,
                stderr=stderr,
                cwd=ROOT,
            )
        )
    stopped = False
    with GpuSampler() as sampler:
        for process in processes:
            remaining = deadline - time.time()
            try:
                process.wait(timeout=max(1.0, remaining))
            except subprocess.TimeoutExpired:
                stopped = True
                for other in processes:
                    if other.poll() is None:
                        other.kill()
                for other in processes:
                    other.wait()
                break
    wall = time.time() - started
    errors = []
    for process, log, stderr in zip(processes, logs, stderrs, strict=True):
        log.close()
        stderr.close()
        killed_at_budget = stopped and process.returncode == -9
        if process.returncode != 0 and not killed_at_budget:
            errors.append(Path(stderr.name).read_text(errors="replace")[-3000:])
    runs = [_read_log(Path(log.name)) for log in logs]
    return _summarise(trainings, epochs, runs, wall, stopped, errors, sampler.summary(), args)


def _read_log(path: Path) -> dict[str, Any]:
    events: dict[str, Any] = {"epochs": []}
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("event") == "epoch":
            events["epochs"].append(record)
        elif record.get("event") in ("start", "done"):
            events[record["event"]] = record
    return events


def _summarise(
    trainings: int,
    epochs: int,
    runs: list[dict[str, Any]],
    wall: float,
    stopped: bool,
    errors: list[str],
    gpu: dict[str, Any],
    args: argparse.Namespace,
) -> dict[str, Any]:
    train_images = args.images - round(args.images * VALIDATION_SPLIT)
    per_run = []
    for run in runs:
        seconds = [record["seconds"] for record in run["epochs"]]
        steady = statistics.median(seconds[1:]) if len(seconds) > 1 else None
        per_run.append(
            {
                "epochs_done": len(seconds),
                "first_epoch_s": seconds[0] if seconds else None,
                "steady_epoch_s": steady,
                "compile_s": round(seconds[0] - steady, 2) if steady else None,
                "images_per_s": round(train_images / steady, 1) if steady else None,
                "import_s": run.get("start", {}).get("import_s"),
                "peak_bytes": run.get("done", {}).get("peak_bytes"),
            }
        )
    rates = [entry["images_per_s"] for entry in per_run if entry["images_per_s"]]
    steadies = [entry["steady_epoch_s"] for entry in per_run if entry["steady_epoch_s"]]
    compiles = [entry["compile_s"] for entry in per_run if entry["compile_s"] is not None]
    peaks = [entry["peak_bytes"] for entry in per_run if entry["peak_bytes"]]
    total_rate = sum(rates) if len(rates) == trainings else None
    done = next((run["done"] for run in runs if "done" in run), {})
    return {
        "trainings": trainings,
        "epochs_each": epochs,
        "train_images": train_images,
        "wall_s": round(wall, 1),
        "stopped_at_budget": stopped,
        "steady_epoch_s_median": round(statistics.median(steadies), 3) if steadies else None,
        "compile_s_median": round(statistics.median(compiles), 1) if compiles else None,
        "images_per_s_each_median": round(statistics.median(rates), 1) if rates else None,
        "images_per_s_total": round(total_rate, 1) if total_rate else None,
        # Trainings of the full --epochs each that this many sharing processes finish per hour,
        # at the steady rate (compilation and start-up not included).
        "gradings_per_hour": round(total_rate * 3600 / (train_images * args.epochs), 1)
        if total_rate
        else None,
        "peak_jax_bytes_per_process_max": max(peaks) if peaks else None,
        "device": done.get("device"),
        "keras": done.get("keras"),
        "jax": done.get("jax"),
        "tensorflow_loaded": any(run.get("done", {}).get("tensorflow_modules") for run in runs),
        "django_loaded": any(run.get("done", {}).get("django_modules") for run in runs),
        "errors": errors,
        "runs": per_run,
        **gpu,
    }


def _mib(value: int | None) -> str:
    return f"{value / 2**20:,.0f} MiB" if value else "-"


def print_table(results: list[dict[str, Any]]) -> None:
    first = results[0]
    print(
        f"device: {first.get('device')} ({first.get('gpu') or 'no nvidia-smi'}); Keras "
        f"{first.get('keras')}, JAX {first.get('jax')}; {first['train_images']:,} training "
        "images per epoch (10% more held out for per-epoch validation)"
    )
    header = (
        f"{'trainings':>9} {'epochs':>6} {'s/epoch':>8} {'compile s':>9} {'img/s each':>10} "
        f"{'img/s total':>11} {'gradings/h':>10} {'JAX peak/proc':>13} {'GPU mem peak':>12} "
        f"{'GPU util':>8} {'wall s':>7}"
    )
    print(header)
    print("-" * len(header))
    for result in results:
        util = result.get("gpu_utilisation_mean_pct")
        gpu_peak = result.get("gpu_memory_peak_mib")
        print(
            f"{result['trainings']:>9} {result['epochs_each']:>6} "
            f"{result['steady_epoch_s_median'] or '-':>8} {result['compile_s_median'] or '-':>9} "
            f"{result['images_per_s_each_median'] or '-':>10} "
            f"{result['images_per_s_total'] or '-':>11} {result['gradings_per_hour'] or '-':>10} "
            f"{_mib(result['peak_jax_bytes_per_process_max']):>13} "
            f"{(f'{gpu_peak:,} MiB' if gpu_peak else '-'):>12} "
            f"{(f'{util}%' if util is not None else '-'):>8} {result['wall_s']:>7}"
            + ("  (stopped at the time budget)" if result["stopped_at_budget"] else "")
        )
        for error in result["errors"]:
            print(f"  a training failed:\n{error}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        data_dir, work_dir, epochs = args.child
        seed = int(os.environ.get("GRADER_BENCH_SEED", "0"))
        return child(Path(data_dir), Path(work_dir), int(epochs), seed, args.batch_size)

    deadline = time.time() + args.budget_s
    root = args.workdir or Path(tempfile.mkdtemp(prefix="bench-gpu-grading-"))
    try:
        data_dir = root / "data"
        write_split(data_dir, args.images)
        print(f"{args.images:,} synthetic 32x32x3 images in {data_dir}", file=sys.stderr)
        results = []
        phases = [(1, args.epochs)] + [
            (int(n), args.shared_epochs) for n in args.shares.split(",") if n.strip()
        ]
        for trainings, epochs in phases:
            if time.time() > deadline - 20:
                print(f"skipped {trainings} trainings: time budget spent", file=sys.stderr)
                continue
            print(f"phase: {trainings} training(s) x {epochs} epochs ...", file=sys.stderr)
            result = run_phase(args, data_dir, root, trainings, epochs, deadline)
            results.append(result)
            print(json.dumps({k: v for k, v in result.items() if k != "runs"}), file=sys.stderr)
        print_table(results)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            report = {"args": vars(args), "results": results}
            args.json.write_text(json.dumps(report, indent=1, default=str))
        failed = any(result["errors"] for result in results)
        leaked = any(result["tensorflow_loaded"] or result["django_loaded"] for result in results)
        if leaked:
            print("a training process imported TensorFlow or Django", file=sys.stderr)
        return 1 if failed or leaked else 0
    finally:
        if args.workdir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
