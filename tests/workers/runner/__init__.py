"""Tests of the in-sandbox runner, run as real subprocesses against temporary job directories.

Helpers live here (not in a conftest) so that test modules can import them explicitly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[3]
PROGRESS_PREFIX = "GRADER-PROGRESS "

SMOKE_SUBMISSION = """
import keras
from keras import layers


def build_model(input_shape, num_classes):
    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            layers.SeparableConv2D(16, 3, padding="same", activation="relu"),
            layers.SeparableConv2D(16, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(),
            layers.SeparableConv2D(32, 3, padding="same", activation="relu"),
            layers.SeparableConv2D(32, 3, padding="same", activation="relu"),
            layers.GlobalAveragePooling2D(),
            layers.Dense(num_classes, activation="softmax"),
        ],
        name="smoke_submission",
    )


def training_config():
    return {"optimizer": "adam", "learning_rate": 0.003, "batch_size": 64, "epochs": 4}
"""


@dataclass
class RunnerRun:
    """One finished runner process."""

    returncode: int
    stdout: str
    stderr: str
    result: dict[str, Any] | None

    @property
    def records(self) -> list[dict[str, Any]]:
        """Every parsed ``GRADER-PROGRESS`` record (built-network reports and epochs), in order."""
        return [
            json.loads(line[len(PROGRESS_PREFIX) :])
            for line in self.stdout.splitlines()
            if line.startswith(PROGRESS_PREFIX)
        ]

    @property
    def progress(self) -> list[dict[str, Any]]:
        """The epoch records, in order."""
        return [record for record in self.records if "epoch" in record]

    @property
    def built_models(self) -> list[dict[str, Any]]:
        """The ``built_model`` reports, in order (the runner writes exactly one)."""
        return [record["built_model"] for record in self.records if "built_model" in record]


def runner_command(stage: str, job: Path) -> list[str]:
    """The exact command the sandbox runs."""
    return [sys.executable, "-m", "workers.runner", stage, str(job)]


def runner_env() -> dict[str, str]:
    """The environment of a runner subprocess: the repository importable, small thread pools."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    # Two cores are shared by everyone here: keep TensorFlow from oversubscribing them.
    env.setdefault("TF_NUM_INTRAOP_THREADS", "2")
    env.setdefault("TF_NUM_INTEROP_THREADS", "1")
    return env


def make_job(
    root: Path,
    spec: dict[str, Any],
    *,
    files: dict[str, str | bytes] | None = None,
    data: Path | None = None,
) -> Path:
    """Lay out ``in/`` (spec, files), ``data`` (a link to a prepared split), ``work``, ``out``."""
    (root / "in").mkdir(parents=True)
    (root / "work").mkdir()
    (root / "out").mkdir()
    (root / "in" / "spec.json").write_text(json.dumps(spec))
    for name, content in (files or {}).items():
        target = root / "in" / name
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
    if data is not None:
        (root / "data").symlink_to(data, target_is_directory=True)
    return root


def run_runner(
    stage: str, job: Path, *, timeout: float = 240, env: dict[str, str] | None = None
) -> RunnerRun:
    """Run ``python -m workers.runner STAGE JOB`` to completion (`env`: variables to add)."""
    done = subprocess.run(
        runner_command(stage, job),
        cwd=REPO_ROOT,
        env={**runner_env(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    result_path = job / "out" / "result.json"
    result = json.loads(result_path.read_text()) if result_path.exists() else None
    return RunnerRun(done.returncode, done.stdout, done.stderr, result)
