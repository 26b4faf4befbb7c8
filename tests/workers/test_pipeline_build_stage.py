"""The build stage runs student code with no data: no split of any dataset is mounted.

A module whose `build_model` looks for the dataset folders is built through `execute_build` in a
real bubblewrap sandbox, as a worker runs it; it would raise (and the build would fail) if it
found any.
"""

from __future__ import annotations

import pytest

from assignments.models import Submission
from tests.workers.conftest import make_assignment, make_submission, queued_tasks
from workers.pipeline import stages

pytestmark = [
    pytest.mark.services,
    pytest.mark.bwrap,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(180),
]

LOOKING_MODULE = """\
import os

import keras


def build_model(input_shape, num_classes):
    found = [p for p in ("/job/data", "/job/held-out", "/job/train-data") if os.path.exists(p)]
    if found:
        raise RuntimeError(f"build sees {found}")
    inputs = keras.Input(input_shape)
    x = keras.layers.SeparableConv2D(8, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(x))
"""


def test_the_build_sandbox_holds_no_dataset(
    bwrap_available, student, grading_settings, redis_broker
):
    from workers.sandbox import get_sandbox

    submission = make_submission(make_assignment(), student, source=LOOKING_MODULE)

    outcome = stages.execute_build(submission.pk, worker="cpu@host#1", sandbox=get_sandbox("bwrap"))

    submission.refresh_from_db()
    assert outcome == stages.DONE, submission.log
    # Built and handed on: still `building`, no owner, the check stage sent.
    assert (submission.status, submission.worker) == (Submission.Status.BUILDING, ""), (
        submission.message
    )
    assert submission.model_config["class_name"] == "Functional"
    sent = [
        name for name, args, _ in queued_tasks(redis_broker, "preflight") if args == [submission.pk]
    ]
    assert sent == ["workers.check_submission"]
