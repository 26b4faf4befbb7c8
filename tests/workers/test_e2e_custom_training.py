"""End to end with custom training: the submission's own `train(model, data, config)` runs.

A real Celery worker, Redis, PostgreSQL and the bwrap sandbox, as in `test_e2e_pipeline`. Student
code reports its own epochs, so they prove nothing: `min_val_accuracy` must come from the
grader's measurement of the trained weights on the held-out validation split, and a restarted
custom training (no checkpoint of student code) must replace the epochs of the killed attempt.

The expected accuracies are computed here from the prepared dataset itself, independently of the
grader: a model whose weights are all zero scores every class the same, so it predicts class 0
for every image and its accuracy is the share of class 0 among the images measured.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from assignments.models import EpochMetric, Result, Submission
from grader.datasets import load_split
from tests.workers import test_e2e_pipeline as e2e
from tests.workers.conftest import SMOKE_MODULE, make_assignment, make_submission
from tests.workers.test_e2e_pipeline import ended, submit, wait_for

# The worker fixtures of the pipeline's end-to-end tests, used here by name.
workers = e2e.workers
sandbox_backend = e2e.sandbox_backend

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.services,
    pytest.mark.bwrap,
    pytest.mark.tf,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(600),
]

Status = Submission.Status
MEASURED = "measured by the grader on the held-out validation split after training"

# Cannot learn: every weight is set to zero, then three epochs of a perfect model are reported.
FORGING_MODULE = (
    SMOKE_MODULE
    + """

import numpy as np


def train(model, data, config):
    print("custom training on", len(data["x"]), "images")
    model.set_weights([np.zeros_like(w) for w in model.get_weights()])
    forged = {"loss": 0.01, "accuracy": 0.99, "val_loss": 0.01, "val_accuracy": 0.99}
    for callback in data["callbacks"]:
        callback.set_model(model)
    for epoch in range(config["epochs"]):
        for callback in data["callbacks"]:
            callback.on_epoch_begin(epoch)
            callback.on_epoch_end(epoch, forged)
"""
)

# A real training loop whose first attempt is slow (so the worker can be killed mid-way) and
# declares 5 epochs; an attempt that finds the first one's marker in `/job/work` trains only 2.
# Epochs 3+ of the killed attempt must not survive next to the 2 epochs of the one that counts.
RESTARTING_MODULE = (
    SMOKE_MODULE.replace('"epochs": 3', '"epochs": 5')
    + """

import os
import time


def train(model, data, config):
    marker = "/job/work/attempted"
    first = not os.path.exists(marker)
    open(marker, "w").close()

    class Pace(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if first:
                time.sleep(2)

    model.compile(
        optimizer=keras.optimizers.Adam(config["learning_rate"]),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(
        data["x"] / 255.0,
        data["y"],
        batch_size=config["batch_size"],
        epochs=config["epochs"] if first else 2,
        validation_split=0.1,
        callbacks=[*data["callbacks"], Pace()],
        verbose=0,
    )
"""
)


def _class_zero_share(labels: np.ndarray) -> float:
    return float(np.mean(labels == 0))


def _held_out_labels(data_dir: Path) -> np.ndarray:
    _, y = load_split(data_dir / "prepared" / "synthetic" / "held-out")  # the validation part
    return y


@pytest.mark.parametrize(
    "sandbox_backend", ["bwrap", pytest.param("docker", marks=pytest.mark.docker)], indirect=True
)
def test_forged_epochs_of_a_custom_training_do_not_pass_min_val_accuracy(
    workers, student, grading_settings, sandbox_backend
):
    assignment = make_assignment(allow_custom_training=True)
    submission = make_submission(assignment, student, source=FORGING_MODULE)
    workers.start()
    submit(submission)

    wait_for(ended(submission), timeout=300, workers=workers, what="the grading to end")

    # A rule failed after training: `failed/rules` with its message, as for a static failure.
    assert (submission.status, submission.reason) == (Status.FAILED, "rules"), (
        f"{submission.message}\n{submission.log[-3000:]}\n{workers.logs()}"
    )
    result = Result.objects.get(submission=submission)
    rules = {rule["id"]: rule for rule in result.rules}
    assert submission.message == "1 rule failed: " + rules["min_val_accuracy"]["message"]
    held_out = _held_out_labels(Path(grading_settings.GRADER_DATA_DIR))
    expected = _class_zero_share(held_out)
    assert expected < 0.6  # the preset's limit: an honest measurement fails it

    # The forged epochs are stored and shown as reported...
    epochs = list(EpochMetric.objects.filter(submission=submission).order_by("epoch"))
    assert [(e.epoch, e.val_accuracy) for e in epochs] == [(1, 0.99), (2, 0.99), (3, 0.99)]
    # ... but the verdict comes from the grader's own measurement.
    assert rules["min_val_accuracy"]["passed"] is False
    assert rules["min_val_accuracy"]["measured"] == pytest.approx(expected, abs=1e-12)
    assert MEASURED in rules["min_val_accuracy"]["message"]
    assert "99.00%" in rules["min_val_accuracy"]["hint"]
    assert result.passed is False and result.score < 100
    assert result.checks["custom_training"] is True
    validation = result.checks["validation"]
    assert validation["accuracy"] == pytest.approx(expected, abs=1e-12)
    assert validation["num_examples"] == len(held_out) == 205
    assert validation["loss"] == pytest.approx(math.log(4), rel=1e-6)  # uniform over 4 classes
    # max_epochs checks what was declared (3, the module's training config), and says so.
    assert rules["max_epochs"]["passed"] is True
    assert "declared 3 epochs" in rules["max_epochs"]["message"]
    # Student code trained on the training split minus the validation part (2,048 - 205).
    assert "custom training on 1843 images" in submission.log
    _, y_test = load_split(Path(grading_settings.GRADER_DATA_DIR) / "prepared/synthetic/test")
    assert result.accuracy == pytest.approx(_class_zero_share(y_test), abs=1e-12)


def test_a_killed_custom_training_starts_over_and_its_epochs_replace_the_earlier_ones(
    workers, student, grading_settings
):
    assignment = make_assignment(allow_custom_training=True)
    submission = make_submission(assignment, student, source=RESTARTING_MODULE)
    first = workers.start()
    submit(submission)

    def epochs_recorded() -> int:
        return EpochMetric.objects.filter(submission=submission).count()

    wait_for(
        lambda: epochs_recorded() >= 3, timeout=300, workers=workers, what="epoch 3", interval=0.1
    )
    workers.kill(first)
    submission.refresh_from_db()
    assert submission.status == Status.TRAINING and epochs_recorded() >= 3

    workers.start()
    wait_for(ended(submission), timeout=360, workers=workers, what="the restarted grading")

    assert (submission.status, submission.reason) == (Status.FINISHED, ""), (
        f"{submission.message}\n{submission.log[-3000:]}\n{workers.logs()}"
    )
    assert submission.attempts == 1  # one re-sent training, by the reaper
    assert "Custom training started over (attempt 2)" in submission.log
    assert "resumed from the checkpoint" not in submission.log
    epochs = list(EpochMetric.objects.filter(submission=submission).order_by("epoch"))
    assert [e.epoch for e in epochs] == [1, 2]  # the killed attempt's epoch 3+ are gone
    result = Result.objects.get(submission=submission)
    assert result.epochs_run == 2
    rules = {rule["id"]: rule for rule in result.rules}
    assert rules["min_val_accuracy"]["measured"] == result.checks["validation"]["accuracy"]
    assert MEASURED in rules["min_val_accuracy"]["message"]
