"""`manage.py grade` on what students write from Keras 1/2 tutorials and notebooks.

Each run is the whole local pipeline in a bubblewrap sandbox (`run_grade`, as in
`test_grade_command.py`): a Keras 1 `Conv2D(16, 3, 3)` and a Keras 1 `border_mode=` fail their
build with messages naming the line and what to write; a Colab notebook and a Keras 2
`model.to_json()` are graded like their Keras 3 equivalents.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.workers.conftest import FIXTURE_MODELS
from tests.workers.test_grade_command import EXPECTED, env_dirs, run_grade  # noqa: F401

LEGACY = FIXTURE_MODELS / "legacy"

pytestmark = [pytest.mark.tf, pytest.mark.bwrap, pytest.mark.timeout(600)]


def grade_json(path: Path, env_dirs: dict[str, Path]) -> tuple[int, dict]:  # noqa: F811
    completed = run_grade(str(path), "--assignment", "smoke", "--format", "json", env_dirs=env_dirs)
    return completed.returncode, json.loads(completed.stdout)


def test_keras_1_kernel_written_as_two_numbers_names_the_line_and_the_fix(env_dirs):  # noqa: F811
    code, report = grade_json(LEGACY / "keras1_conv_strides.py", env_dirs)

    assert code == 1, report
    assert (report["status"], report["reason"]) == ("failed", "build_error")
    message = report["message"]
    # What Keras said, at the MaxPooling2D line where the collapse shows...
    assert 'File "submission.py", line 15, in build_model' in message
    assert "Computed output size would be zero or negative" in message
    # ...then the cause, at its own line, with the call to write.
    assert '- line 13: `Conv2D(16, 3, 3, activation="relu", input_shape=input_shape)`' in message
    assert "in Keras 3 the third positional argument is `strides`" in message
    assert (
        'For a 3x3 kernel write `Conv2D(16, (3, 3), activation="relu", '
        "input_shape=input_shape)`" in message
    )
    assert '- line 14: `Conv2D(16, 3, 3, activation="relu")`' in message
    assert [n["where"] for n in report["source"]["notes"]] == ["line 13", "line 14"]


def test_keras_1_border_mode_build_error_names_padding(env_dirs):  # noqa: F811
    code, report = grade_json(LEGACY / "keras1_border_mode.py", env_dirs)

    assert code == 1, report
    assert report["reason"] == "build_error"
    message = report["message"]
    assert "Unrecognized keyword arguments passed to Conv2D: {'border_mode': 'same'}" in message
    hints = message.split("Code written for Keras 1 or 2 (the grader runs Keras 3):\n")[1]
    first = hints.splitlines()[0]
    assert first == (
        "- line 9: `Convolution2D(..., border_mode=...)`: `border_mode=` is the Keras 1/2 "
        "spelling; Keras 3 takes `padding=`."
    )
    assert 'write `Conv2D(16, (3, 3), padding="same", input_shape=input_shape)`' in hints


def test_a_colab_notebook_is_graded_from_its_definitions_only(env_dirs):  # noqa: F811
    code, report = grade_json(LEGACY / "notebook_smoke.ipynb", env_dirs)

    # The notebook downloads CIFAR-10 and trains 50 epochs at top level: had either run, the
    # sandbox (no network, 3 declared epochs) would have failed or trained something else.
    assert code == 0, report
    assert report["status"] == "passed"
    assert [e["epoch"] for e in report["training"]["epochs"]] == [1, 2, 3]
    notebook = report["source"]["notebook"]
    assert notebook["name"] == "notebook_smoke.ipynb"
    assert notebook["used_cells"] == [3, 6, 7]
    cells = {cell["number"]: cell for cell in notebook["cells"]}
    assert cells[6]["kept"] == ["FILTERS = ...", "def build_model"]
    assert any("model.fit" in item for item in cells[8]["left_out"])
    assert cells[10]["error"] == "a `%%bash` cell (not Python)"


def test_a_keras_2_model_json_is_graded_like_its_keras_3_equivalent(env_dirs):  # noqa: F811
    code, report = grade_json(LEGACY / "keras2_4_smoke_sequential.json", env_dirs)

    assert code == 0, report
    assert report["status"] == "passed"
    # The same architecture as the Keras 3 smoke fixture: Keras counted its parameters.
    params = report["checks"]["params"]
    assert params["total"] == EXPECTED["smoke_separable"]["params_total"]
    assert report["checks"]["model"]["input_shape"] == [16, 16, 3]
    assert report["source"] is None
