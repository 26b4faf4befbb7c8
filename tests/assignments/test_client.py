"""The command-line client against a live server: submit, follow the grading, results CSV,
leaderboard, grades. The grading advances through the real state machine between polls."""

from __future__ import annotations

import csv
import io

import pytest
from rest_framework.authtoken.models import Token

from assignments.client.cli import main, progress_bar, stage_fraction
from assignments.models import Submission
from tests.assignments.pipeline_driver import advance
from tests.assignments.site_fixtures import model_json

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
    from tests.assignments.site_fixtures import make_submission

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


def test_bad_token_is_reported(live_server, assignment):
    output = io.StringIO()
    code = main(["leaderboard", "--url", live_server.url, "--token", "nope",
                 "--assignment", assignment.slug], out=output)  # fmt: skip
    assert code == 2 and "Error (401)" in output.getvalue()


def test_cancel_command_cancels_queued_and_reports_ended_ones(live_server, student, assignment):
    from tests.assignments.site_fixtures import make_submission

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
    from tests.assignments.site_fixtures import make_submission

    theirs = make_submission(
        assignment, other_student, status=Submission.Status.QUEUED, with_result=False
    )
    output = io.StringIO()
    code = main(["cancel", "--url", live_server.url, "--token", token(student),
                 str(theirs.pk)], out=output)  # fmt: skip
    assert code == 2 and "Error (404)" in output.getvalue()
    theirs.refresh_from_db()
    assert theirs.status == Submission.Status.QUEUED
