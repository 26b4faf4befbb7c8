"""`compile_model`: the optimizer's slot variables exist before the first train step.

A TensorFlow `tf.function` that creates variables while it traces is traced a second time;
Keras' optimizers create their slots lazily in the first train step unless built beforehand.
One trace instead of two is most of the first epoch's excess on a short CPU training.
"""

from __future__ import annotations

import numpy as np
import pytest

from grader.training.config import validate_training_config
from grader.training.optimization import compile_model

pytestmark = pytest.mark.tf


def _model():
    import keras

    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input(shape=(8, 8, 3)),
            keras.layers.SeparableConv2D(4, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd", "rmsprop"])
def test_the_train_step_is_traced_once(optimizer: str) -> None:
    model = _model()
    config = validate_training_config(
        {"optimizer": optimizer, "batch_size": 8, "epochs": 2}, {"max_epochs": 2}
    )
    compile_model(model, config, steps_per_epoch=3, jit=False)
    assert model.optimizer.built
    traces = []
    step = model.train_step

    def counting_step(data):  # runs in Python only while the step is traced
        traces.append(1)
        return step(data)

    model.train_step = counting_step
    rng = np.random.default_rng(0)
    x, y = rng.random((20, 8, 8, 3), dtype=np.float32), rng.integers(0, 3, 20)
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)

    assert len(history.history["loss"]) == 2
    assert len(traces) == 1
