"""End to end on the embedded default: SQLite and the filesystem broker, no server at all.

The setup the README's first command makes (`scripts/quickstart.sh`): a migrated SQLite database
under `var/`, the demo course from `load_demo`, a Celery worker with beat on kombu's filesystem
transport. A student's upload goes through the site's submission service, and the worker grades
it through every stage in the bwrap sandbox.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.workers.conftest import FIXTURE_MODELS

pytestmark = [
    pytest.mark.embedded,
    pytest.mark.e2e,
    pytest.mark.bwrap,
    pytest.mark.tf,
    pytest.mark.timeout(600),
]

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
CELERY = Path(sys.executable).with_name("celery")

SUBMIT = """
from pathlib import Path
from django.contrib.auth import get_user_model
from assignments.models import Assignment
from assignments.services.submissions import create_submission
path = Path({path!r})
submission = create_submission(
    assignment=Assignment.objects.get(slug="smoke"),
    student=get_user_model().objects.get(username="student1"),
    filename=path.name,
    data=path.read_bytes(),
)
print(submission.pk)
"""


def manage(*args: str, env: dict[str, str]) -> str:
    completed = subprocess.run(
        [PYTHON, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, f"manage.py {args[0]}:\n{completed.stderr[-3000:]}"
    return completed.stdout


def test_the_embedded_default_grades_an_upload(tmp_path, prepared_data_dir, bwrap_available):
    var = tmp_path / "var"
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE"}
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.local",
            "GRADER_ENV_FILE": "",
            "GRADER_VAR_DIR": str(var),
            "GRADER_DATA_DIR": str(prepared_data_dir),
            "GRADER_SANDBOX": "bwrap",
        }
    )
    manage("migrate", "--noinput", env=env)
    manage("load_demo", env=env)

    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [
            str(CELERY),
            "-A",
            "workers",
            "worker",
            "-B",
            "-s",
            str(tmp_path / "beat"),
            "-Q",
            "preflight,gpu,maintenance",
            "--concurrency",
            "1",
            "--loglevel",
            "INFO",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        submission_id = int(
            manage(
                "shell",
                "-c",
                SUBMIT.format(path=str(FIXTURE_MODELS / "smoke_separable.json")),
                env=env,
            )
            .strip()
            .splitlines()[-1]
        )
        database = var / "db.sqlite3"
        deadline = time.monotonic() + 420
        row = None
        while time.monotonic() < deadline:
            with sqlite3.connect(database, timeout=30) as db:
                row = db.execute(
                    "SELECT status, reason, message FROM assignments_submission WHERE id = ?",
                    (submission_id,),
                ).fetchone()
            if row and row[0] in {"finished", "failed", "error", "cancelled"}:
                break
            time.sleep(2)
        worker_log = (tmp_path / "worker.log").read_text(errors="replace")[-6000:]
        assert row is not None and row[0] == "finished", f"{row}\n{worker_log}"
        with sqlite3.connect(database, timeout=30) as db:
            passed, score, accuracy, rules = db.execute(
                "SELECT passed, score, accuracy, rules FROM assignments_result "
                "WHERE submission_id = ?",
                (submission_id,),
            ).fetchone()
            epochs = db.execute(
                "SELECT COUNT(*) FROM assignments_epochmetric WHERE submission_id = ?",
                (submission_id,),
            ).fetchone()[0]
        assert passed == 1 and score == 100.0
        assert 0.0 <= accuracy <= 1.0
        assert {r["id"] for r in json.loads(rules) if r["passed"]} >= {"min_val_accuracy"}
        assert epochs >= 1
        assert (var / "broker").is_dir()  # the filesystem transport carried the messages
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
