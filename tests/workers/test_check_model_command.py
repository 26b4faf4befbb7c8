"""``manage.py check_model``: output formats, rule-set sources and exit statuses.

Exit status: 2 if any file could not be analysed, 1 if any rule failed, 0 otherwise. Checked both
through `call_command` and as a real subprocess.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from grader.presets import preset_text
from tests.support.fixture_models import expected, model_path

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = str(model_path("cifar10_separable_reference"))
DROPOUT = str(model_path("breaks_dropout_025"))
LAMBDA = str(model_path("breaks_lambda"))
SMOKE_PY = str(model_path("smoke_submission", ".py"))


def _run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("check_model", *args, stdout=out, stderr=err)
    except SystemExit as exc:
        return int(exc.code), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.mark.django_db
def test_json_one_object_per_path_and_exit_1_when_a_rule_fails():
    code, out, _ = _run(REFERENCE, DROPOUT, "--assignment", "cifar10-separable", "--format", "json")
    reports = _json_lines(out)
    assert code == 1
    assert [r["file"] for r in reports] == [REFERENCE, DROPOUT]
    assert reports[0]["passed"] is None
    assert reports[1]["passed"] is False
    assert (
        reports[0]["params"]["total"] == expected()["cifar10_separable_reference"]["params_total"]
    )


@pytest.mark.django_db
def test_exit_0_when_nothing_failed_and_text_format():
    code, out, _ = _run(REFERENCE, "--assignment", "cifar10-separable")
    assert code == 0
    total = expected()["cifar10_separable_reference"]["params_total"]
    assert f"Total params: {total:,}" in out
    assert "[PASS] max_params" in out


@pytest.mark.django_db
def test_exit_2_when_a_file_cannot_be_analysed_even_if_another_failed_a_rule():
    code, out, _ = _run(DROPOUT, LAMBDA, "--assignment", "cifar10-separable", "--format", "json")
    reports = _json_lines(out)
    assert code == 2
    assert reports[1] == {"file": LAMBDA, "error": reports[1]["error"]}
    assert reports[1]["error"]["kind"] == "unsafe_layer"


@pytest.mark.django_db
def test_database_assignment_rules_take_precedence_over_the_preset():
    from assignments.models import Assignment, Course

    course = Course.objects.create(slug="dl", title="Deep learning")
    Assignment.objects.create(
        course=course,
        slug="cifar10-separable",
        title="Stricter copy",
        dataset="cifar10",  # the reference model must fit the assignment's dataset
        rules_yaml="rules:\n  - id: max_params\n    limit: 50000\n",
    )
    code, out, _ = _run(REFERENCE, "--assignment", "cifar10-separable", "--format", "json")
    [report] = _json_lines(out)
    assert code == 1
    # The assignment trains, so the rule in force without being listed comes last.
    assert [r["id"] for r in report["rules"]] == ["max_params", "all_layers_trainable"]
    assert report["rules"][0]["limit"] == 50000


@pytest.mark.django_db
def test_unknown_assignment_and_preset_is_a_command_error():
    with pytest.raises(CommandError, match="There is no assignment or preset `nope`"):
        call_command("check_model", REFERENCE, "--assignment", "nope")


def test_rules_file_and_invalid_rules_file(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - id: max_dropout\n    limit: 0.3\n")
    code, out, _ = _run(DROPOUT, "--rules", str(rules), "--format", "json")
    [report] = _json_lines(out)
    assert code == 0 and report["passed"] is True
    rules.write_text("rules:\n  - id: max_dropout\n    limit: high\n")
    with pytest.raises(CommandError, match=r"rules\[0\] \(`max_dropout`\) has `limit` = 'high'"):
        call_command("check_model", DROPOUT, "--rules", str(rules))


def test_without_rules_reports_only_the_analysis():
    code, out, _ = _run(REFERENCE, "--format", "json", "--end-point", "re_lu_3")
    [report] = _json_lines(out)
    assert code == 0
    assert report["rules"] == [] and report["passed"] is True
    assert report["receptive_field"]["end_point"] == "re_lu_3"


def test_python_file_without_input_shape_cannot_be_built():
    code, out, _ = _run(SMOKE_PY, "--format", "json")
    [report] = _json_lines(out)
    assert code == 2
    assert report["error"]["kind"] == "build_input_missing"


def test_python_file_when_the_sandboxed_build_is_not_installed(monkeypatch):
    # The fallback for installations without workers.pipeline: an import that fails.
    monkeypatch.setitem(sys.modules, "workers.pipeline.build", None)
    code, out, _ = _run(
        SMOKE_PY, "--input-shape", "16,16,3", "--num-classes", "4", "--format", "json"
    )
    [report] = _json_lines(out)
    assert code == 2
    assert report["error"]["kind"] == "build_unavailable"


@pytest.mark.bwrap
@pytest.mark.tf
@pytest.mark.django_db
def test_python_file_is_built_in_the_sandbox_for_the_assignments_dataset(bwrap_available, settings):
    from assignments.models import Assignment, Course

    # The stored rule set names no input shape: the build takes it from the dataset.
    course = Course.objects.create(slug="dl", title="Deep learning")
    Assignment.objects.create(
        course=course,
        slug="synthetic-quick",
        title="Quick",
        dataset="synthetic",
        rules_yaml="rules:\n  - id: separable_conv_used\n",
    )
    # The default jobs directory (under var/): a sandbox hides anything under /tmp.
    settings.GRADER_SANDBOX = "bwrap"
    code, out, err = _run(SMOKE_PY, "--assignment", "synthetic-quick", "--format", "json")
    [report] = _json_lines(out)
    assert "error" not in report, report
    assert code == 0, err
    assert report["model"]["name"] == "smoke_submission"
    # grader.datasets: synthetic images are 16x16x3 in 4 classes.
    assert report["model"]["input_shape"] == [16, 16, 3]
    assert report["model"]["output_shape"] == [4]
    assert report["passed"] is True


def _preset_file(tmp_path: Path, slug: str) -> str:
    path = tmp_path / f"{slug}.yaml"
    path.write_text(preset_text(slug))
    return str(path)


# --- as a subprocess: the exit status the shell sees ---------------------------------------


def _manage(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GRADER_VAR_DIR": str(tmp_path / "var"), "GRADER_ENV_FILE": ""}
    return subprocess.run(
        [sys.executable, "manage.py", "check_model", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("fmt", ["json", "text"])
@pytest.mark.parametrize(
    ("paths", "status"),
    [([REFERENCE], 0), ([REFERENCE, DROPOUT], 1), ([DROPOUT, LAMBDA], 2)],
)
def test_subprocess_exit_status(tmp_path, fmt, paths, status):
    rules = _preset_file(tmp_path, "cifar10-separable")
    result = _manage(*paths, "--rules", rules, "--format", fmt, tmp_path=tmp_path)
    assert result.returncode == status, result.stderr
    if fmt == "json":
        reports = _json_lines(result.stdout)
        assert [r["file"] for r in reports] == paths
    else:
        assert result.stdout.count("== ") == len(paths)


def test_subprocess_assignment_without_database_falls_back_to_the_preset(tmp_path):
    result = _manage(DROPOUT, "--assignment", "cifar10-separable", tmp_path=tmp_path)
    assert result.returncode == 1
    assert "using the shipped preset `cifar10-separable`" in result.stderr
    assert "Layer `dropout` (Dropout) has rate 0.25. Expected at most 0.10." in result.stdout


@pytest.mark.django_db
def test_a_model_that_does_not_fit_the_assignment_dataset_is_reported_before_its_rules():
    # The smoke model (16x16x3 -> 4 classes) against the CIFAR-10 assignment.
    smoke = str(model_path("smoke_separable"))
    code, out, _ = _run(smoke, "--assignment", "cifar10-separable", "--format", "json")
    [report] = _json_lines(out)
    assert code == 2
    assert report["error"] == {
        "kind": "dataset_mismatch",
        "message": "Model input shape is (16, 16, 3). Expected (32, 32, 3), the images of "
        "dataset `cifar10`.",
    }
    code, _, _ = _run(smoke, "--assignment", "smoke")
    assert code == 0


@pytest.mark.django_db
def test_list_layers_prints_the_supported_layer_classes():
    from grader.layers import supported_classes

    code, out, _ = _run("--list-layers", "--format", "json")
    assert code == 0
    assert json.loads(out) == {"supported_layers": supported_classes()}
    code, out, _ = _run("--list-layers")
    assert code == 0
    assert "  SeparableConv2D" in out.splitlines()
    assert "Lambda" not in out


@pytest.mark.django_db
def test_no_path_and_no_list_layers_is_a_usage_error():
    with pytest.raises(CommandError, match="Expected one or more PATH arguments"):
        call_command("check_model")
