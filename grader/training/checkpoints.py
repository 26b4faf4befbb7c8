"""Per-epoch checkpoints in ``/job/work`` and the callback that writes them and reports progress.

Layout: ``checkpoints/state.json`` (the job's fingerprint, the last finished epoch, the progress
records so far, the checkpoint's file name) and ``checkpoints/epoch-NNNN.weights.h5`` (weights
and optimizer state). Each file is written under a temporary name and renamed, and ``state.json``
is renamed only after its checkpoint is in place: whatever moment a SIGKILL lands, the state
names a complete checkpoint. A progress line is printed only after both are on disk.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from grader.training.config import TrainingConfig

CHECKPOINT_DIRNAME = "checkpoints"
STATE_FILENAME = "state.json"

Progress = Callable[[dict[str, Any]], None]


def finite(value: Any) -> float | None:
    """JSON has no NaN: a diverged loss is reported as null."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _write_json_atomic(path: Path, data: Any) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(data, indent=1), encoding="utf-8")
    os.replace(temporary, path)


def fingerprint(
    model_config: Mapping[str, Any],
    config: TrainingConfig,
    seed: int,
    validation_split: float,
    num_examples: int,
    *,
    data: Sequence[str] = (),
) -> str:
    """Identifies a training job: a checkpoint is only resumed by the job that wrote it.

    `data`: digests of the examples trained and validated on, when known (a held-out part
    prepared on the host); a dataset prepared again with another key is another job.
    """
    job: list[Any] = [model_config, config.to_dict(), seed, validation_split, num_examples]
    if data:
        job.append(list(data))
    payload = json.dumps(job, sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def epoch_reporter(
    *,
    checkpoint_dir: Path,
    job_fingerprint: str,
    done: list[dict[str, Any]],
    progress: Progress,
) -> Any:
    """A Keras callback that checkpoints each finished epoch, then reports it.

    Args:
        checkpoint_dir: where ``state.json`` and the ``epoch-NNNN.weights.h5`` files go.
        job_fingerprint: `fingerprint` of this job, stored in the state.
        done: the records so far (resumed epochs first); each new record is appended.
        progress: receives each new record once its checkpoint is on disk.
    """
    import keras

    class EpochReporter(keras.callbacks.Callback):
        """Checkpoints, then reports, each finished epoch: a reported epoch is always resumable."""

        def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
            self._started = time.monotonic()

        def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
            logs = logs or {}
            learning_rate = keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
            record = {
                "epoch": epoch + 1,
                "loss": finite(logs.get("loss")),
                "accuracy": finite(logs.get("accuracy")),
                "val_loss": finite(logs.get("val_loss")),
                "val_accuracy": finite(logs.get("val_accuracy")),
                "learning_rate": finite(learning_rate),
                "seconds": round(time.monotonic() - self._started, 3),
            }
            done.append(record)
            name = f"epoch-{epoch + 1:04d}.weights.h5"
            temporary = checkpoint_dir / f"tmp-{name}"
            self.model.save_weights(temporary)  # weights and optimizer state
            os.replace(temporary, checkpoint_dir / name)
            state = {
                "fingerprint": job_fingerprint,
                "epoch": epoch + 1,
                "checkpoint": name,
                "epochs": done,
            }
            _write_json_atomic(checkpoint_dir / STATE_FILENAME, state)
            # Older checkpoints, and a temporary file a killed run may have left half-written.
            for old in checkpoint_dir.glob("*epoch-*.weights.h5"):
                if old.name != name:
                    old.unlink(missing_ok=True)
            progress(record)

    return EpochReporter()


def read_state(checkpoint_dir: Path, job_fingerprint: str, epochs: int) -> dict[str, Any] | None:
    """The saved state of this job; None when there is nothing of this job to resume."""
    try:
        state = json.loads((checkpoint_dir / STATE_FILENAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (
        not isinstance(state, dict)
        or state.get("fingerprint") != job_fingerprint
        or not isinstance(state.get("epoch"), int)
        or not 0 < state["epoch"] <= epochs
        or not (checkpoint_dir / str(state.get("checkpoint"))).is_file()
    ):
        return None
    return state
