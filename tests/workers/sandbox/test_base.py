"""The shared rules of all backends: limits, jobs, verdicts and output capture."""

from __future__ import annotations

import signal
import threading

import pytest

from workers.sandbox import Limits, Mount, SandboxJob
from workers.sandbox.base import (
    OutputCapture,
    classify_reason,
    infrastructure_result,
    signal_from_exit_code,
)

LIMITS = Limits(wall_seconds=5, memory_bytes=256 * 2**20, cpu_seconds=2, output_bytes=1000)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"exit_code": 0}, None),
        ({"exit_code": 3}, "crashed"),
        ({"exit_code": 139, "signal": 11}, "crashed"),
        ({"exit_code": 137, "signal": 9, "oom_killed": True}, "out_of_memory"),
        ({"exit_code": 0, "oom_killed": True}, None),  # a child was killed, the job recovered
        ({"exit_code": 137, "signal": 9, "timed_out": True}, "timeout"),
        ({"exit_code": 137, "signal": 9, "timed_out": True, "oom_killed": True}, "timeout"),
        ({"exit_code": 152, "signal": int(signal.SIGXCPU)}, "timeout"),
        ({"exit_code": 137, "signal": 9, "output_truncated": True}, "output_limit"),
        ({"exit_code": 0, "output_truncated": True}, "output_limit"),
        ({"exit_code": None}, "infrastructure"),
    ],
)
def test_classify_reason(kwargs, expected):
    arguments = {
        "exit_code": 0,
        "signal": None,
        "timed_out": False,
        "oom_killed": False,
        "output_truncated": False,
        **kwargs,
    }
    reason, detail = classify_reason(**arguments, limits=LIMITS)
    assert reason == expected
    assert bool(detail) == (expected is not None)


def test_verdicts_name_the_limit_that_was_hit():
    _, timeout = classify_reason(
        exit_code=137,
        signal=9,
        timed_out=True,
        oom_killed=False,
        output_truncated=False,
        limits=LIMITS,
    )
    assert "5 s" in timeout
    _, memory = classify_reason(
        exit_code=137,
        signal=9,
        timed_out=False,
        oom_killed=True,
        output_truncated=False,
        limits=LIMITS,
    )
    assert "268,435,456 bytes" in memory
    _, crash = classify_reason(
        exit_code=139,
        signal=11,
        timed_out=False,
        oom_killed=False,
        output_truncated=False,
        limits=LIMITS,
    )
    assert "SIGSEGV" in crash


@pytest.mark.parametrize(
    ("exit_code", "expected"),
    [(0, None), (1, None), (128, None), (137, 9), (139, 11), (-9, 9), (None, None), (255, None)],
)
def test_signal_from_exit_code(exit_code, expected):
    assert signal_from_exit_code(exit_code) == expected


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("wall_seconds", 0),
        ("memory_bytes", -1),
        ("pids", 0),
        ("output_bytes", 0),
        ("cpu_seconds", 0),
        ("cpus", 0.0),
        ("scratch_bytes", 0),
    ],
)
def test_limits_reject_non_positive_values(field, value):
    with pytest.raises(ValueError, match=f"Limits.{field} is"):
        Limits(**{field: value})


def test_job_rejects_mounting_a_target_twice_and_the_scratch():
    with pytest.raises(ValueError, match="more than once"):
        SandboxJob(argv=["true"], mounts=[Mount("/a", "/job/in"), Mount("/b", "/job/in/")])
    with pytest.raises(ValueError, match="/scratch"):
        SandboxJob(argv=["true"], mounts=[Mount("/a", "/scratch")])
    with pytest.raises(ValueError, match="argv is empty"):
        SandboxJob(argv=[])
    with pytest.raises(ValueError, match="relative"):
        Mount("/a", "job/in")


def test_job_environment_is_only_what_the_job_passes_plus_home():
    job = SandboxJob(argv=["true"], env={"A": "1", "HOME": "/job/work"})
    assert job.full_env() == {"A": "1", "HOME": "/job/work", "TMPDIR": "/scratch"}


def test_capture_splits_lines_across_chunks_and_keeps_partial_last_line():
    lines: list[str] = []
    capture = OutputCapture(10_000, on_line=lines.append)
    capture.feed("stdout", b'GRADER-PROGRESS {"ep')
    capture.feed("stdout", b'och": 1}\nsecond\r\nthi')
    capture.feed("stderr", b"warnings are not lines\n")
    assert lines == ['GRADER-PROGRESS {"epoch": 1}', "second"]
    stdout, stderr = capture.finish()
    assert lines[-1] == "thi"
    assert stdout == 'GRADER-PROGRESS {"epoch": 1}\nsecond\r\nthi'
    assert stderr == "warnings are not lines\n"


def test_capture_stops_at_the_shared_budget_and_fires_overflow_once():
    fired = threading.Event()
    calls = []
    capture = OutputCapture(10, on_overflow=lambda: (calls.append(1), fired.set()))
    assert capture.feed("stdout", b"12345")
    assert not capture.feed("stderr", b"6789abcdef")
    assert not capture.feed("stdout", b"more")
    assert capture.truncated and fired.is_set() and calls == [1]
    stdout, stderr = capture.finish()
    assert (stdout, stderr) == ("12345", "6789a")


def test_capture_survives_a_failing_line_callback():
    def broken(line: str) -> None:
        raise RuntimeError("database down")

    capture = OutputCapture(100, on_line=broken)
    assert capture.feed("stdout", b"a\nb\n")
    assert capture.finish()[0] == "a\nb\n"


def test_infrastructure_result_is_not_ok():
    result = infrastructure_result("engine gone")
    assert result.reason == "infrastructure" and not result.ok and result.exit_code is None
