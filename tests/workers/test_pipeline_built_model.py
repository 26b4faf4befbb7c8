"""The host's built-network check (`workers.pipeline.built_model`) on scripted job output.

A scripted sandbox replays protocol lines to the gate as a running job would, and stops at once
when the gate sets its cancel event (as the real backends kill the job): what happens before the
first epoch, to later (forged) reports, and to the epochs of a network that differs. Real
sandboxes and the real runner: tests/workers/test_e2e_built_model.py and tests/hostile.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from grader.build_check import BuiltLayer, BuiltModelReport
from workers.pipeline.built_model import (
    CHECKS_KEY,
    BuiltModelGate,
    BuiltModelMismatch,
    run_checked_job,
)
from workers.pipeline.errors import InfrastructureError, StageAborted, StageFailed
from workers.pipeline.jobs import StageResources, job_dirs
from workers.sandbox.base import SandboxResult, cancelled_result

RESOURCES = StageResources(wall_seconds=120, memory_mb=2048)
CONV = BuiltLayer("conv", "Conv2D", calls=1, params=448, trainable_params=448, trainable=True)
DENSE = BuiltLayer("dense", "Dense", calls=1, params=170, trainable_params=170, trainable=True)
REPORT = BuiltModelReport((CONV, DENSE), 618, 618, 0)
ANALYSIS = {
    "layers": [
        {
            "name": layer.name,
            "class_name": layer.class_name,
            "params": layer.params,
            "trainable_params": layer.trainable_params,
            "calls": layer.calls,
            "trainable": True,
        }
        for layer in REPORT.layers
    ],
    "params": {"total": 618, "trainable": 618, "non_trainable": 0},
}
ALIAS = BuiltLayer("c2", "Conv2D", calls=1, params=148, trainable_params=148, trainable=True)
OTHER_NETWORK = BuiltModelReport((CONV, ALIAS, DENSE), 766, 766, 0)


def report_line(report: BuiltModelReport | dict[str, Any]) -> str:
    data = report.to_dict() if isinstance(report, BuiltModelReport) else report
    return "GRADER-PROGRESS " + json.dumps({"built_model": data})


def epoch_line(epoch: int) -> str:
    return "GRADER-PROGRESS " + json.dumps({"epoch": epoch, "loss": 1.0 / epoch})


class ScriptedSandbox:
    """Feeds `lines` to `on_line`; stops like a killed job once `cancel` is set.

    `after_stop` counts the lines the job could still print while being killed: they are fed
    too, as a real job's pipe still holds them.
    """

    name = "scripted"

    def __init__(self, lines: list[str], payload: dict[str, Any], *, after_stop: int = 1):
        self.lines = lines
        self.payload = payload
        self.after_stop = after_stop
        self.fed = 0
        self.out: Path | None = None

    def run(self, job: Any, on_line: Any = None, cancel: threading.Event | None = None):
        stdout, grace = [], self.after_stop
        for line in self.lines:
            if cancel is not None and cancel.is_set():
                if grace == 0:
                    return cancelled_result()
                grace -= 1
            on_line(line)
            stdout.append(line)
            self.fed += 1
        if cancel is not None and cancel.is_set():
            return cancelled_result()
        assert self.out is not None
        (self.out / "result.json").write_text(json.dumps(self.payload))
        return SandboxResult(0, None, False, False, False, "\n".join(stdout), "", 1.0, None)


def run(tmp_path: Path, sandbox: ScriptedSandbox, *, stage="train", analysis=None, cancel=None):
    dirs = job_dirs(root=tmp_path / "jobs", key="1/g1", stage=stage)
    sandbox.out = dirs.out
    epochs: list[dict[str, Any]] = []
    payload, _ = run_checked_job(
        stage=stage,
        sandbox=sandbox,
        job=object(),
        dirs=dirs,
        resources=RESOURCES,
        analysis=ANALYSIS if analysis is None else analysis,
        on_epoch=epochs.append,
        cancel=cancel,
    )
    return payload, epochs


OK = {"ok": True, "epochs": [], "weights": "weights.npz"}


def test_a_matching_report_lets_every_epoch_through(tmp_path):
    sandbox = ScriptedSandbox([report_line(REPORT), epoch_line(1), epoch_line(2)], OK)

    payload, epochs = run(tmp_path, sandbox)

    assert payload["ok"] is True
    assert [e["epoch"] for e in epochs] == [1, 2]


def test_a_different_network_stops_the_job_before_its_first_epoch(tmp_path):
    lines = [report_line(OTHER_NETWORK), *(epoch_line(n) for n in range(1, 6))]
    sandbox = ScriptedSandbox(lines, OK, after_stop=2)
    epochs: list[dict[str, Any]] = []

    with pytest.raises(BuiltModelMismatch) as refused:
        dirs = job_dirs(root=tmp_path / "jobs", key="1/g1", stage="train")
        sandbox.out = dirs.out
        run_checked_job(
            stage="train",
            sandbox=sandbox,
            job=object(),
            dirs=dirs,
            resources=RESOURCES,
            analysis=ANALYSIS,
            on_epoch=epochs.append,
        )

    assert sandbox.fed == 3  # killed: the report and the two lines already in the pipe
    assert epochs == []  # nothing the different network printed reached the grading
    failure = refused.value
    assert isinstance(failure, StageFailed) and failure.reason == "invalid_submission"
    assert failure.message.startswith(
        "Your model could not be graded: the network Keras builds from it differs from the one "
        "the grader analysed (layer `c2`)."
    )
    assert "absent from the analysis" not in failure.message  # the details are not the student's
    details = failure.details[CHECKS_KEY]
    assert details["matches"] is False and details["stage"] == "train"
    assert details["differences"][0] == (
        "Layer `c2` (Conv2D): built by Keras with 148 parameters (1 call), absent from the "
        "analysis."
    )


def test_a_job_that_finished_before_the_kill_is_still_refused(tmp_path):
    sandbox = ScriptedSandbox([report_line(OTHER_NETWORK)], {"ok": True, "accuracy": 0.9})

    with pytest.raises(BuiltModelMismatch):
        run(tmp_path, sandbox, stage="evaluate")


def test_only_the_first_report_counts(tmp_path):
    # Student code imported after the genuine report prints one that would match: ignored.
    gate = BuiltModelGate(analysis=ANALYSIS)
    gate.on_line(report_line(OTHER_NETWORK))
    gate.on_line(report_line(REPORT))
    assert gate.state == "different" and gate.stop.is_set()

    # ... and one that would not match, after a genuine match: ignored too.
    epochs: list[dict[str, Any]] = []
    gate = BuiltModelGate(analysis=ANALYSIS, on_epoch=epochs.append)
    for line in (report_line(REPORT), report_line(OTHER_NETWORK), epoch_line(1)):
        gate.on_line(line)
    assert gate.state == "matched" and not gate.stop.is_set()
    assert [e["epoch"] for e in epochs] == [1]


def test_an_epoch_before_any_report_is_an_infrastructure_error_not_a_verdict(tmp_path):
    sandbox = ScriptedSandbox([epoch_line(1), report_line(REPORT), epoch_line(2)], OK)

    with pytest.raises(InfrastructureError) as error:
        run(tmp_path, sandbox)

    assert error.value.retry is False
    assert "sandbox image" in error.value.message
    assert sandbox.fed <= 2  # stopped at the first epoch


def test_a_successful_job_that_never_reported_is_an_infrastructure_error(tmp_path):
    with pytest.raises(InfrastructureError) as error:
        run(tmp_path, ScriptedSandbox(["Epoch 1/5 - chatter"], OK))
    assert error.value.retry is False
    assert "without reporting the built network" in error.value.message


def test_a_malformed_report_is_an_infrastructure_error(tmp_path):
    with pytest.raises(InfrastructureError, match="malformed"):
        run(tmp_path, ScriptedSandbox([report_line({"layers": "?"}), epoch_line(1)], OK))


def test_a_verdict_reached_before_the_report_stands(tmp_path):
    refused = {"ok": False, "error": {"kind": "invalid_model", "message": "Keras cannot build"}}

    with pytest.raises(StageFailed) as failure:
        run(tmp_path, ScriptedSandbox([], refused))

    assert not isinstance(failure.value, BuiltModelMismatch)
    assert failure.value.reason == "invalid_submission"
    assert failure.value.message == "Keras cannot build"


def test_a_cancelled_stage_is_aborted_whatever_was_reported(tmp_path):
    cancel = threading.Event()
    cancel.set()

    with pytest.raises(StageAborted):
        run(tmp_path, ScriptedSandbox([report_line(OTHER_NETWORK)], OK), cancel=cancel)


@pytest.mark.parametrize("analysis", [{}, {"layers": None}, {"params": {}}])
def test_without_a_stored_analysis_no_job_runs(tmp_path, analysis):
    sandbox = ScriptedSandbox([report_line(REPORT)], OK)

    with pytest.raises(InfrastructureError, match="no stored analysis"):
        run(tmp_path, sandbox, analysis=analysis)
    assert sandbox.fed == 0


def test_noise_and_forged_protocol_lines_do_not_break_the_reader():
    epochs: list[dict[str, Any]] = []
    gate = BuiltModelGate(analysis=ANALYSIS, on_epoch=epochs.append)
    for line in (
        "Epoch 1/5 - a line Keras or the student printed",
        "GRADER-PROGRESS {not json",
        report_line(REPORT),
        'GRADER-PROGRESS {"epoch": 1, "loss": NaN}',
        'GRADER-PROGRESS {"epoch": ' + "9" * 5000 + "}",
        "GRADER-PROGRESS " + "[" * 200_000,
        'GRADER-PROGRESS {"epoch": "two"}',
        'GRADER-PROGRESS {"epoch": 2, "loss": 0.25, "val_accuracy": 0.75}',
    ):
        gate.on_line(line)

    assert gate.state == "matched"
    assert [e["epoch"] for e in epochs] == [2]
    assert epochs[0]["val_accuracy"] == 0.75


def test_students_never_get_the_built_model_details():
    from assignments.presentation import INSTRUCTOR_ONLY_CHECKS, visible_checks

    checks = {"params": {"total": 1}, CHECKS_KEY: {"differences": ["Layer `c2` ..."]}}
    assert CHECKS_KEY in INSTRUCTOR_ONLY_CHECKS
    assert visible_checks(checks, teaches=False) == {"params": {"total": 1}}
    assert visible_checks(checks, teaches=True) == checks
