"""The trusted trainer: fresh weights, the validated config, the training split only.

Inside the train sandbox the trainer rebuilds the student's architecture from its JSON config
(never their weights, never their code unless the assignment allows custom training), trains on
the training examples and measures each epoch on the held-out validation part, which the host
prepared as a directory of its own (chosen with the secret dataset key), prints one
``GRADER-PROGRESS`` line per epoch through the `progress` callable, and checkpoints every epoch
into ``/job/work`` so that a re-run after a crash or SIGKILL resumes at the next epoch.

Determinism: the shuffling order of epoch ``e`` and the augmentation of step ``s`` are pure
functions of ``(seed, e)`` and ``(seed, s)`` (`grader.training.seeds`), so a resumed run sees
exactly the batches an uninterrupted run would.

Any Keras backend: the input pipeline is NumPy (`grader.training.pipeline`) and the rest is
Keras' own API, so the trainer runs on TensorFlow (the default) and on JAX
(`grader.training.backend`); with JAX nothing here imports TensorFlow. Keras is imported inside
functions: importing this module stays cheap.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.datasets import load_split, read_split_meta, split_indices
from grader.errors import GraderError
from grader.training.accelerator import Accelerator, configure_accelerator, with_dtype_policy
from grader.training.backend import set_random_seed
from grader.training.checkpoints import (
    CHECKPOINT_DIRNAME,
    Progress,
    epoch_reporter,
    fingerprint,
    finite,
    read_state,
)
from grader.training.config import TrainingConfig
from grader.training.optimization import compile_model
from grader.training.pipeline import make_eval_dataset, make_train_dataset
from grader.training.safe_model import build_model, check_io_shapes
from grader.training.weights_file import WEIGHTS_FILENAME, save_weights


class CustomTrainingError(GraderError):
    """The student's own ``train(model, data, config)`` left the model unusable."""

    error_code = "custom_training_failed"


@dataclass(frozen=True)
class TrainOutcome:
    """What a training run produced.

    Attributes:
        epochs: one progress record per epoch, resumed ones included, in order.
        seconds: training time summed over epochs (across resumptions).
        weights_path: the final weights (architecture weights only, no optimizer state).
        resumed_from_epoch: epochs already done when this run started (0: a fresh start).
    """

    epochs: list[dict[str, Any]]
    seconds: float
    weights_path: Path
    resumed_from_epoch: int


def save_final_weights(model_config: Mapping[str, Any], trained: Any, path: Path) -> Path:
    """Copy trained weights into a fresh float32 model of the same architecture and save them.

    The copy drops optimizer state and mixed-precision settings, and fails loudly if the trained
    model no longer matches the submitted architecture.
    """
    fresh = build_model(model_config)
    try:
        fresh.set_weights(trained.get_weights())
    except ValueError as exc:
        raise CustomTrainingError(
            f"The trained model's weights no longer fit the submitted architecture: {exc}"
        ) from exc
    return save_weights(fresh, path)


def build_training_model(
    model_config: Mapping[str, Any],
    *,
    train_dir: Path,
    seed: int,
    mixed_precision: str | None = None,
) -> Any:
    """The model to train: seeded fresh weights, checked against the training split's shapes.

    Args:
        model_config: the Keras model config (checked: no Lambda, no custom classes).
        train_dir: the prepared training split (its ``meta.json`` gives the shapes).
        seed: seeds the initial weights (and Python's, NumPy's and the backend's generators).
        mixed_precision: the dtype policy of hidden layers (``mixed_bfloat16``, ...); None:
            float32 throughout. The weights and their counts are the same either way.

    Raises:
        UnsafeLayer, InvalidModelConfig: the architecture cannot be rebuilt or does not fit the
            dataset.
    """
    meta = read_split_meta(train_dir)
    set_random_seed(seed)
    build_config = (
        with_dtype_policy(model_config, mixed_precision) if mixed_precision else model_config
    )
    model = build_model(build_config)
    check_io_shapes(model, meta.input_shape, meta.num_classes)
    return model


def train(
    *,
    model_config: Mapping[str, Any],
    config: TrainingConfig,
    train_dir: Path,
    work_dir: Path,
    validation_split: float = 0.1,
    seed: int = 0,
    progress: Progress = lambda _record: None,
    accelerator: Accelerator | None = None,
    on_built: Callable[[Any], None] = lambda _model: None,
    validation_dir: Path | None = None,
) -> TrainOutcome:
    """Train the architecture from scratch on the training split; resume if a checkpoint exists.

    Args:
        model_config: the Keras model config (checked: no Lambda, no custom classes).
        config: the validated training config.
        train_dir: the prepared training examples (``x.npy``, ``y.npy``, ``meta.json``).
        work_dir: persistent scratch: checkpoints and the final ``weights.npz``.
        validation_split: without `validation_dir`, the fraction of `train_dir` held out for
            validation curves (chosen with `seed`); with it, the fraction the host held out,
            recorded in the checkpoints' fingerprint.
        seed: seeds weights, shuffling and augmentation (and the split without
            `validation_dir`).
        validation_dir: the held-out validation part as a split of its own (the pipeline's
            ``held-out/``); then all of `train_dir` is trained on.
        progress: receives each epoch's record (already-done epochs first when resuming).
        accelerator: what to enable; detected when None.
        on_built: receives the freshly built model first, before any epoch is reported
            (the runner describes it for the host's check against the analysis).

    Returns:
        The epochs, the time spent and the final weights' path.

    Raises:
        UnsafeLayer, InvalidModelConfig: the architecture cannot be rebuilt or does not fit the
            dataset.
    """
    accelerator = accelerator or configure_accelerator()
    model = build_training_model(
        model_config,
        train_dir=train_dir,
        seed=seed,
        mixed_precision=accelerator.mixed_precision,
    )
    # Before anything else happens (even replaying finished epochs): the host compares this
    # with its analysis and stops the job on a difference, so no epoch of another network
    # is ever reported.
    on_built(model)
    meta = read_split_meta(train_dir)
    x_train, y_train, x_val, y_val, data = _training_data(
        train_dir, validation_dir, validation_split, seed
    )
    work_dir = Path(work_dir)
    checkpoint_dir = work_dir / CHECKPOINT_DIRNAME
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    job = fingerprint(
        model_config, config, seed, validation_split, len(y_train) + len(y_val), data=data
    )
    state = read_state(checkpoint_dir, job, config.epochs)
    done: list[dict[str, Any]] = list(state["epochs"]) if state else []
    initial_epoch = state["epoch"] if state else 0
    for record in done:
        progress(record)

    dataset, steps = make_train_dataset(
        x_train,
        y_train,
        config=config,
        num_classes=meta.num_classes,
        seed=seed,
        initial_epoch=initial_epoch,
    )
    compile_model(model, config, steps, accelerator.jit_compile)
    if state:
        model.load_weights(checkpoint_dir / state["checkpoint"])
    validation = None
    if len(y_val):
        validation = make_eval_dataset(
            x_val,
            y_val,
            batch_size=config.batch_size,
            num_classes=meta.num_classes,
            one_hot=bool(config.label_smoothing),
        )
    if initial_epoch < config.epochs:
        import keras

        reporter = epoch_reporter(
            checkpoint_dir=checkpoint_dir, job_fingerprint=job, done=done, progress=progress
        )
        model.fit(
            dataset,
            epochs=config.epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=steps,
            validation_data=validation,
            # A NaN loss ends training at once: the rest of the epochs would burn GPU time
            # for the same verdict.
            callbacks=[keras.callbacks.TerminateOnNaN(), reporter],
            shuffle=False,  # the pipeline shuffles, from counter-based seeds
            verbose=0,
        )
    weights = save_final_weights(model_config, model, work_dir / WEIGHTS_FILENAME)
    return TrainOutcome(
        epochs=done,
        seconds=round(sum(record["seconds"] for record in done), 3),
        weights_path=weights,
        resumed_from_epoch=initial_epoch,
    )


def _training_data(
    train_dir: Path, validation_dir: Path | None, validation_split: float, seed: int
) -> tuple[Any, Any, Any, Any, tuple[str, ...]]:
    """``(x_train, y_train, x_val, y_val, digests)``: the examples to fit and to validate on.

    `digests` (empty without `validation_dir`) identify both splits' content, so a checkpoint
    is never resumed on data prepared differently (another dataset key).
    """
    x, y = load_split(train_dir)
    if validation_dir is None:
        train_index, val_index = split_indices(len(y), validation_split, seed)
        return x[train_index], y[train_index], x[val_index], y[val_index], ()
    meta, held_out = read_split_meta(train_dir), read_split_meta(validation_dir)
    if (held_out.input_shape, held_out.num_classes) != (meta.input_shape, meta.num_classes):
        raise GraderError(
            f"The held-out validation part has images {held_out.input_shape} in "
            f"{held_out.num_classes} classes. Expected {meta.input_shape} in {meta.num_classes} "
            "classes, as the training split."
        )
    x_val, y_val = load_split(validation_dir)
    return x, y, x_val, y_val, (*meta.sha256, *held_out.sha256)


def train_custom(
    *,
    model_config: Mapping[str, Any],
    config: TrainingConfig,
    train_dir: Path,
    work_dir: Path,
    train_fn: Callable[[Any, dict[str, Any], dict[str, Any]], Any],
    seed: int = 0,
    progress: Progress = lambda _record: None,
    model: Any = None,
) -> TrainOutcome:
    """Let the student's ``train(model, data, config)`` train a fresh model, then save it.

    `data` holds the split in `train_dir` (the pipeline mounts the training split without its
    held-out validation part): ``x`` (uint8 NHWC), ``y`` (int64), ``num_classes``,
    ``class_names`` and ``callbacks`` (pass them to ``model.fit`` to report progress; they stop
    a fit at ``config["epochs"]`` epochs). No checkpointing: the student's loop is theirs, and a
    re-run starts over. The model is trained in place, or `train` may return a model of the
    same architecture. Exceptions propagate to the runner, which reports them as the
    submission's failure.

    `model`: the model to hand to `train_fn`, built by `build_training_model` BEFORE the
    student's module was imported (the runner describes it for the host first: once their
    code runs in this process, whatever it builds or reports is theirs); built here if None.

    The student's code runs in this process: the epochs it reports are not evidence of
    anything. The grader decides accuracy rules from its own measurement of the saved weights.
    """
    import keras

    if model is None:
        model = build_training_model(model_config, train_dir=train_dir, seed=seed)
    meta = read_split_meta(train_dir)
    x, y = load_split(train_dir, mmap=False)
    done: list[dict[str, Any]] = []

    class ProgressOnly(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
            self._started = time.monotonic()

        def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
            logs = logs or {}
            optimizer = getattr(self.model, "optimizer", None)
            rate = getattr(optimizer, "learning_rate", None)
            record = {
                "epoch": len(done) + 1,
                "loss": finite(logs.get("loss")),
                "accuracy": finite(logs.get("accuracy")),
                "val_loss": finite(logs.get("val_loss")),
                "val_accuracy": finite(logs.get("val_accuracy")),
                "learning_rate": finite(keras.ops.convert_to_numpy(rate))
                if rate is not None
                else None,
                "seconds": round(time.monotonic() - self._started, 3),
            }
            done.append(record)
            progress(record)
            # The declared epochs are what the rules check: a fit using these callbacks stops
            # there. A loop that does not use them is bounded by the sandbox's time limit.
            if len(done) >= config.epochs and self.model is not None:
                self.model.stop_training = True

    data = {
        "x": x,
        "y": y,
        "num_classes": meta.num_classes,
        "class_names": list(meta.class_names),
        "callbacks": [ProgressOnly()],
    }
    started = time.monotonic()
    returned = train_fn(model, data, config.to_dict())
    seconds = round(time.monotonic() - started, 3)
    # Training in place is the norm; a returned model is accepted too, if it is the same
    # architecture (save_final_weights checks that).
    trained = returned if isinstance(returned, keras.Model) else model
    weights = save_final_weights(model_config, trained, Path(work_dir) / WEIGHTS_FILENAME)
    return TrainOutcome(epochs=done, seconds=seconds, weights_path=weights, resumed_from_epoch=0)
