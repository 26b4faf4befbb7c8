"""Attack: make the grader analyse one network while Keras trains another.

The grader's numbers come from a pure-Python reading of the model config; the sandbox trains
what Keras builds from the same config. A config that the two readers read differently (here:
a layer entry whose top-level ``"name"`` says `c1` while its config says `c2`, so one reader
sees `c1` called twice and Keras builds a second layer) would be graded on a network it is not.
With custom training the student may also print a forged report of the built network, computed
with the grader's own analysis inside the sandbox, hoping the host takes it for the runner's.

Whatever the readers do with such a file, it must never be trained and scored: either the
analysis refuses it, or the built-network check does, before any epoch.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from grader.grading.plan import GradingPlan
from workers.pipeline.local import grade_file

pytestmark = [pytest.mark.tf, pytest.mark.bwrap, pytest.mark.timeout(300)]

ALIAS_MODULE = '''
import gc
import json

import keras
from keras import layers


def _alias(config):
    """The third convolution's entry claims the second one's name at the top level."""
    config = json.loads(json.dumps(config))
    config["config"]["layers"][3]["name"] = "c1"
    return config


def build_model(input_shape, num_classes):
    model = keras.Sequential(
        [
            keras.Input(shape=input_shape),
            layers.SeparableConv2D(16, 3, padding="same", activation="relu", name="c0"),
            layers.SeparableConv2D(16, 3, padding="same", activation="relu", name="c1"),
            layers.SeparableConv2D(16, 3, padding="same", activation="relu", name="c2"),
            layers.MaxPooling2D(name="pool"),
            layers.GlobalAveragePooling2D(name="gap"),
            layers.Dense(num_classes, activation="softmax", name="head"),
        ],
        name="alias",
    )
    config = _alias(json.loads(model.to_json()))
    model.to_json = lambda **kwargs: json.dumps(config)
    return model


def _forge():
    """In the train sandbox: report exactly what the grader's analysis reads from model.json."""
    try:
        from grader.report import check_model
        from workers.runner.protocol import ProgressChannel
    except ImportError:
        return
    try:
        with open("/job/in/model.json") as handle:
            checks = check_model(json.load(handle))
    except Exception:
        return
    rows = [
        {
            "name": row["name"],
            "class_name": row["class_name"],
            "calls": row["calls"],
            "params": row["params"],
            "trainable_params": row["trainable_params"],
            "trainable": row["trainable"],
        }
        for row in checks["layers"]
        if row["class_name"] != "InputLayer"
    ]
    for channel in [o for o in gc.get_objects() if isinstance(o, ProgressChannel)]:
        channel({"built_model": {"layers": rows, "params": checks["params"]}})


_forge()


def train(model, data, config):
    _forge()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(data["x"] / 255.0, data["y"], batch_size=64, epochs=config["epochs"],
              callbacks=data["callbacks"], verbose=0)
'''


@pytest.fixture
def grading_settings(settings: Any, tmp_path: Path) -> Any:
    """Job folders and the synthetic dataset under this test's temporary directory."""
    from grader.datasets import prepare_dataset

    settings.GRADER_JOBS_DIR = tmp_path / "jobs"
    settings.GRADER_DATA_DIR = tmp_path / "data"
    prepare_dataset("synthetic", settings.GRADER_DATA_DIR, key=settings.GRADER_DATASET_KEY)
    return settings


def _alias_json(tmp_path: Path) -> Path:
    import keras
    from keras import layers

    model = keras.Sequential(
        [
            keras.Input(shape=(16, 16, 3)),
            layers.SeparableConv2D(16, 3, padding="same", activation="relu", name="c0"),
            layers.SeparableConv2D(16, 3, padding="same", activation="relu", name="c1"),
            layers.SeparableConv2D(16, 3, padding="same", activation="relu", name="c2"),
            layers.MaxPooling2D(name="pool"),
            layers.GlobalAveragePooling2D(name="gap"),
            layers.Dense(4, activation="softmax", name="head"),
        ],
        name="alias",
    )
    config = copy.deepcopy(json.loads(model.to_json()))
    config["config"]["layers"][3]["name"] = "c1"
    path = tmp_path / "alias.json"
    path.write_text(json.dumps(config))
    return path


def _assert_never_trained(report: Any, epochs_seen: list[Any]) -> None:
    data = report.to_dict()
    assert (data["status"], data["reason"]) == ("failed", "invalid_submission"), data
    assert data["training"] is None and epochs_seen == []
    assert data["evaluation"] is None and data["score"] is None
    built = (data["checks"] or {}).get("built_model")
    if built is not None:  # refused by the built-network check (not by the analysis itself)
        assert data["message"].startswith("Your model could not be graded")
        assert any(d.startswith("Layer `c2` (SeparableConv2D)") for d in built["differences"])


def test_a_json_whose_layer_names_two_readers_read_differently_never_trains(
    tmp_path, grading_settings, bwrap_available
):
    epochs: list[Any] = []

    report = grade_file(
        _alias_json(tmp_path),
        GradingPlan.from_preset("smoke"),
        sandbox_name="bwrap",
        on_event=lambda kind, data: epochs.append(data) if kind == "epoch" else None,
    )

    _assert_never_trained(report, epochs)


def test_a_report_forged_by_custom_training_code_does_not_pass_the_network(
    tmp_path, grading_settings, bwrap_available
):
    path = tmp_path / "alias.py"
    path.write_text(ALIAS_MODULE)
    plan = dataclasses.replace(GradingPlan.from_preset("smoke"), allow_custom_training=True)
    epochs: list[Any] = []

    report = grade_file(
        path,
        plan,
        sandbox_name="bwrap",
        on_event=lambda kind, data: epochs.append(data) if kind == "epoch" else None,
    )

    _assert_never_trained(report, epochs)
