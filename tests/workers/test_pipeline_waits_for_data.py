"""A CIFAR-10 assignment on a host without CIFAR-10: the model is built and checked (rules, hints,
layer table), and only training waits for the data, out of the pipeline and explained to the
student without a host path; it trains once the dataset is installed.

The stages run as a worker runs them (`workers.pipeline.stages`), on the shipped
`cifar10-separable` preset, with an empty data directory.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from assignments.models import Result, Submission
from assignments.services import data_wait
from grader.presets import load_preset
from tests.workers.conftest import (
    FIXTURE_MODELS,
    make_assignment,
    make_submission,
    queued_tasks,
)
from workers.pipeline import stages

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

Status = Submission.Status

# Passes every static rule of `cifar10-separable`: a plain stem, then separable convolutions.
CIFAR_MODULE = """\
import keras
from keras import layers


def build_model(input_shape, num_classes):
    inputs = keras.Input(shape=input_shape)
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    for filters in (32, 64, 64):
        x = layers.SeparableConv2D(filters, 3, padding="same", activation="relu")(x)
        x = layers.MaxPooling2D()(x)
    # Two more at 4x4: even the corner units then see the whole 32x32 image.
    x = layers.SeparableConv2D(64, 3, padding="same", activation="relu")(x)
    x = layers.SeparableConv2D(64, 3, padding="same", activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(num_classes, activation="softmax")(x))
"""


@pytest.fixture
def offline_host(grading_settings, tmp_path) -> Path:
    """The workers' data directory holds no dataset at all (a fresh machine without internet)."""
    grading_settings.GRADER_DATA_DIR = tmp_path / "no-data"
    grading_settings.GRADER_DATA_DIR.mkdir()
    return grading_settings.GRADER_DATA_DIR


def cifar_assignment():
    preset = load_preset("cifar10-separable")
    from grader.presets import preset_text

    return make_assignment(
        slug="cifar10-separable",
        dataset=preset.metadata["dataset"],
        rules_yaml=preset_text("cifar10-separable"),
        max_epochs=50,
        time_limit_seconds=3600,
    )


def run_through_check_and_train(submission: Submission, **build: object) -> str:
    assert stages.execute_build(submission.pk, worker="cpu@host#b.1", **build) == stages.DONE, (
        Submission.objects.get(pk=submission.pk).message
    )
    assert stages.execute_check(submission.pk, worker="cpu@host#c.1") == stages.DONE, (
        Submission.objects.get(pk=submission.pk).message
    )
    return stages.execute_train(submission.pk, worker="gpu@host#t.1")


def test_a_cifar10_model_is_checked_and_waits_for_the_dataset(student, offline_host, redis_broker):
    source = FIXTURE_MODELS / "cifar10_separable_reference.json"
    submission = make_submission(cifar_assignment(), student, source=source)

    outcome = run_through_check_and_train(submission)
    redis_broker.delete("gpu")  # the train task the check sent: the call above consumed it

    assert outcome == stages.WAITING
    submission.refresh_from_db()
    assert (submission.status, submission.reason, submission.worker) == (
        Status.WAITING_DATA,
        "",
        "",
    )
    assert submission.message == data_wait.WAITING_MESSAGE
    assert str(offline_host) not in submission.message + submission.log
    assert "fetch_dataset" not in submission.message + submission.log
    # Every static rule is decided and stored, the training rule is still to come.
    result = Result.objects.get(submission=submission)
    decided = {rule["id"]: rule["passed"] for rule in result.rules}
    assert decided == {
        "separable_conv_used": True,
        "only_separable_convs": True,
        "max_params": True,
        "max_dropout": True,
        "min_receptive_field": True,
        "max_epochs": None,
        "min_val_accuracy": None,
        "all_layers_trainable": True,
    }
    assert result.params_total == 74_666  # tests/fixtures/models/expected.json, from Keras
    # The network's last feature map, before global pooling (expected.json's designed field).
    assert result.checks["receptive_field"]["size"] == [64, 64]
    # No task is pending: nothing runs until the dataset is installed.
    gpu = [name for name, args, _ in queued_tasks(redis_broker, "gpu") if args == [submission.pk]]
    assert gpu == []

    from tests.assignments.services.test_data_wait import write_cifar_raw

    write_cifar_raw(offline_host)
    assert data_wait.resume_ready() == [submission.pk]
    gpu = [name for name, args, _ in queued_tasks(redis_broker, "gpu") if args == [submission.pk]]
    assert gpu == ["workers.train_submission"]
    assert Submission.objects.get(pk=submission.pk).status == Status.CHECKING


@pytest.mark.bwrap
@pytest.mark.timeout(180)
def test_a_python_module_is_built_without_the_dataset(
    bwrap_available, student, offline_host, redis_broker
):
    # The build stage needs the image shape and the class count only: the registry's.
    from workers.sandbox import get_sandbox

    submission = make_submission(cifar_assignment(), student, source=CIFAR_MODULE)

    outcome = run_through_check_and_train(submission, sandbox=get_sandbox("bwrap"))

    submission.refresh_from_db()
    assert outcome == stages.WAITING, submission.message
    assert submission.status == Status.WAITING_DATA
    rules = {rule["id"]: rule["passed"] for rule in submission.result.rules}
    assert rules["separable_conv_used"] is True and rules["min_receptive_field"] is True
    assert submission.result.checks["model"]["input_shape"] == [32, 32, 3]
