"""`python manage.py grade_batch DIR --assignment SLUG [--out results.csv]`: grade a folder.

Every `.py`, `.json` and `.keras` file directly in DIR (sorted by name) is graded exactly as
`grade` does it (`workers.pipeline.local`), one after the other, and summarised in a CSV.
Nothing is written to the database.

Exit status: 0 if every file passed, 1 if any failed, 2 if any could not be graded.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Any, TextIO

from django.core.management.base import BaseCommand, CommandError, CommandParser

from assignments.spreadsheet import spreadsheet_safe
from grader.terminal import terminal_safe
from workers.management.commands.grade import resolve_plan
from workers.pipeline.local import EXIT_CODES, GradeReport, grade_file
from workers.sandbox import BACKENDS

SUFFIXES = {".py", ".ipynb", ".json", ".keras"}
CSV_COLUMNS = (
    "file",
    "status",
    "reason",
    "score",
    "test_accuracy",
    "params_total",
    "epochs",
    "training_seconds",
    "message",
)


def csv_row(report: GradeReport) -> dict[str, Any]:
    """One CSV row of a report (exact numbers, empty cells for what did not run)."""
    params = (report.checks or {}).get("params") or {}
    return {
        "file": Path(report.file).name,
        "status": report.status,
        "reason": report.reason,
        "score": "" if report.score is None else report.score,
        "test_accuracy": "" if report.evaluation is None else report.evaluation["accuracy"],
        "params_total": params.get("total", ""),
        "epochs": len(report.epochs) if report.epochs else "",
        "training_seconds": "" if report.training_seconds is None else report.training_seconds,
        "message": report.message,
    }


def write_csv(reports: list[GradeReport], stream: TextIO, *, terminal: bool = False) -> None:
    """Write the reports as CSV with a header row.

    `terminal`: the CSV goes to a terminal (standard output), so control characters in the
    students' text are written as escapes (`grader.terminal`), newlines included.
    """
    writer = csv.DictWriter(stream, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    for report in reports:
        row = csv_row(report)
        if terminal:
            row = {k: v if isinstance(v, int | float) else terminal_safe(v) for k, v in row.items()}
        # File names and messages are the students' text: never a formula in a spreadsheet.
        writer.writerow({k: spreadsheet_safe(v) for k, v in row.items()})


class Command(BaseCommand):
    help = "Grade every .py/.json/.keras file of a directory locally; write a CSV summary."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("directory")
        parser.add_argument(
            "--assignment", required=True, help="An assignment slug in the database, or a preset."
        )
        parser.add_argument("--out", help="Write the CSV here (default: standard output).")
        parser.add_argument("--sandbox", choices=tuple(BACKENDS), default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        directory = Path(options["directory"])
        if not directory.is_dir():
            raise CommandError(
                f"{terminal_safe(directory)} is not a directory.", returncode=EXIT_CODES["error"]
            )
        files = sorted(
            p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES
        )
        if not files:
            raise CommandError(
                f"{directory} holds no .py, .json or .keras file.", returncode=EXIT_CODES["error"]
            )
        plan = resolve_plan(options["assignment"])
        reports = []
        for index, path in enumerate(files, start=1):
            report = grade_file(path, plan, sandbox_name=options["sandbox"])
            reports.append(report)
            score = "" if report.score is None else f"  score {report.score:.1f}"
            self.stderr.write(
                f"[{index}/{len(files)}] {terminal_safe(path.name)}: {report.status}"
                f"{f' ({report.reason})' if report.reason else ''}{score}"
            )
        if options["out"]:
            with open(options["out"], "w", newline="", encoding="utf-8") as stream:
                write_csv(reports, stream)
        else:
            write_csv(reports, self.stdout, terminal=True)
        worst = max(report.exit_code for report in reports)
        if worst:
            sys.exit(worst)
