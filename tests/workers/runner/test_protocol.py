"""The runner's protocol helpers: spec reading, atomic capped results, sanitized tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from workers.runner.protocol import (
    MAX_RESULT_BYTES,
    JobPaths,
    ProgressChannel,
    RunnerError,
    failure,
    read_spec,
    student_traceback,
    write_result,
)
from workers.runner.submission import import_submission


def _job(tmp_path: Path, spec: object) -> JobPaths:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "spec.json").write_text(json.dumps(spec))
    return JobPaths(tmp_path)


def test_reads_a_spec_for_its_stage(tmp_path: Path) -> None:
    spec = {"stage": "train", "model_config": "model.json"}
    assert read_spec(_job(tmp_path, spec), "train") == spec


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"stage": "build"}, "lacks submission, input_shape, num_classes for stage 'build'"),
        ({"stage": "evaluate"}, "lacks model_config, weights for stage 'evaluate'"),
        ({"stage": "evaluate", "keras_file": "a.keras"}, "lacks model_config, weights"),
        ({"stage": "unpack"}, "lacks keras_file for stage 'unpack'"),
        (["stage", "train"], "is for stage 'list'"),
    ],
)
def test_refuses_malformed_specs(tmp_path: Path, spec: object, message: str) -> None:
    stage = spec["stage"] if isinstance(spec, dict) else "train"
    with pytest.raises(RunnerError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_spec(_job(tmp_path, spec), stage)


def test_input_files_cannot_escape_the_input_directory(tmp_path: Path) -> None:
    job = _job(tmp_path, {"stage": "build"})
    assert job.input_file("submission.py") == (tmp_path / "in" / "submission.py").resolve()
    with pytest.raises(RunnerError, match="outside"):
        job.input_file("../work/state.json")


def test_results_are_written_whole_and_capped(tmp_path: Path) -> None:
    job = JobPaths(tmp_path)
    path = write_result(job, {"ok": True, "accuracy": 0.5})
    assert json.loads(path.read_text()) == {"ok": True, "accuracy": 0.5}
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["result.json"]
    write_result(job, {"ok": True, "blob": "x" * MAX_RESULT_BYTES})
    result = json.loads(path.read_text())
    assert result["ok"] is False and result["error"]["kind"] == "result_too_large"
    assert path.stat().st_size < 1000


def test_results_refuse_nan(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_result(JobPaths(tmp_path), {"ok": True, "loss": float("nan")})


def test_failure_messages_are_bounded() -> None:
    message = failure("build_failed", "x" * 10_000)["error"]["message"]
    assert len(message) == 4000 and message.endswith("... (truncated)")


def test_progress_lines_are_one_json_object_each(tmp_path: Path) -> None:
    path = tmp_path / "stream"
    with path.open("w") as stream:
        ProgressChannel(stream)({"epoch": 1, "loss": 0.5})
    assert path.read_text() == 'GRADER-PROGRESS {"epoch": 1, "loss": 0.5}\n'


def test_traceback_keeps_only_the_students_frames(tmp_path: Path) -> None:
    submission = tmp_path / "in" / "submission.py"
    submission.parent.mkdir()
    submission.write_text("import json\n\ndef broken():\n    return json.loads('{oops')\n")
    module = import_submission(submission)
    try:
        module.broken()
    except ValueError as exc:
        text = student_traceback(exc, exc.__traceback__, submission)
    assert text.splitlines()[:3] == [
        "Traceback (most recent call last):",
        '  File "submission.py", line 4, in broken',
        "    return json.loads('{oops')",
    ]
    assert "json/decoder.py" not in text and "JSONDecodeError" in text
    assert str(tmp_path) not in text


def test_a_syntax_error_names_the_line_without_host_paths(tmp_path: Path) -> None:
    from workers.runner.protocol import SubmissionFailure

    submission = tmp_path / "submission.py"
    submission.write_text("def build_model(:\n    pass\n")
    with pytest.raises(SubmissionFailure) as info:
        import_submission(submission)
    assert info.value.error_code == "build_failed"
    assert 'File "submission.py", line 1' in info.value.message
    assert "SyntaxError" in info.value.message and str(tmp_path) not in info.value.message


def test_the_runner_never_imports_django() -> None:
    code = (
        "import sys, workers.runner.__main__, workers.runner.build, workers.runner.train, "
        "workers.runner.evaluate; print(any(m.split('.')[0] == 'django' for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_runner_leaves_without_teardown_but_loses_no_output(tmp_path: Path) -> None:
    """`leave` skips the interpreter's teardown (seconds with TensorFlow loaded): what the job
    printed, on both streams and on the protocol channel, is still delivered, with the status;
    an exit handler (teardown) never runs."""
    script = (
        "import atexit, sys\n"
        "from workers.runner.__main__ import leave\n"
        "from workers.runner.protocol import claim_stdout\n"
        "progress = claim_stdout()\n"
        "progress({'epoch': 1})\n"
        "print('to stderr, buffered', end='')\n"
        "sys.stderr.write(' and unflushed')\n"
        "atexit.register(lambda: open(sys.argv[1], 'w').write('teardown ran'))\n"
        "leave(3)\n"
    )
    marker = tmp_path / "teardown"
    done = subprocess.run(
        [sys.executable, "-c", script, str(marker)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[3],
        timeout=60,
    )
    assert done.returncode == 3
    assert done.stdout == 'GRADER-PROGRESS {"epoch": 1}\n'
    assert done.stderr.endswith("to stderr, buffered and unflushed")
    assert not marker.exists()
