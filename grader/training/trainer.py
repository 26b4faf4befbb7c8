"""The trusted trainer: fresh weights, the validated config, the training split only.

Inside the train sandbox the trainer rebuilds the student's architecture from its JSON config
(never their weights, never their code unless the assignment allows custom training), trains on
the training split with a deterministic held-out validation part, prints one
``GRADER-PROGRESS`` line per epoch through the `progress` callable, and checkpoints every epoch
into ``/job/work`` so that a re-run after a crash or SIGKILL resumes at the next epoch.

Determinism: the shuffling order of epoch ``e`` and the augmentation of step ``s`` are pure
functions of ``(seed, e)`` and ``(seed, s)`` (stateless random ops), so a resumed run sees
exactly the batches an uninterrupted run would.

TensorFlow and Keras are imported inside functions: importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from grader.datasets import load_split, read_split_meta
from grader.errors import GraderError
from grader.training.config import TrainingConfig
from grader.training.pipeline import make_eval_dataset, make_train_dataset
from grader.training.safe_model import build_model, check_io_shapes

WEIGHTS_FILENAME = "weights.weights.h5"
CHECKPOINT_DIRNAME = "checkpoints"
STATE_FILENAME = "state.json"

Progress = Callable[[dict[str, Any]], None]


class CustomTrainingError(GraderError):
    """The student's own ``train(model, data, config)`` left the model unusable."""

    kind = "custom_training_failed"


@dataclass(frozen=True)
class Accelerator:
    """What the trainer found and enabled.

    Attributes:
        gpu: a GPU is visible to TensorFlow.
        mixed_precision: the Keras dtype policy for hidden layers (None: float32 throughout).
        jit_compile: XLA compilation of the train step.
    """

    gpu: bool
    mixed_precision: str | None
    jit_compile: bool


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


def configure_accelerator(*, allow_mixed_precision: bool = True) -> Accelerator:
    """Enable memory growth, mixed precision and XLA when a GPU is present; CPU stays float32.

    bfloat16 on GPUs of compute capability 8.0 and newer (no loss scaling needed), float16 with
    loss scaling on older ones.
    """
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return Accelerator(gpu=False, mixed_precision=None, jit_compile=False)
    for gpu in gpus:
        # RuntimeError: already initialised in this process; keep its setting.
        with contextlib.suppress(RuntimeError):
            tf.config.experimental.set_memory_growth(gpu, True)
    policy = None
    if allow_mixed_precision:
        details = tf.config.experimental.get_device_details(gpus[0])
        capability = details.get("compute_capability") or (0, 0)
        policy = "mixed_bfloat16" if tuple(capability) >= (8, 0) else "mixed_float16"
    return Accelerator(gpu=True, mixed_precision=policy, jit_compile=True)


def with_dtype_policy(model_config: Mapping[str, Any], policy: str) -> dict[str, Any]:
    """A copy of the config whose layers compute in `policy`, outputs kept in float32.

    Keras 3 configs pin every layer's dtype policy, so the global policy alone would not apply.
    Outputs stay float32 so that softmax and the loss are computed at full precision.
    """
    config = copy.deepcopy(dict(model_config))
    body = config.get("config") or {}
    layers = body.get("layers") or []
    if config.get("class_name") == "Sequential":
        outputs = {layers[-1]["config"]["name"]} if layers else set()
    else:
        declared = body.get("output_layers") or []
        # One output is written flat (`["dense", 0, 0]`), several as a list of such triples.
        if declared and isinstance(declared[0], str):
            declared = [declared]
        outputs = {entry[0] for entry in declared}

    def visit(entries: list[dict[str, Any]], top: bool) -> None:
        for entry in entries:
            layer_config = entry.get("config") or {}
            if entry.get("class_name") == "InputLayer":
                continue
            if entry.get("class_name") in ("Sequential", "Functional"):
                visit(layer_config.get("layers") or [], top=False)
                continue
            keep_float32 = top and layer_config.get("name") in outputs
            layer_config["dtype"] = {
                "module": "keras",
                "class_name": "DTypePolicy",
                "config": {"name": "float32" if keep_float32 else policy},
                "registered_name": None,
            }

    visit(layers, top=True)
    return config


def split_indices(
    num_examples: int, validation_split: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic ``(train, validation)`` index arrays over the training split."""
    if not 0.0 <= validation_split < 1.0:
        raise ValueError(f"validation_split is {validation_split}. Expected a number in [0, 1).")
    order = np.random.Generator(np.random.PCG64(seed)).permutation(num_examples)
    held_out = round(num_examples * validation_split)
    return np.sort(order[held_out:]), np.sort(order[:held_out])


def make_schedule(config: TrainingConfig, steps_per_epoch: int) -> Any:
    """The learning rate (a float or a Keras schedule) matching `config.learning_rate_at`."""
    import keras

    schedules = keras.optimizers.schedules
    peak, schedule = config.learning_rate, config.schedule
    total = max(1, config.epochs * steps_per_epoch)
    if schedule.name == "constant":
        return peak
    if schedule.name == "step":
        return schedules.ExponentialDecay(
            peak,
            decay_steps=schedule.step_epochs * steps_per_epoch,
            decay_rate=schedule.factor,
            staircase=True,
        )
    if schedule.name == "exponential":
        return schedules.ExponentialDecay(
            peak, decay_steps=steps_per_epoch, decay_rate=schedule.decay_rate
        )
    if schedule.name == "cosine":
        warmup = schedule.warmup_epochs * steps_per_epoch
        start = 0.0 if warmup else peak
    else:  # one-cycle
        warmup = round(total * schedule.warmup_fraction)
        start = peak * schedule.initial_fraction
    return schedules.CosineDecay(
        start,
        decay_steps=max(1, total - warmup),
        alpha=schedule.min_fraction,
        warmup_target=peak if warmup else None,
        warmup_steps=warmup,
    )


def make_optimizer(config: TrainingConfig, steps_per_epoch: int) -> Any:
    """The Keras optimizer named by the config, with its schedule and weight decay."""
    import keras

    kwargs: dict[str, Any] = {"learning_rate": make_schedule(config, steps_per_epoch)}
    if config.weight_decay:
        kwargs["weight_decay"] = config.weight_decay
    momentum = config.momentum or 0.0
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(**kwargs)
    if config.optimizer == "momentum":
        return keras.optimizers.SGD(momentum=momentum, **kwargs)
    if config.optimizer == "nesterov":
        return keras.optimizers.SGD(momentum=momentum, nesterov=True, **kwargs)
    if config.optimizer == "adam":
        return keras.optimizers.Adam(**kwargs)
    if config.optimizer == "adamw":
        kwargs.setdefault("weight_decay", 0.0)
        return keras.optimizers.AdamW(**kwargs)
    return keras.optimizers.RMSprop(momentum=momentum, **kwargs)


def outputs_probabilities(model: Any) -> bool:
    """True when the model ends in a softmax (probabilities), False for logits."""
    import keras

    last = model.layers[-1]
    if isinstance(last, keras.layers.Softmax):
        return True
    activation = getattr(last, "activation", None)
    return activation is keras.activations.softmax


def compile_model(model: Any, config: TrainingConfig, steps_per_epoch: int, jit: bool) -> None:
    """Compile with the validated optimizer, loss and accuracy metric."""
    import keras

    from_logits = not outputs_probabilities(model)
    if config.label_smoothing:
        loss = keras.losses.CategoricalCrossentropy(
            from_logits=from_logits, label_smoothing=config.label_smoothing
        )
        metric = keras.metrics.CategoricalAccuracy(name="accuracy")
    else:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
        metric = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    optimizer = make_optimizer(config, steps_per_epoch)
    if model.dtype_policy.name == "mixed_float16" or any(
        layer.dtype_policy.name == "mixed_float16" for layer in model.layers
    ):
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model.compile(optimizer=optimizer, loss=loss, metrics=[metric], jit_compile=jit)


def _finite(value: Any) -> float | None:
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
) -> str:
    """Identifies a training job: a checkpoint is only resumed by the job that wrote it."""
    payload = json.dumps(
        [model_config, config.to_dict(), seed, validation_split, num_examples], sort_keys=True
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _epoch_reporter(
    *,
    checkpoint_dir: Path,
    job_fingerprint: str,
    done: list[dict[str, Any]],
    progress: Progress,
) -> Any:
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
                "loss": _finite(logs.get("loss")),
                "accuracy": _finite(logs.get("accuracy")),
                "val_loss": _finite(logs.get("val_loss")),
                "val_accuracy": _finite(logs.get("val_accuracy")),
                "learning_rate": _finite(learning_rate),
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
            for old in checkpoint_dir.glob("epoch-*.weights.h5"):
                if old.name != name:
                    old.unlink(missing_ok=True)
            progress(record)

    return EpochReporter()


def _read_state(checkpoint_dir: Path, job_fingerprint: str, epochs: int) -> dict[str, Any] | None:
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
    temporary = path.with_name(f"tmp-{path.name}")
    fresh.save_weights(temporary)
    os.replace(temporary, path)
    return path


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
) -> TrainOutcome:
    """Train the architecture from scratch on the training split; resume if a checkpoint exists.

    Args:
        model_config: the Keras model config (checked: no Lambda, no custom classes).
        config: the validated training config.
        train_dir: the prepared training split (``x.npy``, ``y.npy``, ``meta.json``).
        work_dir: persistent scratch: checkpoints and the final ``weights.weights.h5``.
        validation_split: fraction of the training split held out for validation curves.
        seed: seeds weights, the split, shuffling and augmentation.
        progress: receives each epoch's record (already-done epochs first when resuming).
        accelerator: what to enable; detected when None.

    Returns:
        The epochs, the time spent and the final weights' path.

    Raises:
        UnsafeLayer, InvalidModelConfig: the architecture cannot be rebuilt or does not fit the
            dataset.
    """
    import keras

    accelerator = accelerator or configure_accelerator()
    meta = read_split_meta(train_dir)
    x, y = load_split(train_dir)
    train_index, val_index = split_indices(len(y), validation_split, seed)
    work_dir = Path(work_dir)
    checkpoint_dir = work_dir / CHECKPOINT_DIRNAME
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    job = fingerprint(model_config, config, seed, validation_split, len(y))
    state = _read_state(checkpoint_dir, job, config.epochs)
    done: list[dict[str, Any]] = list(state["epochs"]) if state else []
    initial_epoch = state["epoch"] if state else 0
    for record in done:
        progress(record)

    keras.utils.set_random_seed(seed)
    build_config = (
        with_dtype_policy(model_config, accelerator.mixed_precision)
        if accelerator.mixed_precision
        else model_config
    )
    model = build_model(build_config)
    check_io_shapes(model, meta.input_shape, meta.num_classes)
    dataset, steps = make_train_dataset(
        x[train_index],
        y[train_index],
        config=config,
        num_classes=meta.num_classes,
        seed=seed,
        initial_epoch=initial_epoch,
    )
    compile_model(model, config, steps, accelerator.jit_compile)
    if state:
        model.optimizer.build(model.trainable_variables)
        model.load_weights(checkpoint_dir / state["checkpoint"])
    validation = None
    if len(val_index):
        validation = make_eval_dataset(
            x[val_index],
            y[val_index],
            batch_size=config.batch_size,
            num_classes=meta.num_classes,
            one_hot=bool(config.label_smoothing),
        )
    if initial_epoch < config.epochs:
        reporter = _epoch_reporter(
            checkpoint_dir=checkpoint_dir, job_fingerprint=job, done=done, progress=progress
        )
        model.fit(
            dataset,
            epochs=config.epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=steps,
            validation_data=validation,
            callbacks=[reporter],
            shuffle=False,  # the pipeline shuffles, statelessly
            verbose=0,
        )
    weights = save_final_weights(model_config, model, work_dir / WEIGHTS_FILENAME)
    return TrainOutcome(
        epochs=done,
        seconds=round(sum(record["seconds"] for record in done), 3),
        weights_path=weights,
        resumed_from_epoch=initial_epoch,
    )


def train_custom(
    *,
    model_config: Mapping[str, Any],
    config: TrainingConfig,
    train_dir: Path,
    work_dir: Path,
    train_fn: Callable[[Any, dict[str, Any], dict[str, Any]], Any],
    seed: int = 0,
    progress: Progress = lambda _record: None,
) -> TrainOutcome:
    """Let the student's ``train(model, data, config)`` train a fresh model, then save it.

    `data` holds the training split only: ``x`` (uint8 NHWC), ``y`` (int64), ``num_classes``,
    ``class_names`` and ``callbacks`` (pass them to ``model.fit`` to report progress). No
    checkpointing: the student's loop is theirs. Exceptions propagate to the runner, which
    reports them as the submission's failure.
    """
    import keras

    meta = read_split_meta(train_dir)
    x, y = load_split(train_dir, mmap=False)
    keras.utils.set_random_seed(seed)
    model = build_model(model_config)
    check_io_shapes(model, meta.input_shape, meta.num_classes)
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
                "loss": _finite(logs.get("loss")),
                "accuracy": _finite(logs.get("accuracy")),
                "val_loss": _finite(logs.get("val_loss")),
                "val_accuracy": _finite(logs.get("val_accuracy")),
                "learning_rate": _finite(keras.ops.convert_to_numpy(rate))
                if rate is not None
                else None,
                "seconds": round(time.monotonic() - self._started, 3),
            }
            done.append(record)
            progress(record)

    data = {
        "x": x,
        "y": y,
        "num_classes": meta.num_classes,
        "class_names": list(meta.class_names),
        "callbacks": [ProgressOnly()],
    }
    started = time.monotonic()
    train_fn(model, data, config.to_dict())
    seconds = round(time.monotonic() - started, 3)
    weights = save_final_weights(model_config, model, Path(work_dir) / WEIGHTS_FILENAME)
    return TrainOutcome(epochs=done, seconds=seconds, weights_path=weights, resumed_from_epoch=0)
