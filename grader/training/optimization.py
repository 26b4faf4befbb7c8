"""Optimizer, learning-rate schedule, loss and metric from a validated `TrainingConfig`."""

from __future__ import annotations

from typing import Any

from grader.training.config import TrainingConfig


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
    # Its slot variables now, not in the first train step: a tf.function that creates
    # variables while it traces is traced a second time (about 0.7 s of every training on the
    # CPU). Zeros either way; a resumed training loads its checkpoint into them.
    model.optimizer.build(model.trainable_variables)
