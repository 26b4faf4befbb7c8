"""`python manage.py grade PATH --assignment SLUG`: grade one file locally, start to finish.

Runs the very stage code the Celery workers run (`workers.pipeline.local`), with the same
sandboxes and limits, synchronously. SLUG names a database assignment if one exists, else a
shipped preset (`grader/presets/`). Nothing is written to the database either way: `grade` is a
dry run of a submission (job folders are temporary).

Exit status: 0 passed, 1 failed (a verdict: rules, build error, timeout, ...), 2 error (the
grading itself could not run: unknown slug, dataset missing, sandbox down).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from grader.errors import GraderError
from grader.grading.plan import GradingPlan
from grader.terminal import terminal_lines, terminal_safe
from workers.pipeline.local import EXIT_CODES, GradeReport, grade_file
from workers.sandbox import BACKENDS

#: The `--format json` reason of a bad argument (no such file, no such assignment or preset).
INVALID_ARGUMENT = "invalid_argument"


def resolve_plan(slug: str) -> GradingPlan:
    """The grading plan of a database assignment `slug`, else of the preset `slug`.

    Raises:
        CommandError: (exit 2) neither exists.
    """
    from assignments.models import Assignment

    try:
        assignment = Assignment.objects.filter(slug=slug).first()
    except DatabaseError:
        # No database yet (not migrated) or unreachable: presets still work without one.
        assignment = None
    if assignment is not None:
        return GradingPlan.from_assignment(assignment)
    try:
        return GradingPlan.from_preset(slug)
    except GraderError as exc:
        raise CommandError(
            f"No assignment or preset is named `{slug}`: {exc.message}",
            returncode=EXIT_CODES["error"],
        ) from exc


def _format_epoch(record: dict[str, Any], epochs: int | None) -> str:
    """`epoch 2/5  loss ...`: `epochs` is what this run trains (the validated config's)."""
    total = f"/{epochs}" if epochs else ""
    parts = [f"epoch {record.get('epoch')}{total}"]
    for key, label in (
        ("loss", "loss"),
        ("accuracy", "acc"),
        ("val_loss", "val_loss"),
        ("val_accuracy", "val_acc"),
    ):
        value = record.get(key)
        if isinstance(value, int | float):
            parts.append(f"{label} {value:.4f}")
    seconds = record.get("seconds")
    if isinstance(seconds, int | float):
        parts.append(f"({seconds:.1f} s)")
    return "  ".join(parts)


def format_report(report: dict[str, Any]) -> str:
    """A readable summary of a `grade` report: verdict, rules, training and evaluation.

    The file name and every message are the student's text: `terminal_safe`, and a multi-line
    message (a traceback) stays indented under its verdict.
    """
    lines = [f"{terminal_safe(report['file'])}: {report['status'].upper()}"]
    if report.get("reason"):
        lines.append(f"  reason: {report['reason']}")
    if report.get("message"):
        lines.extend(f"  {line}" for line in terminal_lines(report["message"]))
    source = report.get("source") or {}
    if source.get("notebook"):
        used = ", ".join(str(n) for n in source["notebook"]["used_cells"]) or "none"
        lines.append(f"  notebook cells used: {used}")
    if report.get("status") != "error" and not report.get("message"):
        # A failed build's message already lists them; otherwise they are worth a line each.
        for note in source.get("notes") or []:
            if note["severity"] != "note":
                lines.append(f"  {terminal_safe(note['where'])}: {terminal_safe(note['message'])}")
    checks = report.get("checks") or {}
    built = checks.get("built_model") or {}
    for difference in built.get("differences") or []:
        lines.append(f"  built network: {terminal_safe(difference)}")
    params = checks.get("params")
    if params:
        lines.append(f"  parameters: {params['total']:,} ({params['trainable']:,} trainable)")
    marks = {True: "PASS", False: "FAIL", None: "----"}
    for rule in checks.get("rules", []):
        lines.append(
            f"  [{marks[rule.get('passed')]}] {terminal_safe(rule.get('name') or rule['id'])}: "
            f"{terminal_safe(rule.get('message', ''))}"
        )
    training = report.get("training")
    if training:
        lines.append(
            f"  training: {len(training['epochs'])} epochs in {training['seconds'] or 0:.1f} s"
        )
    evaluation = report.get("evaluation")
    if evaluation:
        lines.append(f"  test accuracy: {evaluation['accuracy']:.4f}")
    if report.get("score") is not None:
        lines.append(f"  score: {report['score']:.1f} / 100")
    return "\n".join(lines)


def argument_error(path: Path, message: str) -> dict[str, Any]:
    """The `--format json` report of a run that could not start: a file that does not exist,
    an unknown assignment. The keys of `GradeReport.to_dict`, status `error`, reason
    `invalid_argument`."""
    return GradeReport(file=str(path), reason=INVALID_ARGUMENT, message=message).to_dict()


class Command(BaseCommand):
    help = "Grade one submission file locally through every stage (build, check, train, evaluate)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="A .py module, .json model config or .keras archive.")
        parser.add_argument(
            "--assignment", required=True, help="An assignment slug in the database, or a preset."
        )
        parser.add_argument("--format", choices=("text", "json"), default="text")
        parser.add_argument(
            "--sandbox",
            choices=tuple(BACKENDS),
            default=None,
            help="The sandbox backend (default: GRADER_SANDBOX).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["path"])
        text = options["format"] == "text"
        try:
            if not path.is_file():
                raise CommandError(
                    f"File {terminal_safe(path)} does not exist.", returncode=EXIT_CODES["error"]
                )
            plan = resolve_plan(options["assignment"])
        except CommandError as exc:
            if text:
                raise
            # A script reading `--format json` gets the report's object, never a bare stderr.
            self.stdout.write(json.dumps(argument_error(path, str(exc))))
            self.stdout.flush()
            sys.exit(EXIT_CODES["error"])

        planned: dict[str, int | None] = {"epochs": None}

        def on_event(event: str, data: dict[str, Any]) -> None:
            if not text:
                return
            if event == "stage":
                if data["stage"] == "train":
                    planned["epochs"] = data.get("epochs")
                self.stdout.write(f"-> {data['stage']}")
            elif event == "epoch":
                self.stdout.write("   " + _format_epoch(data, planned["epochs"]))
            self.stdout.flush()

        report: GradeReport = grade_file(
            path, plan, sandbox_name=options["sandbox"], on_event=on_event
        )
        data = report.to_dict()
        if text:
            self.stdout.write(format_report(data))
        else:
            self.stdout.write(json.dumps(data))
        self.stdout.flush()
        if report.exit_code:
            sys.exit(report.exit_code)
