"""Importing the training modules stays free of TensorFlow and Keras (they load lazily)."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "module",
    [
        "grader.training",
        "grader.training.config",
        "grader.training.safe_model",
        "grader.training.augment",
        "grader.training.backend",
        "grader.training.seeds",
        "grader.training.pipeline",
        "grader.training.accelerator",
        "grader.training.optimization",
        "grader.training.checkpoints",
        "grader.training.trainer",
        "grader.training.evaluation",
    ],
)
def test_import_does_not_load_tensorflow(module: str) -> None:
    code = f"import sys, {module}; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
