"""`grade` and `grade_batch`: the whole pipeline for files, locally, with real sandboxes.

Numbers are checked against independent truth: parameter counts against what Keras reported
when the fixtures were generated (`tests/fixtures/models/expected.json`), the rules each fixture
was designed to break against the verdicts, epochs against the preset's training config.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command

from grader.presets import load_preset, preset_text
from tests.workers.conftest import FIXTURE_MODELS, SMOKE_MODULE, make_assignment

ROOT = Path(__file__).resolve().parents[2]
EXPECTED = json.loads((FIXTURE_MODELS / "expected.json").read_text())


def run_grade(*args: str, env_dirs: dict[str, Path]) -> subprocess.CompletedProcess[str]:
    """`manage.py grade ...` as a user runs it, on an empty database (presets only)."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "GRADER_ENV_FILE": "",
        "DATABASE_URL": f"sqlite:///{env_dirs['tmp'] / 'empty.sqlite3'}",
        "GRADER_VAR_DIR": str(env_dirs["tmp"] / "var"),
        "GRADER_DATA_DIR": str(env_dirs["data"]),
        "GRADER_JOBS_DIR": str(env_dirs["tmp"] / "jobs"),
        "GRADER_SANDBOX": "bwrap",
    }
    return subprocess.run(
        [sys.executable, "manage.py", "grade", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=420,
        check=False,
    )


@pytest.fixture
def env_dirs(tmp_path, prepared_data_dir, bwrap_available) -> dict[str, Path]:
    return {"tmp": tmp_path, "data": prepared_data_dir}


@pytest.mark.tf
@pytest.mark.bwrap
@pytest.mark.timeout(600)
def test_grade_trains_a_json_model_and_reports_progress_per_epoch(env_dirs, tmp_path):
    defaults = load_preset("smoke").metadata["training"]

    completed = run_grade(
        str(FIXTURE_MODELS / "smoke_separable.json"), "--assignment", "smoke", env_dirs=env_dirs
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr
    out = completed.stdout
    for epoch in range(1, defaults["epochs"] + 1):
        assert f"epoch {epoch}/{defaults['epochs']}" in out
    assert "PASSED" in out
    assert f"parameters: {EXPECTED['smoke_separable']['params_total']:,}" in out
    assert not list((tmp_path / "jobs").iterdir())  # temporary job folders removed


@pytest.mark.tf
@pytest.mark.bwrap
@pytest.mark.timeout(600)
def test_grade_progress_counts_the_epochs_this_run_trains_not_the_assignment_maximum(
    env_dirs, tmp_path
):
    module = tmp_path / "student.py"
    module.write_text(SMOKE_MODULE)  # declares 3 epochs; the smoke preset allows 5

    completed = run_grade(str(module), "--assignment", "smoke", env_dirs=env_dirs)

    assert completed.returncode == 0, completed.stdout + completed.stderr
    lines = [line.strip() for line in completed.stdout.splitlines()]
    progress = [line.split("  ")[0] for line in lines if line.startswith("epoch ")]
    assert progress == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]


@pytest.mark.tf
@pytest.mark.bwrap
@pytest.mark.timeout(600)
def test_grade_json_output_of_a_python_module(env_dirs, tmp_path):
    module = tmp_path / "student.py"
    module.write_text(SMOKE_MODULE)

    completed = run_grade(
        str(module), "--assignment", "smoke", "--format", "json", env_dirs=env_dirs
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr
    report = json.loads(completed.stdout)
    assert set(report) >= {
        "status",
        "reason",
        "message",
        "checks",
        "training",
        "evaluation",
        "score",
    }
    assert (report["status"], report["reason"], report["score"]) == ("passed", None, 100.0)
    epochs = report["training"]["epochs"]
    assert [e["epoch"] for e in epochs] == [1, 2, 3]  # the module's own training_config()
    assert report["training"]["seconds"] > 0
    assert {r["id"]: r["passed"] for r in report["checks"]["rules"]}["min_val_accuracy"] is True
    evaluation = report["evaluation"]
    assert 0.0 <= evaluation["accuracy"] <= 1.0
    assert len(evaluation["per_class_accuracy"]) == load_preset("smoke").metadata["num_classes"]


@pytest.mark.bwrap
def test_grade_fails_a_model_breaking_its_rules_without_training(env_dirs):
    fixture = "breaks_dropout_025"

    completed = run_grade(
        str(FIXTURE_MODELS / f"{fixture}.json"),
        "--assignment",
        EXPECTED[fixture]["preset"],
        "--format",
        "json",
        env_dirs=env_dirs,
    )

    assert completed.returncode == 1, completed.stderr
    report = json.loads(completed.stdout)
    assert (report["status"], report["reason"]) == ("failed", "rules")
    failed = [r["id"] for r in report["checks"]["rules"] if r["passed"] is False]
    assert failed == EXPECTED[fixture]["breaks"]
    assert report["checks"]["params"]["total"] == EXPECTED[fixture]["params_total"]
    assert report["training"] is None and report["evaluation"] is None


def test_grade_with_an_unknown_slug_is_an_error(env_dirs):
    completed = run_grade(
        str(FIXTURE_MODELS / "smoke_separable.json"), "--assignment", "nope", env_dirs=env_dirs
    )

    assert completed.returncode == 2
    assert "No assignment or preset is named `nope`" in completed.stderr


@pytest.mark.bwrap
@pytest.mark.django_db
def test_a_database_assignment_takes_precedence_over_the_preset(env_dirs, grading_settings, capsys):
    strict = yaml.safe_load(preset_text("smoke"))
    for rule in strict["rules"]:
        if rule["id"] == "max_params":
            rule["limit"] = 1000
    make_assignment(slug="smoke", rules_yaml=yaml.safe_dump(strict))

    with pytest.raises(SystemExit) as exit_info:
        call_command(
            "grade",
            str(FIXTURE_MODELS / "smoke_separable.json"),
            "--assignment",
            "smoke",
            "--format",
            "json",
        )

    assert exit_info.value.code == 1
    report = json.loads(capsys.readouterr().out)
    [failed] = [r for r in report["checks"]["rules"] if r["passed"] is False]
    assert failed["id"] == "max_params"
    assert failed["measured"] == EXPECTED["smoke_separable"]["params_total"]


@pytest.mark.bwrap
@pytest.mark.django_db
def test_grade_batch_writes_one_csv_row_per_file(env_dirs, tmp_path, grading_settings):
    folder = tmp_path / "submissions"
    folder.mkdir()
    fixtures = ["breaks_dropout_025", "breaks_plain_conv3x3"]
    for name in fixtures:
        (folder / f"{name}.json").write_bytes((FIXTURE_MODELS / f"{name}.json").read_bytes())
    (folder / "notes.txt").write_text("not a submission")
    out = tmp_path / "results.csv"

    with pytest.raises(SystemExit) as exit_info:
        call_command(
            "grade_batch", str(folder), "--assignment", "cifar10-separable", "--out", str(out)
        )

    assert exit_info.value.code == 1
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [row["file"] for row in rows] == [f"{name}.json" for name in fixtures]
    for row, name in zip(rows, fixtures, strict=True):
        assert (row["status"], row["reason"]) == ("failed", "rules")
        assert int(row["params_total"]) == EXPECTED[name]["params_total"]
        assert row["epochs"] == "" and row["test_accuracy"] == ""


@pytest.mark.tf
@pytest.mark.bwrap
@pytest.mark.django_db
@pytest.mark.timeout(600)
def test_an_evaluate_only_assignment_scores_the_uploaded_keras_like_keras_does(
    env_dirs, grading_settings, capsys
):
    document = yaml.safe_load(preset_text("smoke"))
    document["rules"] = [
        r for r in document["rules"] if r["id"] not in {"max_epochs", "min_val_accuracy"}
    ]
    make_assignment(slug="evaluate-smoke", mode="evaluate", rules_yaml=yaml.safe_dump(document))
    archive = FIXTURE_MODELS / "smoke_separable.keras"

    call_command("grade", str(archive), "--assignment", "evaluate-smoke", "--format", "json")

    report = json.loads(capsys.readouterr().out)
    assert (report["status"], report["training"]) == ("passed", None)
    evaluation = report["evaluation"]

    # Independent truth: Keras itself, in this process, on the same test split.
    import keras
    import numpy as np

    from grader.datasets import load_split, prepare_dataset

    dataset = prepare_dataset(
        "synthetic", grading_settings.GRADER_DATA_DIR, key=grading_settings.GRADER_DATASET_KEY
    )
    x, y = load_split(dataset.test_dir, mmap=False)
    model = keras.saving.load_model(archive, safe_mode=True, compile=False)
    predicted = np.argmax(model.predict(x.astype("float32") / 255.0, verbose=0), axis=1)
    confusion = np.zeros((dataset.num_classes, dataset.num_classes), dtype=int)
    np.add.at(confusion, (y, predicted), 1)
    assert evaluation["num_examples"] == len(y)
    assert evaluation["accuracy"] == pytest.approx(float(np.mean(predicted == y)), abs=1e-9)
    assert evaluation["confusion_matrix"] == confusion.tolist()


def test_grade_batch_csv_never_hands_a_spreadsheet_a_formula():
    from workers.management.commands.grade_batch import write_csv
    from workers.pipeline.local import GradeReport

    reports = [
        GradeReport(
            file='/in/=HYPERLINK("x").py',
            status="error",
            reason="build_error",
            message="@SUM(A1:A9) raised",
        ),
        GradeReport(file="/in/ok.json", status="passed", message="-fine", score=-1.5),
    ]
    stream = io.StringIO()
    write_csv(reports, stream)

    rows = list(csv.DictReader(io.StringIO(stream.getvalue())))
    assert rows[0]["file"] == '\'=HYPERLINK("x").py'
    assert rows[0]["message"] == "'@SUM(A1:A9) raised"
    assert (rows[1]["file"], rows[1]["message"], rows[1]["score"]) == ("ok.json", "'-fine", "-1.5")


def test_grade_text_lists_the_differences_of_a_refused_built_network():
    from workers.management.commands.grade import format_report

    text = format_report(
        {
            "file": "alias.json",
            "status": "failed",
            "reason": "invalid_submission",
            "message": "Your model could not be graded: ...",
            "checks": {
                "built_model": {
                    "matches": False,
                    "stage": "train",
                    "differences": ["Layer `c2` (Conv2D): built by Keras with 148 parameters."],
                },
            },
        }
    )

    assert "  built network: Layer `c2` (Conv2D): built by Keras with 148 parameters." in text
