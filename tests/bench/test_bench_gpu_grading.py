"""`bench/bench_gpu_grading.py` runs end to end on JAX, on CPU, at its tiny ``--smoke`` size.

The script is meant for a GPU host with JAX and CUDA but no TensorFlow or Django, where it can
only be run once it is there: here it must already work, import neither, and use the course's
training settings.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "bench_gpu_grading.py"

# Slow: it trains the course model in three JAX processes on the CPU.
pytestmark = [pytest.mark.tf, pytest.mark.timeout(1200)]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_gpu_grading", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_course_settings_are_the_presets() -> None:
    preset = yaml.safe_load((ROOT / "grader" / "presets" / "cifar10-separable.yaml").read_text())
    assert preset["training"] == _script().COURSE_TRAINING


def test_smoke_run_reports_every_phase_without_tensorflow_or_django(tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--json", str(report_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1100,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    results = json.loads(report_path.read_text())["results"]
    assert [(r["trainings"], r["epochs_each"]) for r in results] == [(1, 2), (2, 2)]
    for result in results:
        assert result["errors"] == [] and not result["stopped_at_budget"]
        assert result["tensorflow_loaded"] is False and result["django_loaded"] is False
        assert result["device"].startswith("cpu") and result["train_images"] == 288
        assert all(run["epochs_done"] == 2 for run in result["runs"])
        assert result["steady_epoch_s_median"] > 0 and result["compile_s_median"] is not None
        # Total throughput is the sum over the sharing trainings.
        each = [run["images_per_s"] for run in result["runs"]]
        assert result["images_per_s_total"] == pytest.approx(sum(each), abs=0.2)
    # The table names each phase.
    lines = done.stdout.splitlines()
    assert any(line.split()[:2] == ["1", "2"] for line in lines)
    assert any(line.split()[:2] == ["2", "2"] for line in lines)
