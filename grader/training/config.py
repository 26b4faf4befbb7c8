"""Validate a student's declared training config against the assignment's policy.

Pure Python: the web site validates a config at upload time, and the sandbox validates it again
before training. Anything not on the whitelist below is refused with a message naming the key,
the value received and what is allowed, in Keras' style.

Declared config (every key optional)::

    {"optimizer": "adam", "learning_rate": 0.001, "momentum": 0.9,
     "schedule": "cosine" | {"name": "step", "step_epochs": 10, "factor": 0.1},
     "batch_size": 128, "epochs": 30, "weight_decay": 0.0005, "label_smoothing": 0.1,
     "augmentation": ["flip", "translate", "cutout"]}

Policy (the assignment's)::

    {"max_epochs": 50, "allow_custom_training": false, "max_batch_size": 1024,
     "min_batch_size": 32, "time_limit_seconds": 3600,
     "defaults": {...same keys as a declared config...}}

`min_batch_size` and `max_epochs` are the assignment's training budget: together they bound the
optimizer steps a training may take, so a config declaring `batch_size: 1` cannot hold a GPU for
the whole time limit. `time_limit_seconds` (the train stage's wall-clock limit) is only quoted
in the refusal.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from grader.errors import TrainingConfigError

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop")
MOMENTUM_OPTIMIZERS = ("momentum", "nesterov", "rmsprop")
SCHEDULES = ("constant", "step", "exponential", "cosine", "one-cycle")
AUGMENTATIONS = ("flip", "translate", "cutout")
LEARNING_RATE_RANGE = (1e-6, 1.0)
WEIGHT_DECAY_RANGE = (0.0, 0.1)
DEFAULT_MAX_BATCH_SIZE = 1024
DEFAULT_MAX_EPOCHS = 50
# The most epochs a policy may allow; assignment settings are validated against it on save.
POLICY_MAX_EPOCHS = 10**6

BUILTIN_DEFAULTS: dict[str, Any] = {
    "optimizer": "adam",
    "learning_rate": 1e-3,
    "schedule": "constant",
    "batch_size": 128,
    "weight_decay": 0.0,
    "label_smoothing": 0.0,
    "augmentation": [],
}

# Each schedule's parameters: name -> (default, low, high, integer?). Bounds are inclusive
# unless noted in `_OPEN_UPPER`.
_SCHEDULE_PARAMS: dict[str, dict[str, tuple[float, float, float, bool]]] = {
    "constant": {},
    "step": {"step_epochs": (10, 1, 10_000, True), "factor": (0.1, 1e-4, 1.0, False)},
    "exponential": {"decay_rate": (0.95, 1e-4, 1.0, False)},
    "cosine": {"min_fraction": (0.0, 0.0, 1.0, False), "warmup_epochs": (0, 0, 10_000, True)},
    "one-cycle": {
        "warmup_fraction": (0.3, 0.01, 0.99, False),
        "initial_fraction": (0.04, 1e-4, 1.0, False),
        "min_fraction": (0.0, 0.0, 1.0, False),
    },
}
_OPEN_UPPER = {"min_fraction"}
TOP_LEVEL_KEYS = (
    "augmentation",
    "batch_size",
    "epochs",
    "label_smoothing",
    "learning_rate",
    "momentum",
    "optimizer",
    "schedule",
    "weight_decay",
)


@dataclass(frozen=True)
class Schedule:
    """A learning-rate schedule and its parameters (see `_SCHEDULE_PARAMS` for the meanings).

    Attributes:
        name: one of `SCHEDULES`.
        step_epochs: ``step``: epochs between drops.
        factor: ``step``: multiplier at each drop.
        decay_rate: ``exponential``: multiplier per epoch, applied smoothly per step.
        min_fraction: ``cosine``/``one-cycle``: final rate as a fraction of the peak.
        warmup_epochs: ``cosine``: linear warm-up from 0, in epochs.
        warmup_fraction: ``one-cycle``: share of all steps spent rising to the peak.
        initial_fraction: ``one-cycle``: starting rate as a fraction of the peak.
    """

    name: str = "constant"
    step_epochs: int = 10
    factor: float = 0.1
    decay_rate: float = 0.95
    min_fraction: float = 0.0
    warmup_epochs: int = 0
    warmup_fraction: float = 0.3
    initial_fraction: float = 0.04

    def to_dict(self) -> dict[str, Any]:
        """The schedule's name and only the parameters that apply to it."""
        params = {key: getattr(self, key) for key in _SCHEDULE_PARAMS[self.name]}
        return {"name": self.name, **params}


@dataclass(frozen=True)
class TrainingConfig:
    """A validated training config: every value is within the assignment's whitelist.

    Attributes:
        optimizer: one of `OPTIMIZERS`.
        learning_rate: peak learning rate.
        momentum: for ``momentum``/``nesterov``/``rmsprop``; None for the others.
        schedule: the learning-rate schedule.
        batch_size: examples per step.
        epochs: passes over the training split.
        weight_decay: decoupled weight decay (Keras' optimizer ``weight_decay``).
        label_smoothing: in [0, 0.5).
        augmentation: a subset of `AUGMENTATIONS`, in canonical order.
    """

    optimizer: str
    learning_rate: float
    momentum: float | None
    schedule: Schedule
    batch_size: int
    epochs: int
    weight_decay: float
    label_smoothing: float
    augmentation: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict that `validate_training_config` accepts back unchanged."""
        data = asdict(self)
        data["schedule"] = self.schedule.to_dict()
        data["augmentation"] = list(self.augmentation)
        if self.momentum is None:
            del data["momentum"]
        return data


def _fail(key: str, value: Any, expected: str) -> TrainingConfigError:
    return TrainingConfigError(f"Training config `{key}` is {value!r}. Expected {expected}.")


def _number(key: str, value: Any, low: float, high: float, *, open_upper: bool = False) -> float:
    upper = ")" if open_upper else "]"
    expected = f"a number in [{low:g}, {high:g}{upper}"
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(key, value, expected)
    if value < low or value > high or (open_upper and value >= high):
        raise _fail(key, value, expected)
    return float(value)


def _integer(key: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(key, value, f"an integer in [{low:,}, {high:,}]")
    if value < low or value > high:
        raise _fail(key, value, f"an integer in [{low:,}, {high:,}]")
    return value


def _choice(key: str, value: Any, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise _fail(key, value, f"one of {', '.join(repr(a) for a in allowed)}")
    return value


def _schedule(value: Any, epochs: int) -> Schedule:
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, Mapping):
        raise _fail("schedule", value, "a schedule name or a mapping with a `name` key")
    name = _choice("schedule.name", value.get("name"), SCHEDULES)
    params = _SCHEDULE_PARAMS[name]
    unknown = sorted(set(value) - {"name"} - set(params))
    if unknown:
        allowed = ", ".join(f"`{p}`" for p in params) or "no parameters"
        raise TrainingConfigError(
            f"Training config `schedule` ({name}) has unknown parameter `{unknown[0]}`. "
            f"Expected {allowed}."
        )
    values: dict[str, Any] = {"name": name}
    for param, (default, low, high, integer) in params.items():
        key = f"schedule.{param}"
        raw = value.get(param, default)
        if integer:
            values[param] = _integer(key, raw, int(low), int(high))
        else:
            values[param] = _number(key, raw, low, high, open_upper=param in _OPEN_UPPER)
    if name == "cosine" and values["warmup_epochs"] >= epochs:
        raise _fail(
            "schedule.warmup_epochs", values["warmup_epochs"], f"fewer than the {epochs} epochs"
        )
    return Schedule(**values)


def validate_training_config(
    declared: Mapping[str, Any] | None, policy: Mapping[str, Any]
) -> TrainingConfig:
    """Check a declared training config against the whitelist and the assignment's policy.

    Args:
        declared: what the student's ``training_config()`` returned, or None when the
            submission declares nothing; missing keys take the policy's ``defaults``, then the
            built-in defaults (Adam, 1e-3, constant, batch 128, ``max_epochs`` epochs).
        policy: the assignment's policy: ``max_epochs``, optional ``max_batch_size``,
            ``min_batch_size`` (the training budget), ``time_limit_seconds`` (quoted when the
            budget is exceeded) and ``defaults``.

    Returns:
        The validated, complete `TrainingConfig`.

    Raises:
        TrainingConfigError: an unknown key or a value outside what is allowed; the message
            names the key, the value received and what is allowed.
    """
    max_epochs = _integer(
        "policy.max_epochs", policy.get("max_epochs", DEFAULT_MAX_EPOCHS), 1, POLICY_MAX_EPOCHS
    )
    max_batch = _integer(
        "policy.max_batch_size", policy.get("max_batch_size", DEFAULT_MAX_BATCH_SIZE), 1, 1 << 16
    )
    min_batch = _integer("policy.min_batch_size", policy.get("min_batch_size", 1), 1, max_batch)
    policy_defaults = policy.get("defaults") or {}
    if declared is None:
        declared = {}
    if not isinstance(declared, Mapping):
        raise TrainingConfigError(
            f"Training config is a {type(declared).__name__}. Expected a mapping of "
            f"{', '.join(f'`{k}`' for k in TOP_LEVEL_KEYS)}."
        )
    for source, mapping in (("Training config", declared), ("Policy defaults", policy_defaults)):
        unknown = sorted(str(k) for k in set(mapping) - set(TOP_LEVEL_KEYS))
        if unknown:
            raise TrainingConfigError(
                f"{source} has unknown key `{unknown[0]}`. Expected only "
                f"{', '.join(f'`{k}`' for k in TOP_LEVEL_KEYS)}."
            )
    merged = {**BUILTIN_DEFAULTS, "epochs": max_epochs, **policy_defaults, **declared}

    optimizer = _choice("optimizer", merged["optimizer"], OPTIMIZERS)
    momentum: float | None = None
    if optimizer in MOMENTUM_OPTIMIZERS:
        default_momentum = 0.0 if optimizer == "rmsprop" else 0.9
        momentum = _number(
            "momentum", merged.get("momentum", default_momentum), 0.0, 1.0, open_upper=True
        )
    elif "momentum" in declared:
        raise _fail(
            "momentum",
            declared["momentum"],
            f"no momentum with optimizer {optimizer!r} (momentum applies to "
            f"{', '.join(repr(o) for o in MOMENTUM_OPTIMIZERS)})",
        )
    requested = merged["epochs"]
    if isinstance(requested, int) and not isinstance(requested, bool) and requested > max_epochs:
        raise _fail("epochs", requested, f"at most {max_epochs} (the assignment's limit)")
    epochs = _integer("epochs", merged["epochs"], 1, max_epochs)
    augmentation = merged["augmentation"]
    if isinstance(augmentation, str) or not isinstance(augmentation, list | tuple):
        raise _fail("augmentation", augmentation, f"a list drawn from {list(AUGMENTATIONS)}")
    for item in augmentation:
        _choice("augmentation", item, AUGMENTATIONS)
    if len(set(augmentation)) != len(augmentation):
        raise _fail("augmentation", augmentation, "each augmentation at most once")

    batch_size = _integer("batch_size", merged["batch_size"], 1, max_batch)
    if batch_size < min_batch:
        raise TrainingConfigError(_under_budget(batch_size, min_batch, max_epochs, policy))
    return TrainingConfig(
        optimizer=optimizer,
        learning_rate=_number("learning_rate", merged["learning_rate"], *LEARNING_RATE_RANGE),
        momentum=momentum,
        schedule=_schedule(merged["schedule"], epochs),
        batch_size=batch_size,
        epochs=epochs,
        weight_decay=_number("weight_decay", merged["weight_decay"], *WEIGHT_DECAY_RANGE),
        label_smoothing=_number(
            "label_smoothing", merged["label_smoothing"], 0.0, 0.5, open_upper=True
        ),
        augmentation=tuple(a for a in AUGMENTATIONS if a in augmentation),
    )


def _under_budget(
    batch_size: int, min_batch: int, max_epochs: int, policy: Mapping[str, Any]
) -> str:
    """The refusal of a batch size below the assignment's training budget."""
    seconds = policy.get("time_limit_seconds")
    timed = isinstance(seconds, int) and not isinstance(seconds, bool)
    within = f", within {seconds:,} s" if timed else ""
    return (
        f"Training config `batch_size` is {batch_size:,}. Expected at least {min_batch:,}: the "
        f"assignment's training budget is at most {max_epochs:,} "
        f"epoch{'s' if max_epochs != 1 else ''} in batches of at least {min_batch:,} "
        f"examples{within}. Declare a `batch_size` of {min_batch:,} or more (larger batches "
        "take fewer steps per epoch)."
    )


def learning_rate_at(config: TrainingConfig, step: int, steps_per_epoch: int) -> float:
    """The learning rate at optimizer step `step` (0-based), in plain arithmetic.

    The trainer builds the same schedule from Keras' own schedule classes; this reference lets
    people preview a schedule without TensorFlow and lets tests cross-check the two.
    """
    peak = config.learning_rate
    schedule = config.schedule
    total = max(1, config.epochs * steps_per_epoch)
    if schedule.name == "constant":
        return peak
    if schedule.name == "step":
        return peak * schedule.factor ** (step // (schedule.step_epochs * steps_per_epoch))
    if schedule.name == "exponential":
        return peak * schedule.decay_rate ** (step / steps_per_epoch)
    if schedule.name == "cosine":
        warmup = schedule.warmup_epochs * steps_per_epoch
        start = 0.0
    else:  # one-cycle: a warm-up from a fraction of the peak, then a cosine decay
        warmup = round(total * schedule.warmup_fraction)
        start = peak * schedule.initial_fraction
    if step < warmup:
        return start + (peak - start) * step / warmup
    decay_steps = max(1, total - warmup)
    progress = min(step - warmup, decay_steps) / decay_steps
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return peak * ((1.0 - schedule.min_fraction) * cosine + schedule.min_fraction)
