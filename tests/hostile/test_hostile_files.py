"""Hostile files: what a student's file costs the web tier, the host and an instructor's terminal.

Three attack classes, one test per attack:

- upload bombs: a `.py` or a notebook the upload check would parse without bound (19 MB of
  short lines, a small module of densely packed or deeply nested expressions, the same code in
  a notebook cell, a notebook of millions of tiny JSON objects), through the real HTTP API of a
  live server, the upload page and the local commands: refused with a message, the server keeps
  answering;
- sandbox output bombs: a custom `train()` (real bubblewrap sandboxes, real TensorFlow) that
  writes the result itself and leaves a sparse, linked or FIFO weights file, or 10,000 files, in
  its work folder: a verdict with a clear message, and the host's disk never pays the apparent
  size;
- terminal injection: a layer name holding `\\x1b[2J` and a file name holding a newline reach
  `check_model`, `grade` and `grade_batch` as visible escapes; their CSV stays spreadsheet-safe.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from pathlib import Path

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.urls import reverse

from assignments.client.http import Api, ApiError
from assignments.models import Submission
from grader.python_source import MAX_SOURCE_BYTES, MAX_SOURCE_LINES
from tests.support import site_fixtures
from tests.workers import conftest as worker_fixtures
from tests.workers.conftest import FIXTURE_MODELS, SMOKE_MODULE

# The site's and the pipeline's fixtures, used here by name.
course = site_fixtures.course
student = site_fixtures.student
assignment = site_fixtures.assignment
uploads_dir = site_fixtures.uploads_dir
grading_settings = worker_fixtures.grading_settings
prepared_data_dir = worker_fixtures.prepared_data_dir

MiB = 1024 * 1024

# 19,000,047 bytes in 9,500,001 short lines: valid Python that defines `build_model`.
BOMB = b"a\n" * 9_500_000 + b"def build_model(input_shape, num_classes): ...\n"
BOMB_MESSAGE = (
    f"File `model.py` has 9,500,001 lines (19,000,047 bytes). Expected at most "
    f"{MAX_SOURCE_LINES:,} lines and {MAX_SOURCE_BYTES:,} bytes for a model file."
)
# The commands read a file only once its size is known to be within the bound.
BOMB_FILE_MESSAGE = (
    f"File `model.py` is 19,000,047 bytes. Expected at most {MAX_SOURCE_BYTES:,} bytes and "
    f"{MAX_SOURCE_LINES:,} lines for a model file."
)
# Within both bounds (510,000 bytes, 10,000 lines), and 250,000 statements: the old check spent
# seconds and gigabytes on it in the web process.
DENSE = b"\n".join([b"a;" * 25] * 10_000) + b"\n"
DENSE += b"def build_model(input_shape, num_classes): ...\n"

# The same code in a notebook's cell: within the notebook's bounds (512 kB of code), parsed by
# `ast` it costs a second of CPU and about 450 MB.
DENSE_NOTEBOOK = json.dumps(
    {"cells": [{"cell_type": "code", "source": DENSE.decode()}], "nbformat": 4}
).encode()
# 18 MB of JSON (within the upload limit) that decodes to 6 million empty lists: about 400 MB
# for `json.loads`, before any cell is read.
TINY_OBJECTS_NOTEBOOK = (
    b'{"nbformat": 4, "metadata": {"x": ['
    + b",".join([b"[]"] * 6_000_000)
    + b']}, "cells": [{"cell_type": "code", "source": "def build_model(a, b): ..."}]}'
)
NOTEBOOK_TOO_COMPLEX = "is too complex to read: its JSON or its code nests too deeply"


@pytest.fixture
def bomb(tmp_path: Path) -> Path:
    path = tmp_path / "model.py"
    path.write_bytes(BOMB)
    return path


# --- upload bombs ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_19_mb_module_is_refused_by_a_live_server_that_keeps_answering(
    live_server, student, assignment, uploads_dir, bomb
):
    from rest_framework.authtoken.models import Token

    cache.clear()  # the upload rate limit counts in the cache
    api = Api(live_server.url, Token.objects.create(user=student).key)

    with pytest.raises(ApiError) as info:
        api.post_file(f"/api/v1/assignments/{assignment.slug}/submissions/", bomb)

    assert (info.value.status, info.value.error_code) == (400, "invalid_upload")
    assert info.value.message == BOMB_MESSAGE
    assert not Submission.objects.exists()
    # The same server, still answering, takes an ordinary model right after.
    assert api.get_json(f"/api/v1/assignments/{assignment.slug}/")["slug"] == assignment.slug
    model = bomb.with_name("fine.py")
    model.write_bytes(b"def build_model(input_shape, num_classes):\n    return None\n")
    created = api.post_file(f"/api/v1/assignments/{assignment.slug}/submissions/", model)
    assert created["status"] == "queued"


@pytest.mark.django_db
def test_a_dense_module_is_refused_on_the_upload_page(client, student, assignment, uploads_dir):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client.force_login(student)
    url = reverse("assignment_detail", args=[assignment.slug])

    page = client.post(url, {"file": SimpleUploadedFile("dense.py", DENSE)})

    assert page.status_code == 200
    assert "File `dense.py` is too complex to parse" in page.content.decode()
    assert not Submission.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_dense_notebook_is_refused_by_a_live_server_that_keeps_answering(
    live_server, student, assignment, uploads_dir, tmp_path
):
    from rest_framework.authtoken.models import Token

    cache.clear()  # the upload rate limit counts in the cache
    api = Api(live_server.url, Token.objects.create(user=student).key)
    notebook = tmp_path / "dense.ipynb"
    notebook.write_bytes(DENSE_NOTEBOOK)

    with pytest.raises(ApiError) as info:
        api.post_file(f"/api/v1/assignments/{assignment.slug}/submissions/", notebook)

    assert (info.value.status, info.value.error_code) == (400, "invalid_upload")
    assert info.value.message.startswith(f"`dense.ipynb` {NOTEBOOK_TOO_COMPLEX}")
    assert not Submission.objects.exists()
    assert api.get_json(f"/api/v1/assignments/{assignment.slug}/")["slug"] == assignment.slug


@pytest.mark.django_db
def test_a_notebook_of_millions_of_tiny_json_objects_is_refused_on_the_upload_page(
    client, student, assignment, uploads_dir
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client.force_login(student)
    url = reverse("assignment_detail", args=[assignment.slug])

    page = client.post(url, {"file": SimpleUploadedFile("tiny.ipynb", TINY_OBJECTS_NOTEBOOK)})

    assert page.status_code == 200
    assert f"`tiny.ipynb` {NOTEBOOK_TOO_COMPLEX}" in page.content.decode()
    assert not Submission.objects.exists()


@pytest.mark.bwrap
@pytest.mark.django_db
def test_grade_refuses_a_19_mb_module_before_any_sandbox_builds_it(
    bwrap_available, grading_settings, bomb, capsys
):
    with pytest.raises(SystemExit) as exit_info:
        call_command("grade", str(bomb), "--assignment", "smoke", "--format", "json")

    report = json.loads(capsys.readouterr().out)
    assert exit_info.value.code == 1
    assert (report["status"], report["reason"]) == ("failed", "invalid_submission")
    assert report["message"] == BOMB_FILE_MESSAGE


@pytest.mark.bwrap
@pytest.mark.django_db
def test_check_model_refuses_a_19_mb_module(bwrap_available, grading_settings, bomb, capsys):
    with pytest.raises(SystemExit) as exit_info:
        call_command(
            "check_model", str(bomb), "--input-shape", "32,32,3", "--num-classes", "10",
            "--format", "json",
        )  # fmt: skip

    report = json.loads(capsys.readouterr().out)
    assert exit_info.value.code == 2
    assert report["error"] == {"kind": "invalid_submission", "message": BOMB_FILE_MESSAGE}


# --- sandbox output bombs --------------------------------------------------------------------

# A custom training that leaves `plant` in its work folder, then writes the result the runner
# would have written and exits before the runner can save real weights over it.
HOSTILE_TRAINING = (
    SMOKE_MODULE
    + """

import json
import os

WEIGHTS = "/job/work/weights.npz"


def train(model, data, config):
    PLANT
    with open("/job/out/result.json", "w") as out:
        json.dump({"ok": True, "epochs": [], "seconds": 0.0, "weights": "weights.npz",
                   "custom_training": True}, out)
    os._exit(0)
"""
)

PLANTS = {
    "sparse_1000_mib": (
        "open(WEIGHTS, 'wb').truncate(1000 * 2**20)",
        "output_limit",
        f"Training left a weights file the grader refuses: `weights.npz` is "
        f"{1000 * MiB:,} bytes. Expected at most {512 * MiB:,} bytes.",
    ),
    "sparse_300_mib": (
        "open(WEIGHTS, 'wb').truncate(300 * 2**20)",
        "crashed",
        f"Training left a weights file the grader refuses: `weights.npz` is a sparse "
        f"file: {300 * MiB:,} bytes long with only 0 bytes stored. Expected a file written in "
        "full.",
    ),
    "ten_thousand_files": (
        "os.mkdir('/job/work/many'); "
        "[open(f'/job/work/many/{i}', 'w').close() for i in range(10_000)]; "
        "open(WEIGHTS, 'wb').write(b'weights')",
        "output_limit",
        "Training left a work folder the grader refuses: the folder holds more than 1,000 "
        "files and folders. Expected at most 1,000.",
    ),
    "symlink_to_a_host_file": (
        "os.symlink(SECRET, WEIGHTS)",
        "crashed",
        "Training left a weights file the grader refuses: `weights.npz` is a symbolic "
        "link. Expected a regular file.",
    ),
    "fifo": (
        "os.mkfifo(WEIGHTS)",
        "crashed",
        "Training left a weights file the grader refuses: `weights.npz` is a FIFO "
        "(named pipe), not a regular file. Expected a regular file.",
    ),
}


@pytest.mark.tf
@pytest.mark.bwrap
@pytest.mark.timeout(300)
@pytest.mark.parametrize("attack", sorted(PLANTS))
def test_a_planted_weights_file_is_a_verdict_and_costs_the_host_no_disk(
    attack, bwrap_available, grading_settings, tmp_path
):
    from grader.datasets import prepare_dataset
    from grader.grading.plan import GradingPlan
    from grader.report import check_model
    from workers.pipeline.errors import StageFailed
    from workers.pipeline.evaluate import run_evaluate
    from workers.pipeline.jobs import StageResources, job_dirs
    from workers.pipeline.train import run_train
    from workers.sandbox import get_sandbox
    from workers.sandbox.hostdirs import disk_usage

    plant, reason, message = PLANTS[attack]
    secret = tmp_path / "secret.txt"
    secret.write_text("host canary")
    module = tmp_path / "submission.py"
    module.write_text(HOSTILE_TRAINING.replace("PLANT", plant).replace("SECRET", repr(str(secret))))
    jobs = Path(grading_settings.GRADER_JOBS_DIR)
    dataset = prepare_dataset(
        "synthetic", grading_settings.GRADER_DATA_DIR, key=grading_settings.GRADER_DATASET_KEY
    )
    plan = dataclasses.replace(GradingPlan.from_preset("smoke"), allow_custom_training=True)
    sandbox = get_sandbox("bwrap")
    resources = StageResources(wall_seconds=240, memory_mb=3072)
    model_config = json.loads((FIXTURE_MODELS / "smoke_separable.json").read_text())
    # The check stage's analysis, which the network each sandbox builds must match.
    analysis = check_model(model_config)
    evaluate_dirs = job_dirs(root=jobs, key="1/g1", stage="evaluate")

    # As a worker runs the stages: train, then the evaluation copies the weights it reported.
    with pytest.raises(StageFailed) as info:
        trained = run_train(
            model_config=model_config,
            training_config=None,
            plan=plan,
            dirs=job_dirs(root=jobs, key="1/g1", stage="train"),
            train_dir=dataset.train_part_dir,
            sandbox=sandbox,
            resources=resources,
            on_epoch=lambda record: None,
            submission_path=module,
            analysis=analysis,
        )
        run_evaluate(
            dirs=evaluate_dirs,
            test_dir=dataset.test_dir,
            sandbox=sandbox,
            resources=resources,
            model_config=model_config,
            weights_path=trained.weights_path,
            analysis=analysis,
        )

    # Nothing was copied: the host's disk holds the job's few real bytes, not the file's length.
    assert disk_usage([jobs]) < 16 * MiB
    assert not (evaluate_dirs.input / "weights.npz").exists()
    assert secret.read_text() == "host canary"
    assert (info.value.reason, info.value.message) == (reason, message)


# --- terminal injection ----------------------------------------------------------------------

EVIL_LAYER = "drop\x1b[2J\x1b]0;pwned\x07"
SHOWN_LAYER = "drop\\x1b[2J\\x1b]0;pwned\\x07"


def evil_model(folder: Path, name: str = "evil\nname.json") -> Path:
    """The `breaks_dropout_025` fixture with its dropout layer renamed to `EVIL_LAYER`, saved
    under a file name holding a newline. The analysis refuses the name (TensorFlow would), and
    its message quotes it."""
    text = (FIXTURE_MODELS / "breaks_dropout_025.json").read_text()
    assert text.count('"dropout"') >= 2  # the layer's name and the classifier's reference
    path = folder / name
    path.write_text(text.replace('"dropout"', json.dumps(EVIL_LAYER)))
    return path


REFUSED_NAME = f"Layer `{SHOWN_LAYER}` (Dropout) has a name TensorFlow refuses as a name scope"


def assert_no_control_characters(text: str) -> None:
    """Only line ends (a CSV's own CRLF included) and tabs: nothing that moves or clears."""
    text = text.replace("\r\n", "\n")
    raw = [c for c in text if (ord(c) < 0x20 and c not in "\n\t") or 0x7F <= ord(c) < 0xA0]
    assert not raw, f"control characters reached the terminal: {raw!r}"


@pytest.mark.django_db
def test_check_model_prints_a_layer_name_and_a_file_name_escaped(tmp_path, capsys):
    path = evil_model(tmp_path)

    with pytest.raises(SystemExit):
        call_command("check_model", str(path), "--assignment", "cifar10-separable")

    out = capsys.readouterr().out
    assert_no_control_characters(out)
    assert out.splitlines()[0] == f"== {tmp_path}/evil\\x0aname.json"
    assert out.splitlines()[1].startswith(f"ERROR (invalid_model): {REFUSED_NAME}")


@pytest.mark.bwrap
@pytest.mark.django_db
def test_grade_prints_a_layer_name_and_a_file_name_escaped(
    bwrap_available, grading_settings, tmp_path, capsys
):
    path = evil_model(tmp_path)

    with pytest.raises(SystemExit) as exit_info:
        call_command("grade", str(path), "--assignment", "cifar10-separable")

    out = capsys.readouterr().out
    assert exit_info.value.code == 1
    assert_no_control_characters(out)
    assert out.splitlines()[-3:-1] == [
        f"{tmp_path}/evil\\x0aname.json: FAILED",
        "  reason: invalid_submission",
    ]
    assert out.splitlines()[-1].startswith(f"  {REFUSED_NAME}")


@pytest.mark.bwrap
@pytest.mark.django_db
def test_grade_batch_prints_names_escaped_and_keeps_its_csv_spreadsheet_safe(
    bwrap_available, grading_settings, tmp_path, capsys
):
    folder = tmp_path / "submissions"
    folder.mkdir()
    evil_model(folder, "evil\x1b[2J\nname.json")
    triggers = ["=", "+", "-", "@", "\t", "\r"]
    for trigger in triggers:
        evil_model(folder, f"{trigger}1+1.json")
    out_file = tmp_path / "results.csv"

    with pytest.raises(SystemExit):
        call_command("grade_batch", str(folder), "--assignment", "cifar10-separable")
    printed = capsys.readouterr()
    with pytest.raises(SystemExit):
        call_command(
            "grade_batch", str(folder), "--assignment", "cifar10-separable", "--out", str(out_file)
        )

    assert_no_control_characters(printed.out)
    assert_no_control_characters(printed.err)
    assert "] evil\\x1b[2J\\x0aname.json: failed (invalid_submission)" in printed.err
    shown = {row["file"] for row in csv.DictReader(io.StringIO(printed.out))}
    with open(out_file, newline="", encoding="utf-8") as stream:  # a `\r` in a cell stays
        written = {row["file"] for row in csv.DictReader(stream)}
    # On the terminal: escaped (a carriage return shown as `\x0d` starts no formula), then
    # never a formula. In the file: the exact name, never a formula. A tab stays a tab in both
    # (it cannot move the cursor up or clear anything).
    assert shown == {"evil\\x1b[2J\\x0aname.json", "\\x0d1+1.json"} | {
        f"'{t}1+1.json" for t in ["=", "+", "-", "@", "\t"]
    }
    assert written == {"evil\x1b[2J\nname.json"} | {f"'{t}1+1.json" for t in triggers}
    rows = list(csv.DictReader(io.StringIO(printed.out)))
    assert all(row["message"].startswith(REFUSED_NAME) for row in rows)


@pytest.mark.parametrize("trigger", ["=", "+", "-", "@", "\t", "\r"])
def test_grade_batch_messages_starting_like_a_formula_stay_text(trigger):
    from workers.management.commands.grade_batch import write_csv
    from workers.pipeline.local import GradeReport

    message = f'{trigger}HYPERLINK("x") in layer `{EVIL_LAYER}`'
    reports = [GradeReport(file="m.json", status="failed", reason="rules", message=message)]
    exact, shown = io.StringIO(), io.StringIO()
    write_csv(reports, exact)
    write_csv(reports, shown, terminal=True)

    [exact_row] = csv.DictReader(io.StringIO(exact.getvalue()))
    [shown_row] = csv.DictReader(io.StringIO(shown.getvalue()))
    assert exact_row["message"] == "'" + message
    assert_no_control_characters(shown.getvalue())
    assert shown_row["message"].endswith(f"in layer `{SHOWN_LAYER}`")
    assert shown_row["message"][0] in {"'", "\\"}
