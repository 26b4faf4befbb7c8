"""The command-line client against a live server: submit, follow the grading, results CSV,
leaderboard, grades. The grading advances through the real state machine between polls."""

from __future__ import annotations

import csv
import io

import pytest
from rest_framework.authtoken.models import Token

from assignments.client.cli import main, progress_bar, stage_fraction
from assignments.models import Submission
from tests.support.pipeline_driver import advance
from tests.support.site_fixtures import model_json

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("uploads_dir")]


def token(user) -> str:
    return Token.objects.get_or_create(user=user)[0].key


def test_progress_bar_and_stage_fraction():
    assert progress_bar(0.5, width=10) == "[#####-----]  50 %"
    assert stage_fraction("queued") == 0.0 and stage_fraction("finished") == 1.0
    assert stage_fraction("failed") == 1.0
    assert 0 < stage_fraction("training") < stage_fraction("evaluating") < 1


@pytest.mark.embedded  # also proves the embedded default: SQLite and the filesystem broker
def test_submit_waits_for_the_grading_and_writes_results(
    live_server, student, assignment, tmp_path, broker_dir, monkeypatch
):
    model = tmp_path / "net.json"
    model.write_bytes(model_json())
    bad = tmp_path / "bad.txt"
    bad.write_text("not a model")
    out_csv = tmp_path / "results.csv"

    # Between polls, the "workers" run the next stage (the client sleeps between polls).
    def run_next_stage(_seconds: float) -> None:
        for sub in list(Submission.objects.exclude(status__in=Submission.TERMINAL_STATUSES)):
            advance(sub.pk, accuracy=0.8125)

    monkeypatch.setattr("assignments.client.cli.pause", run_next_stage)
    output = io.StringIO()
    code = main(
        ["submit", "--url", live_server.url, "--token", token(student), "--assignment",
         assignment.slug, "--poll", "0", "--out", str(out_csv), str(model), str(bad)],
        out=output,
    )  # fmt: skip
    text = output.getvalue()
    assert code == 1  # one file was rejected
    assert "bad.txt: rejected: File `bad.txt` has extension `.txt`" in text
    assert "[" in text and "100 %" in text and "1/1 done" in text
    rows = list(csv.DictReader(out_csv.open()))
    assert [(r["file"], r["status"]) for r in rows] == [
        (str(bad), "rejected"),
        (str(model), "finished"),
    ]
    finished = rows[1]
    assert float(finished["accuracy"]) == 0.8125 and finished["passed"] == "True"
    # Every stage was sent to the broker as a real message: build, check, train, evaluate, finalize.
    assert broker_dir.count() == 5


def test_leaderboard_and_grades_commands(live_server, student, instructor, assignment, tmp_path):
    from tests.support.site_fixtures import make_submission

    make_submission(assignment, student, accuracy=0.9, params=1234)
    output = io.StringIO()
    assert main(["leaderboard", "--url", live_server.url, "--token", token(student),
                 "--assignment", assignment.slug], out=output) == 0  # fmt: skip
    assert "Alice A." in output.getvalue() and "90.00%" in output.getvalue()
    assert "(you)" in output.getvalue()
    grades = tmp_path / "grades.csv"
    args = ["grades", "--url", live_server.url, "--token", token(instructor),
            "--assignment", assignment.slug, "--out", str(grades)]  # fmt: skip
    assert main(args, out=io.StringIO()) == 0
    assert grades.read_text().startswith("username,")


def test_students_cannot_download_grades(live_server, student, assignment):
    output = io.StringIO()
    code = main(["grades", "--url", live_server.url, "--token", token(student),
                 "--assignment", assignment.slug], out=output)  # fmt: skip
    assert code == 2 and "Error (404)" in output.getvalue()
    assert "Grades are for the course's instructors" in output.getvalue()


def test_status_names_an_unknown_id_and_still_shows_the_others(live_server, student, assignment):
    from tests.support.site_fixtures import make_submission

    mine = make_submission(assignment, student, accuracy=0.9)
    output = io.StringIO()
    code = main(["status", "--url", live_server.url, "--token", token(student),
                 str(mine.pk), "999999"], out=output)  # fmt: skip
    text = output.getvalue()
    assert code == 2
    assert "#999999: not found (no submission with that id that you may see)" in text
    assert f"#{mine.pk}" in text and "finished" in text


def test_bad_token_is_reported(live_server, assignment):
    output = io.StringIO()
    code = main(["leaderboard", "--url", live_server.url, "--token", "nope",
                 "--assignment", assignment.slug], out=output)  # fmt: skip
    assert code == 2 and "Error (401)" in output.getvalue()


def test_cancel_command_cancels_queued_and_reports_ended_ones(live_server, student, assignment):
    from tests.support.site_fixtures import make_submission

    queued = make_submission(
        assignment, student, status=Submission.Status.QUEUED, with_result=False
    )
    done = make_submission(assignment, student, accuracy=0.9)
    output = io.StringIO()
    code = main(["cancel", "--url", live_server.url, "--token", token(student),
                 str(queued.pk), str(done.pk)], out=output)  # fmt: skip
    text = output.getvalue()
    assert code == 1  # the finished one could not be cancelled
    assert f"#{queued.pk} cancelled" in text
    assert f"#{done.pk} not cancelled: Submission #{done.pk} is finished." in text
    queued.refresh_from_db()
    assert queued.status == Submission.Status.CANCELLED
    assert "Cancelled by" in queued.message


def test_cancel_command_cannot_touch_another_students_submission(
    live_server, student, other_student, assignment
):
    from tests.support.site_fixtures import make_submission

    theirs = make_submission(
        assignment, other_student, status=Submission.Status.QUEUED, with_result=False
    )
    output = io.StringIO()
    code = main(["cancel", "--url", live_server.url, "--token", token(student),
                 str(theirs.pk)], out=output)  # fmt: skip
    assert code == 2 and "Error (404)" in output.getvalue()
    theirs.refresh_from_db()
    assert theirs.status == Submission.Status.QUEUED


@pytest.mark.parametrize("debug", [True, False])
def test_a_server_error_is_an_api_error_with_a_short_message(
    live_server, student, assignment, tmp_path, settings, debug
):
    # A real failure inside the server: the uploads folder cannot be created.
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the uploads folder's parent should be")
    settings.MEDIA_ROOT = blocker / "uploads"
    settings.DEBUG = debug  # the debug page is plain text for a JSON client, else HTML
    models = []
    for filters in (1, 2):
        models.append(tmp_path / f"net{filters}.json")
        models[-1].write_bytes(model_json(filters))
    out_csv = tmp_path / "results.csv"
    output = io.StringIO()
    code = main(
        ["submit", "--url", live_server.url, "--token", token(student), "--assignment",
         assignment.slug, "--out", str(out_csv), *map(str, models)],
        out=output,
    )  # fmt: skip
    lines = output.getvalue().splitlines()
    assert code == 2  # an API error, not a rejected file
    assert lines[:2] == [
        f"{model}: API error (500): HTTP 500 Internal Server Error (the answer is not JSON; "
        "the server's log has the details)"
        for model in models
    ]
    assert "rejected" not in output.getvalue()
    rows = list(csv.DictReader(out_csv.open()))
    assert [(r["file"], r["status"], r["reason"]) for r in rows] == [
        (str(model), "api_error", "server_error") for model in models
    ]
    assert Submission.objects.count() == 0


FAILURE_MESSAGE = (
    "Model `tiny` has output shape (None, 10). Expected (None, 4): one unit per class of "
    "`synthetic`.\n" + "".join(f"  detail line {n}\n" for n in range(2, 12))
)


def test_status_shows_why_a_submission_failed_and_exits_1(live_server, student, assignment):
    from tests.support.site_fixtures import make_submission

    failed = make_submission(
        assignment, student, status=Submission.Status.FAILED,
        reason=Submission.Reason.INVALID_SUBMISSION, with_result=False,
    )  # fmt: skip
    Submission.objects.filter(pk=failed.pk).update(message=FAILURE_MESSAGE)
    passed = make_submission(assignment, student, accuracy=0.9)
    common = ["status", "--url", live_server.url, "--token", token(student)]

    output = io.StringIO()
    assert main([*common, str(passed.pk)], out=output) == 0
    assert f"#{passed.pk} finished" in output.getvalue()

    output = io.StringIO()
    assert main([*common, str(passed.pk), str(failed.pk)], out=output) == 1
    text = output.getvalue()
    assert (
        f"#{failed.pk} failed: invalid_submission\n"
        "  Model `tiny` has output shape (None, 10). Expected (None, 4): one unit per class of "
        "`synthetic`.\n    detail line 2\n"
    ) in text
    assert "    detail line 6\n" in text and "detail line 7" not in text
    assert f"  ... 5 more line(s); the whole message: {live_server.url}/api/v1/" in text


def test_submit_shows_why_the_build_failed(live_server, student, assignment, tmp_path, monkeypatch):
    from assignments.services import grading

    model = tmp_path / "net.json"
    model.write_bytes(model_json())

    # The "worker" takes the build and fails it the way the build stage does.
    def fail_the_build(_seconds: float) -> None:
        for sub in Submission.objects.filter(status=Submission.Status.QUEUED):
            assert grading.claim_stage(
                submission_id=sub.pk, from_status="queued", to_status="building", worker="w#1"
            )
            assert grading.mark_failed(
                submission_id=sub.pk, worker="w#1", reason=Submission.Reason.BUILD_ERROR,
                message="build_model() raised ValueError: Kernel size 9 is larger than the "
                "8x8 input.",
                stage="build",
            )  # fmt: skip

    monkeypatch.setattr("assignments.client.cli.pause", fail_the_build)
    output = io.StringIO()
    code = main(
        ["submit", "--url", live_server.url, "--token", token(student), "--assignment",
         assignment.slug, "--poll", "0", str(model)],
        out=output,
    )  # fmt: skip
    assert code == 1
    sub = Submission.objects.get()
    assert (
        f"{model}: #{sub.pk} failed: build_error\n"
        "  build_model() raised ValueError: Kernel size 9 is larger than the 8x8 input.\n"
    ) in output.getvalue()


def test_batch_with_a_file_listed_twice_in_the_manifest_is_rejected(
    live_server, instructor, student, other_student, assignment, tmp_path
):
    import zipfile

    archive = tmp_path / "students.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("manifest.csv", "file,username\na.json,alice\na.json,bob\n")
        zipped.writestr("a.json", model_json())
    output = io.StringIO()
    code = main(["batch", "--url", live_server.url, "--token", token(instructor),
                 "--assignment", assignment.slug, str(archive)], out=output)  # fmt: skip
    text = output.getvalue()
    assert code == 1
    assert "`a.json` on lines 2 (`alice`), 3 (`bob`). Expected one row per file" in text
    assert "  a.json (alice): " in text and "  a.json (bob): " in text
    assert Submission.objects.count() == 0


def test_the_results_csv_never_hands_a_spreadsheet_a_formula(tmp_path):
    from assignments.client.cli import RESULT_COLUMNS, write_csv

    out = tmp_path / "results.csv"
    row = dict.fromkeys(RESULT_COLUMNS, "")
    row.update(file="=cmd|' /C calc'!A0.py", status="error", message="+build failed", score=-1)
    write_csv(out, [row])

    [written] = list(csv.DictReader(out.open()))
    assert written["file"] == "'=cmd|' /C calc'!A0.py"
    assert written["message"] == "'+build failed"
    assert written["score"] == "-1"  # a number stays a number


def test_status_marks_rules_an_ended_grading_never_decided_as_not_run(
    live_server, student, assignment
):
    from tests.support.site_fixtures import make_submission

    rules = [
        {"id": "max_params", "name": "max_params", "passed": False, "measured": 416095,
         "limit": 20000, "message": "The model has 416,095 parameters.", "points": 1.0},
        {"id": "max_epochs", "name": "max_epochs", "passed": None, "measured": None,
         "limit": 5, "message": "Decided after training (at most 5 epochs).", "points": 1.0},
    ]  # fmt: skip
    failed = make_submission(
        assignment, student, status=Submission.Status.FAILED, reason=Submission.Reason.RULES,
        passed=False, rules=rules,
    )  # fmt: skip
    output = io.StringIO()
    common = ["status", "--url", live_server.url, "--token", token(student)]
    assert main([*common, str(failed.pk)], out=output) == 1
    text = output.getvalue()
    assert "[   FAIL] max_params: The model has 416,095 parameters.\n" in text
    assert ("[not run] max_epochs: Not decided: grading ended before this rule was checked") in text
    assert "pending" not in text and "Decided after training" not in text


@pytest.mark.parametrize(
    ("sub", "line"),
    [
        (
            {"id": 12, "status": "training", "queue_position": None,
             "epochs": [{"epoch": 3, "val_accuracy": 0.612}]},
            "#12 training (epoch 3, val. accuracy 61.2 %)",
        ),
        (
            {"id": 12, "status": "training", "queue_position": 2,
             "epochs": [{"epoch": 5, "val_accuracy": 0.9}]},
            "#12 training done (epoch 5, val. accuracy 90.0 %), waiting for evaluation "
            "(position 2 in the queue)",
        ),
        (
            {"id": 7, "status": "checking", "queue_position": 1},
            "#7 checking done, waiting for training (position 1 in the queue)",
        ),
        ({"id": 3, "status": "queued", "queue_position": 4}, "#3 queued (position 4 in the queue)"),
    ],
)  # fmt: skip
def test_a_submission_waiting_between_stages_says_what_it_waits_for(sub, line):
    from assignments.client.cli import describe

    assert describe(sub) == line
