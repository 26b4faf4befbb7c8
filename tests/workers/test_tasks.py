"""Celery tasks: routing, delivery options, nested limits, idempotency and the retry policy.

The tasks run for real in this process (`Task.apply`), on the real database, reading real model
files; sent messages are read back from the real Redis queue. Only the infrastructure failure is
staged, with a sandbox that reports one (a real sandbox cannot be made to fail on cue).
"""

from __future__ import annotations

import json

import pytest

from assignments.models import Assignment, Result, Submission
from assignments.services import grading
from grader.presets import preset_text
from tests.workers.conftest import (
    FIXTURE_MODELS,
    SMOKE_MODULE,
    make_assignment,
    make_submission,
    queued_tasks,
)
from workers import tasks
from workers.celery import app
from workers.sandbox.base import infrastructure_result

Status = Submission.Status

TASK_QUEUES = {
    "workers.build_submission": "preflight",
    "workers.check_submission": "preflight",
    "workers.finalize_submission": "preflight",
    "workers.train_submission": "gpu",
    "workers.evaluate_submission": "gpu",
    "workers.reap_stale_submissions": "maintenance",
}


def test_every_task_is_routed_to_a_declared_queue():
    declared = {queue.name for queue in app.conf.task_queues}
    registered = {name for name in app.tasks if name.startswith("workers.")}

    assert registered == set(TASK_QUEUES)
    for name, queue in TASK_QUEUES.items():
        route = app.amqp.router.route({}, name)
        assert route["queue"].name == queue, name
        assert queue in declared, name


def test_every_send_names_a_declared_queue():
    declared = {queue.name for queue in app.conf.task_queues}
    for stage, (name, queue) in grading.STAGE_TASK.items():
        assert TASK_QUEUES[name] == queue, stage
        assert queue in declared
    beat = app.conf.beat_schedule["reap-stale-submissions"]
    assert TASK_QUEUES[beat["task"]] == beat["options"]["queue"]


@pytest.mark.parametrize("name", [n for n in TASK_QUEUES if n != "workers.reap_stale_submissions"])
def test_stage_tasks_are_acknowledged_late_and_requeued_when_the_worker_dies(name):
    task = app.tasks[name]
    assert task.acks_late is True
    assert task.reject_on_worker_lost is True
    assert task.max_retries == tasks.MAX_RETRIES
    assert app.conf.worker_prefetch_multiplier == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "stage", [Status.BUILDING, Status.CHECKING, Status.TRAINING, Status.EVALUATING]
)
def test_limits_nest_sandbox_inside_soft_inside_hard(stage):
    assignment = make_assignment(time_limit_seconds=900)
    limits = grading.stage_limits(stage=stage, assignment=assignment)
    assert 0 < limits.sandbox_seconds < limits.soft_time_limit < limits.time_limit
    if stage == Status.TRAINING:
        assert limits.sandbox_seconds == 900


def test_backoff_grows_and_is_capped():
    delays = [tasks.backoff_seconds(n) for n in range(10)]
    assert delays == sorted(delays)
    assert delays[0] >= 1 and delays[-1] == tasks.BACKOFF_MAX_SECONDS


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_json_model_passing_statically_goes_through_build_and_check_to_training(
    redis_broker, student, grading_settings
):
    submission = make_submission(
        make_assignment(), student, source=FIXTURE_MODELS / "smoke_separable.json"
    )

    assert tasks.build_submission.apply(args=[submission.pk]).get() == "done"
    built_at = Submission.objects.get(pk=submission.pk).building_at
    # A duplicate build message never builds again: it wakes a preflight worker, which runs
    # the queue's next stage, this submission's check; the check's own message finds none.
    assert tasks.build_submission.apply(args=[submission.pk]).get() == "done"
    assert tasks.check_submission.apply(args=[submission.pk]).get() == "skipped"

    submission.refresh_from_db()
    assert submission.building_at == built_at
    assert (submission.status, submission.worker) == (Status.CHECKING, "")
    assert submission.training_config["epochs"] == 5  # the preset's default training
    result = Result.objects.get(submission=submission)
    assert result.passed is None  # training rules still pending
    assert result.params_total == result.checks["params"]["total"] > 0
    assert [name for name, _, _ in queued_tasks(redis_broker, "gpu")] == [
        "workers.train_submission"
    ]


class WorkerKilled(BaseException):
    """Stands for SIGKILL: the stage's run ends at once, nothing of it cleans up or reports."""


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_task_redelivered_after_its_run_was_killed_takes_the_stage_over_at_once(
    redis_broker, student, grading_settings, monkeypatch
):
    from grader.grading import static_check as check

    submission = make_submission(
        make_assignment(), student, source=FIXTURE_MODELS / "smoke_separable.json"
    )
    assert tasks.build_submission.apply(args=[submission.pk]).get() == "done"
    run_check = check.run_check

    def killed(**kwargs: object) -> None:
        raise WorkerKilled()

    monkeypatch.setattr(check, "run_check", killed)
    task_id = "4cfcbccc-9720-4d1e-8f00-123456789abc"
    with pytest.raises(WorkerKilled):
        tasks.check_submission.apply(args=[submission.pk], task_id=task_id)
    submission.refresh_from_db()
    killed_run = submission.worker
    assert submission.status == Status.CHECKING and "#4cfcbccc-972" in killed_run
    monkeypatch.setattr(check, "run_check", run_check)

    # A different task (a duplicate sent by the reaper, an old message) is still refused.
    assert tasks.check_submission.apply(args=[submission.pk], task_id="other-task").get() == (
        "skipped"
    )
    # The same task, redelivered (acks_late + reject_on_worker_lost), resumes the stage at once.
    assert tasks.check_submission.apply(args=[submission.pk], task_id=task_id).get() == "done"

    submission.refresh_from_db()
    assert (submission.status, submission.worker, submission.attempts) == (Status.CHECKING, "", 1)
    assert Result.objects.filter(submission=submission).count() == 1
    assert [name for name, _, _ in queued_tasks(redis_broker, "gpu")] == [
        "workers.train_submission"
    ]
    # Delivered once more after it finished, it finds the stage done: nothing runs twice.
    assert tasks.check_submission.apply(args=[submission.pk], task_id=task_id).get() == "skipped"
    assert len(queued_tasks(redis_broker, "gpu")) == 1


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_static_rule_failure_ends_at_check_naming_the_rule(
    redis_broker, student, grading_settings
):
    # The fixture's generator records which rules each model was designed to break.
    expected = json.loads((FIXTURE_MODELS / "expected.json").read_text())["breaks_dropout_025"]
    assignment = make_assignment(
        slug="separable",
        dataset="cifar10",
        rules_yaml=preset_text(expected["preset"]),
        max_epochs=50,
    )
    submission = make_submission(
        assignment, student, source=FIXTURE_MODELS / "breaks_dropout_025.json"
    )

    tasks.build_submission.apply(args=[submission.pk])
    assert tasks.check_submission.apply(args=[submission.pk]).get() == "failed"

    submission.refresh_from_db()
    assert (submission.status, submission.reason) == (Status.FAILED, "rules")
    failed = [r for r in submission.result.rules if r["passed"] is False]
    assert [r["id"] for r in failed] == expected["breaks"] == ["max_dropout"]
    assert failed[0]["message"] in submission.message
    assert "0.25" in submission.message
    assert submission.result.passed is False and submission.result.score < 100
    assert submission.training_at is None
    assert queued_tasks(redis_broker, "gpu") == []  # never reaches a GPU


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_an_unsafe_model_is_a_verdict_not_a_retry(redis_broker, student, grading_settings):
    submission = make_submission(
        make_assignment(), student, source=FIXTURE_MODELS / "breaks_lambda.json"
    )

    tasks.build_submission.apply(args=[submission.pk])  # reads JSON only: nothing runs
    outcome = tasks.check_submission.apply(args=[submission.pk])

    assert outcome.state == "SUCCESS" and outcome.get() == "failed"
    submission.refresh_from_db()
    assert (submission.status, submission.reason) == (Status.FAILED, "invalid_submission")
    assert "Lambda" in submission.message
    assert [name for name, _, _ in queued_tasks(redis_broker, "preflight")] == [
        "workers.check_submission"  # sent by the build; nothing re-sent by the check
    ]
    assert queued_tasks(redis_broker, "gpu") == []


def _hostile_smoke(edit: str) -> bytes:
    """The smoke reference model with one hostile edit, as raw JSON text."""
    config = json.loads((FIXTURE_MODELS / "smoke_separable.json").read_text())
    conv = config["config"]["layers"][1]["config"]
    if edit == "kernel":  # 10**9 x 10**9 x 3 depthwise: 3e18 weights, 1.2e19 with the rest
        conv["kernel_size"] = [10**9, 10**9]
        conv["padding"] = "same"
        config["config"]["layers"][2]["config"]["kernel_size"] = [10**9, 10**9]
    elif edit == "name":
        conv["name"] = "conv\x00"
    text = json.dumps(config)
    if edit == "nan":
        text = text.replace('"depth_multiplier": 1', '"depth_multiplier": 1, "rate": NaN', 1)
    return text.encode()


@pytest.mark.parametrize("edit", ["kernel", "name", "nan"])
@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_hostile_config_is_a_verdict_not_an_infrastructure_error(
    edit, redis_broker, student, grading_settings, tmp_path
):
    # Each once ended as error/infrastructure: a parameter count past PostgreSQL's bigint, a NUL
    # in the stored message, a NaN in the stored jsonb config.
    path = tmp_path / "model.json"
    path.write_bytes(_hostile_smoke(edit))
    submission = make_submission(make_assignment(), student, source=path)

    tasks.build_submission.apply(args=[submission.pk])
    tasks.check_submission.apply(args=[submission.pk])

    submission.refresh_from_db()
    assert (submission.status, submission.reason) == (Status.FAILED, "invalid_submission")
    assert "Expected" in submission.message, submission.message
    assert queued_tasks(redis_broker, "gpu") == []


FORGING_MODULE = """
import os


def build_model(input_shape, num_classes):
    # Write the build's result instead of the runner, and leave before the runner can.
    with open("/job/out/result.json", "w") as result:
        result.write(RESULT)
    os._exit(0)
"""


@pytest.mark.parametrize(
    ("result", "reason", "words"),
    [
        ('{"ok": true, "model_config": {"rate": NaN}}', "crashed", "NaN is not a JSON number"),
        (
            '{"ok": true, "model_config": {"name": "x\\u0000"}}',
            "invalid_submission",
            "text containing '\\x00'",
        ),
    ],
    ids=["nan", "nul"],
)
@pytest.mark.services
@pytest.mark.bwrap
@pytest.mark.django_db(transaction=True)
def test_a_build_result_forged_by_student_code_is_a_verdict_not_an_infrastructure_error(
    result, reason, words, redis_broker, student, grading_settings
):
    # Before: PostgreSQL refused the NaN or NUL when the build was stored, and the stage was
    # retried 5 times, then ended error/infrastructure.
    source = FORGING_MODULE.replace("RESULT", repr(result))
    submission = make_submission(make_assignment(), student, source=source)

    tasks.build_submission.apply(args=[submission.pk])

    submission.refresh_from_db()
    assert (submission.status, submission.reason) == (Status.FAILED, reason), submission.message
    assert words in submission.message
    assert queued_tasks(redis_broker, "preflight") == []


class InfrastructureFailingSandbox:
    """A sandbox whose engine is down: every job is an infrastructure result."""

    name = "down"

    def __init__(self) -> None:
        self.jobs = 0

    def run(self, job, on_line=None, cancel=None):
        self.jobs += 1
        return infrastructure_result("the engine is not answering")


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_an_infrastructure_failure_is_retried_then_ends_as_an_error(
    redis_broker, student, grading_settings, monkeypatch
):
    sandbox = InfrastructureFailingSandbox()
    monkeypatch.setattr("workers.pipeline.stages.open_sandbox", lambda: sandbox)
    submission = make_submission(make_assignment(), student, source=SMOKE_MODULE)

    # Run eagerly, Celery performs the retries in place.
    outcome = tasks.build_submission.apply(args=[submission.pk])

    # Every retry ran the stage again: each attempt handed the claimed stage back first.
    assert sandbox.jobs == tasks.MAX_RETRIES + 1
    assert outcome.state == "SUCCESS"
    submission.refresh_from_db()
    assert (submission.status, submission.reason) == (Status.ERROR, "infrastructure")
    assert "build stage kept failing" in submission.message
    assert submission.worker == ""


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_the_last_retry_gives_up_without_another_attempt(
    redis_broker, student, grading_settings, monkeypatch
):
    sandbox = InfrastructureFailingSandbox()
    monkeypatch.setattr("workers.pipeline.stages.open_sandbox", lambda: sandbox)
    submission = make_submission(make_assignment(), student, source=SMOKE_MODULE)

    tasks.build_submission.apply(args=[submission.pk], retries=tasks.MAX_RETRIES)

    assert sandbox.jobs == 1
    submission.refresh_from_db()
    assert (submission.status, submission.reason) == (Status.ERROR, "infrastructure")


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_evaluate_only_assignment_goes_from_check_to_evaluation(
    redis_broker, student, grading_settings
):
    assignment = make_assignment(mode=Assignment.Mode.EVALUATE)
    submission = make_submission(
        assignment, student, source=FIXTURE_MODELS / "smoke_separable.keras"
    )

    tasks.build_submission.apply(args=[submission.pk])
    tasks.check_submission.apply(args=[submission.pk])

    submission.refresh_from_db()
    assert submission.training_config is None
    assert [name for name, _, _ in queued_tasks(redis_broker, "gpu")] == [
        "workers.evaluate_submission"
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "name", ["workers.build_submission", "workers.check_submission", "workers.finalize_submission"]
)
def test_preflight_tasks_sent_without_limits_still_nest_around_the_build_sandbox(name):
    task = app.tasks[name]
    build = grading.stage_limits(stage=Status.BUILDING, assignment=make_assignment())
    assert build.sandbox_seconds < task.soft_time_limit < task.time_limit


def test_run_worker_starts_one_gpu_worker_named_after_its_gpu():
    from workers.management.commands.run_worker import worker_command

    argv, env = worker_command(queues="gpu", gpu="1", concurrency=2, beat=False, loglevel="INFO")

    assert argv[1:4] == ["-A", "workers", "worker"]
    assert argv[argv.index("-Q") + 1] == "gpu"
    assert argv[argv.index("--concurrency") + 1] == "2"
    assert argv[argv.index("-n") + 1] == "gpu1@%h"
    assert env["GRADER_GPU_DEVICE"] == "1"
    assert "-B" not in argv


def test_run_worker_refuses_an_unknown_queue():
    from django.core.management.base import CommandError

    from workers.management.commands.run_worker import worker_command

    with pytest.raises(CommandError, match=r"Queues gpus are not served\. Expected some of"):
        worker_command(queues="gpus", gpu=None, concurrency=1, beat=True, loglevel="INFO")


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_without_stop_on_static_failure_a_failed_rule_still_trains_but_cannot_pass(
    redis_broker, student, grading_settings
):
    assignment = make_assignment(
        slug="separable",
        dataset="cifar10",
        rules_yaml=preset_text("cifar10-separable"),
        max_epochs=50,
        stop_on_static_failure=False,
    )
    submission = make_submission(
        assignment, student, source=FIXTURE_MODELS / "breaks_dropout_025.json"
    )

    tasks.build_submission.apply(args=[submission.pk])
    assert tasks.check_submission.apply(args=[submission.pk]).get() == "done"

    submission.refresh_from_db()
    assert (submission.status, submission.worker, submission.reason) == (Status.CHECKING, "", "")
    assert submission.result.passed is False
    assert [name for name, _, _ in queued_tasks(redis_broker, "gpu")] == [
        "workers.train_submission"
    ]


# --- Transient database failures --------------------------------------------------------------


def _kill_this_database_connection() -> None:
    """Terminate the server process behind Django's connection, from a second connection.

    The next query on Django's connection then fails the way a restarted or failed-over
    PostgreSQL makes it fail: a real `OperationalError`, nothing staged in Python.
    """
    import psycopg
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    params.pop("prepare_threshold", None)
    with psycopg.connect(**params, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])


class KillsTheConnectionOnce:
    """Wraps a grading service: its first call loses the database connection under it."""

    def __init__(self, service):
        self.service = service
        self.calls = 0

    def __call__(self, **kwargs):
        self.calls += 1
        if self.calls == 1:
            _kill_this_database_connection()
        return self.service(**kwargs)


def _postgresql_only() -> None:
    from django.db import connection

    if connection.vendor != "postgresql":
        from tests.conftest import service_missing

        service_missing(f"PostgreSQL as the test database (got {connection.vendor})")


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_lost_database_connection_inside_a_stage_is_retried_and_the_stage_completes_once(
    redis_broker, student, grading_settings, monkeypatch
):
    _postgresql_only()
    submission = make_submission(
        make_assignment(), student, source=FIXTURE_MODELS / "smoke_separable.json"
    )
    tasks.build_submission.apply(args=[submission.pk])
    complete_check = KillsTheConnectionOnce(grading.complete_check)
    monkeypatch.setattr(grading, "complete_check", complete_check)

    outcome = tasks.check_submission.apply(args=[submission.pk])

    assert outcome.state == "SUCCESS" and outcome.get() == "done"
    assert complete_check.calls == 2  # the failed attempt, then the retry
    submission.refresh_from_db()
    assert (submission.status, submission.worker, submission.reason) == (Status.CHECKING, "", "")
    assert Result.objects.filter(submission=submission).count() == 1
    # The next stage was sent exactly once: the failed attempt's transaction sent nothing.
    assert [name for name, _, _ in queued_tasks(redis_broker, "gpu")] == [
        "workers.train_submission"
    ]


def _evaluated(student) -> Submission:
    """A submission whose evaluation is done, waiting for finalize (as `complete_evaluation`
    leaves it)."""
    from django.utils import timezone

    config = json.loads((FIXTURE_MODELS / "smoke_separable.json").read_text())
    submission = make_submission(
        make_assignment(), student, source=FIXTURE_MODELS / "smoke_separable.json"
    )
    Submission.objects.filter(pk=submission.pk).update(
        status=Status.EVALUATING,
        worker="",
        model_config=config,
        training_config={"epochs": 2},
        evaluating_at=timezone.now(),
    )
    Result.objects.create(submission=submission, rules_version=1, accuracy=0.9)
    for epoch, val_accuracy in ((1, 0.5), (2, 0.8)):
        submission.epochs.create(epoch=epoch, val_accuracy=val_accuracy)
    return submission


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_lost_database_connection_in_finalize_is_retried_and_finishes_exactly_once(
    redis_broker, student, grading_settings, monkeypatch
):
    _postgresql_only()
    submission = _evaluated(student)
    finalize = KillsTheConnectionOnce(grading.finalize)
    monkeypatch.setattr(grading, "finalize", finalize)

    outcome = tasks.finalize_submission.apply(args=[submission.pk])

    assert outcome.state == "SUCCESS" and outcome.get() == "done"
    assert finalize.calls == 2
    submission.refresh_from_db()
    assert (submission.status, submission.reason) == (Status.FINISHED, "")
    assert submission.result.passed is True and submission.result.score == 100.0
    finished_at = submission.finished_at
    # A duplicate message finds it finished: nothing is written a second time.
    assert tasks.finalize_submission.apply(args=[submission.pk]).get() == "skipped"
    submission.refresh_from_db()
    assert submission.finished_at == finished_at


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_database_that_stays_down_ends_the_stage_as_an_infrastructure_error(
    redis_broker, student, grading_settings, monkeypatch
):
    from django.db import OperationalError

    submission = make_submission(
        make_assignment(), student, source=FIXTURE_MODELS / "smoke_separable.json"
    )
    tasks.build_submission.apply(args=[submission.pk])
    calls = []

    def down(**kwargs):
        calls.append(kwargs)
        raise OperationalError("could not connect to server: Connection refused")

    monkeypatch.setattr(grading, "complete_check", down)

    outcome = tasks.check_submission.apply(args=[submission.pk])

    assert outcome.state == "SUCCESS"
    assert len(calls) == tasks.MAX_RETRIES + 1
    submission.refresh_from_db()
    assert (submission.status, submission.reason) == (Status.ERROR, "infrastructure")
    assert "check stage kept failing" in submission.message
    assert "OperationalError" in submission.message


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("task_name", ["check", "finalize"])
def test_a_bug_in_a_stage_is_not_retried(
    redis_broker, student, grading_settings, monkeypatch, task_name
):
    calls = []

    def broken(**kwargs):
        calls.append(kwargs)
        raise KeyError("params")  # a bug of ours, not the infrastructure's

    if task_name == "check":
        submission = make_submission(
            make_assignment(), student, source=FIXTURE_MODELS / "smoke_separable.json"
        )
        tasks.build_submission.apply(args=[submission.pk])
        monkeypatch.setattr(grading, "complete_check", broken)
        outcome = tasks.check_submission.apply(args=[submission.pk])
    else:
        submission = _evaluated(student)
        monkeypatch.setattr(grading, "finalize", broken)
        outcome = tasks.finalize_submission.apply(args=[submission.pk])

    assert outcome.state == "SUCCESS" and outcome.get() == "error"
    assert len(calls) == 1  # never retried
    submission.refresh_from_db()
    assert submission.status == Status.ERROR
    assert queued_tasks(redis_broker, "gpu") == []


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("task_name", ["check", "finalize"])
def test_a_database_restarted_before_a_task_is_retried_on_a_fresh_connection(
    redis_broker, student, grading_settings, task_name
):
    _postgresql_only()
    if task_name == "check":
        submission = make_submission(
            make_assignment(), student, source=FIXTURE_MODELS / "smoke_separable.json"
        )
        tasks.build_submission.apply(args=[submission.pk])
        task = tasks.check_submission
    else:
        submission = _evaluated(student)
        task = tasks.finalize_submission
    _kill_this_database_connection()  # the task's first query meets a dead connection

    outcome = task.apply(args=[submission.pk])

    assert outcome.state == "SUCCESS" and outcome.get() == "done"
    submission.refresh_from_db()
    expected = Status.CHECKING if task_name == "check" else Status.FINISHED
    assert (submission.status, submission.worker, submission.reason) == (expected, "", "")
