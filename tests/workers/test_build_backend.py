"""Which Keras backend builds a `.py` upload, and the TensorFlow rebuild, in real sandboxes.

A module that does not name TensorFlow is built on Keras' numpy backend (no TensorFlow import);
one that imports TensorFlow in a way the host's reading misses is refused TensorFlow in the
light sandbox and built again, in a fresh sandbox, on TensorFlow.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.workers.runner import SMOKE_SUBMISSION
from workers.pipeline.build import build_backend, run_build
from workers.pipeline.jobs import StageResources, job_dirs

RESOURCES = StageResources(wall_seconds=240, memory_mb=4096)
PRINTS_BACKEND = (
    "\nimport sys\n"
    "_build = build_model\n"
    "def build_model(input_shape, num_classes):\n"
    "    import keras\n"
    "    loaded = 'tensor' + 'flow' in sys.modules\n"
    "    print('BACKEND', keras.backend.backend(), loaded, file=sys.stderr)\n"
    "    return _build(input_shape, num_classes)\n"
)
HIDDEN_TENSORFLOW = """\
import importlib
import sys


def build_model(input_shape, num_classes):
    tf = importlib.import_module("tensor" + "flow")
    keras = tf.keras
    print("BACKEND", keras.backend.backend(), file=sys.stderr)
    return keras.Sequential(
        [keras.Input(input_shape), keras.layers.Conv2D(4, 3), keras.layers.GlobalAveragePooling2D(),
         keras.layers.Dense(num_classes, activation="softmax")]
    )
"""


@pytest.mark.parametrize(
    ("configured", "source", "expected"),
    [
        ("numpy", SMOKE_SUBMISSION, "numpy"),
        ("jax", SMOKE_SUBMISSION, "jax"),
        ("", SMOKE_SUBMISSION, "numpy"),
        ("tensorflow", SMOKE_SUBMISSION, "tensorflow"),
        ("numpy", "import tensorflow as tf\n" + SMOKE_SUBMISSION, "tensorflow"),
        ("numpy", "from tensorflow import keras\n" + SMOKE_SUBMISSION, "tensorflow"),
        ("numpy", "import tf_keras as keras\n" + SMOKE_SUBMISSION, "tensorflow"),
        ("numpy", "# written for tensorflow 2.x\n" + SMOKE_SUBMISSION, "tensorflow"),
        ("torch", SMOKE_SUBMISSION, "tensorflow"),
    ],
)
def test_build_backend_is_light_unless_the_module_names_tensorflow(
    settings, configured: str, source: str, expected: str
) -> None:
    settings.GRADER_BUILD_KERAS_BACKEND = configured

    assert build_backend(source) == expected


def _build(tmp_path: Path, source: str):
    from workers.sandbox import get_sandbox

    path = tmp_path / "model.py"
    path.write_text(source)
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    jobs.chmod(0o755)
    return run_build(
        path=path,
        input_shape=(16, 16, 3),
        num_classes=4,
        dirs=job_dirs(root=jobs, key="k", stage="build"),
        sandbox=get_sandbox("bwrap"),
        resources=RESOURCES,
    )


@pytest.mark.bwrap
def test_a_module_without_tensorflow_is_built_on_numpy(
    bwrap_available, settings, tmp_path: Path
) -> None:
    settings.GRADER_BUILD_KERAS_BACKEND = "numpy"

    output = _build(tmp_path, SMOKE_SUBMISSION + PRINTS_BACKEND)

    assert "BACKEND numpy False" in output.log
    assert output.model_config["config"]["name"] == "smoke_submission"


CRASHES_OFF_TENSORFLOW = """\
import os
import sys

import keras


def build_model(input_shape, num_classes):
    print("BACKEND", keras.backend.backend(), file=sys.stderr)
    if keras.backend.backend() != "tensor" + "flow":
        os.abort()  # as a light backend's native code might
    return keras.Sequential(
        [keras.Input(input_shape), keras.layers.Conv2D(4, 3), keras.layers.GlobalAveragePooling2D(),
         keras.layers.Dense(num_classes, activation="softmax")]
    )
"""


@pytest.mark.bwrap
@pytest.mark.tf
@pytest.mark.parametrize(
    "source", [HIDDEN_TENSORFLOW, CRASHES_OFF_TENSORFLOW], ids=["hidden-import", "crash"]
)
def test_a_light_build_that_needs_tensorflow_is_built_again_on_tensorflow(
    bwrap_available, settings, tmp_path: Path, source: str
) -> None:
    settings.GRADER_BUILD_KERAS_BACKEND = "numpy"
    assert build_backend(source) == "numpy"  # the host's reading misses it

    output = _build(tmp_path, source)

    assert "BACKEND tensorflow" in output.log
    assert [layer["class_name"] for layer in output.model_config["config"]["layers"]] == [
        "InputLayer",
        "Conv2D",
        "GlobalAveragePooling2D",
        "Dense",
    ]
