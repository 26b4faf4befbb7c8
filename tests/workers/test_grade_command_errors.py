"""`grade` when the grading cannot start or cannot run: what a person or a script is told.

A bad argument in `--format json` is still the report's JSON object on stdout (exit 2); a sandbox
image that is not built names the image and the fix, with the real Docker engine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.workers.conftest import FIXTURE_MODELS

ROOT = Path(__file__).resolve().parents[2]
REPORT_KEYS = {
    "file",
    "status",
    "reason",
    "message",
    "checks",
    "training",
    "evaluation",
    "score",
    "source",
}


def grade(*args: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`manage.py grade ...` as a user runs it, on an empty database (presets only)."""
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "GRADER_ENV_FILE": "",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite3'}",
        "GRADER_VAR_DIR": str(tmp_path / "var"),
        "GRADER_JOBS_DIR": str(tmp_path / "jobs"),
        **env,
    }
    return subprocess.run(
        [sys.executable, "manage.py", "grade", *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def json_report(completed: subprocess.CompletedProcess[str]) -> dict:
    assert completed.returncode == 2, completed.stdout + completed.stderr
    report = json.loads(completed.stdout)
    assert set(report) == REPORT_KEYS
    assert report["status"] == "error"
    assert (
        report["checks"],
        report["training"],
        report["evaluation"],
        report["score"],
        report["source"],
    ) == (None, None, None, None, None)
    return report


def test_an_unknown_assignment_in_json_mode_is_a_json_error(tmp_path):
    module = tmp_path / "x.py"
    module.write_text("")
    report = json_report(
        grade(str(module), "--assignment", "nope", "--format", "json", tmp_path=tmp_path)
    )
    assert report["reason"] == "invalid_argument"
    assert report["message"].startswith("No assignment or preset is named `nope`")
    assert report["file"] == str(module)


def test_a_missing_file_in_json_mode_is_a_json_error(tmp_path):
    missing = tmp_path / "nonexist.py"
    report = json_report(
        grade(str(missing), "--assignment", "smoke", "--format", "json", tmp_path=tmp_path)
    )
    assert report["reason"] == "invalid_argument"
    assert report["message"] == f"File {missing} does not exist."


def test_text_mode_still_says_a_bad_argument_on_stderr(tmp_path):
    completed = grade(str(tmp_path / "nonexist.py"), "--assignment", "smoke", tmp_path=tmp_path)
    assert completed.returncode == 2
    assert completed.stdout == ""
    assert "does not exist." in completed.stderr


@pytest.mark.docker
def test_a_sandbox_image_not_built_names_the_image_and_the_fix(tmp_path, docker_available):
    image = f"grader-no-such-image:{uuid.uuid4().hex[:12]}"
    completed = grade(
        str(FIXTURE_MODELS / "smoke_submission.py"),
        "--assignment",
        "smoke",
        "--sandbox",
        "docker",
        tmp_path=tmp_path,
        GRADER_SANDBOX_IMAGE=image,
    )
    assert completed.returncode == 2, completed.stdout + completed.stderr
    assert "reason: infrastructure" in completed.stdout
    assert f"The sandbox image `{image}` is not built" in completed.stdout
    assert f"docker build -f workers/sandbox/Dockerfile -t {image} ." in completed.stdout
    assert "GRADER_SANDBOX_IMAGE=local" in completed.stdout
    assert "Traceback" not in completed.stderr
