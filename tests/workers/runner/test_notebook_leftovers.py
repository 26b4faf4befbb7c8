"""The build sandbox and notebook leftovers: stand-in modules, terminal codes in messages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.workers.runner import SMOKE_SUBMISSION, make_job, run_runner
from workers.runner.redact import strip_terminal_codes
from workers.runner.submission import STUBS_DIR

BUILD_SPEC = {
    "stage": "build",
    "submission": "submission.py",
    "input_shape": [16, 16, 3],
    "num_classes": 4,
}

NOTEBOOK_EXPORT = (
    "import matplotlib\n"
    "import matplotlib.pyplot as plt\n"
    "from IPython.display import display, clear_output\n"
    "from google.colab import drive, files\n"
    "matplotlib.use('Agg')\n"
    "drive.mount('/content/drive')\n"
    "fig, (ax1, ax2) = plt.subplots(1, 2)\n"
    "ax1.plot([1, 2, 3]); plt.show()\n"
    "display(clear_output())\n" + SMOKE_SUBMISSION
)


@pytest.mark.tf
def test_a_notebook_export_with_plots_and_drive_builds(tmp_path: Path) -> None:
    job = make_job(tmp_path / "job", BUILD_SPEC, files={"submission.py": NOTEBOOK_EXPORT})
    run = run_runner("build", job)
    assert run.returncode == 0, run.stderr
    assert run.result is not None and run.result["ok"] is True, run.result
    assert "[grader] `matplotlib` is a stand-in" in run.stderr
    assert "[grader] `google.colab` is a stand-in" in run.stderr


def test_the_stand_ins_leave_installed_namespace_packages_alone() -> None:
    # TensorFlow needs `google.protobuf` from the same `google` namespace as the stub.
    code = (
        "import sys\n"
        f"sys.path.append({str(STUBS_DIR)!r})\n"
        "import google.protobuf, google.colab, IPython.display, matplotlib.pyplot as plt\n"
        "assert 'site-packages' in google.protobuf.__file__\n"
        "assert google.colab.__file__.startswith(sys.path[-1])\n"
        "print(plt.subplots(2, 2)[1][0, 1].imshow([[1]]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "does nothing in the grader" in done.stdout


@pytest.mark.tf
def test_keras_terminal_codes_never_reach_the_result(tmp_path: Path) -> None:
    # Keras 3 wraps this message in `\x1b[1m ... \x1b[0m` (bold, for a terminal).
    source = (
        "import keras\nfrom keras import layers\n\n"
        "def build_model(input_shape, num_classes):\n"
        "    model = keras.Sequential([keras.Input((4,)), layers.Dense(3)])\n"
        "    model(keras.ops.zeros((1, 5)))\n"
        "    return model\n"
    )
    job = make_job(tmp_path / "job", BUILD_SPEC, files={"submission.py": source})
    run = run_runner("build", job)
    assert run.result is not None and run.result["ok"] is False
    message = run.result["error"]["message"]
    assert "is incompatible with the layer" in message
    assert "\x1b" not in message and "[1m" not in message and "[0m" not in message


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("\x1b[1mbold\x1b[0m text", "bold text"),
        ("\x1b[38;5;196mred\x1b[39m", "red"),
        ("see \x1b]8;;http://x\x07link\x1b]8;;\x07", "see link"),
        ("bar\x08\x08\x07 done", "bar done"),
        ("epoch 1\repoch 2\r\nend", "epoch 1\nepoch 2\nend"),
        ("keep\ttabs\nand newlines • é", "keep\ttabs\nand newlines • é"),
        ("\x9b31m8-bit\x9bm", "8-bit"),
    ],
)
def test_strip_terminal_codes(raw: str, clean: str) -> None:
    assert strip_terminal_codes(raw) == clean
