"""The command line: `submit`, `status`, `cancel`, `leaderboard`, `grades`, `batch`.

Exit codes: 0 all went well; 1 a file was rejected or a grading did not pass; 2 bad usage or
an API error (authentication, permission, unreachable server, a server error); 3 waiting timed
out.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from assignments.client.http import Api, ApiError
from assignments.spreadsheet import spreadsheet_safe
from grader.terminal import terminal_safe

EXIT_OK, EXIT_REJECTED, EXIT_ERROR, EXIT_TIMEOUT = 0, 1, 2, 3
TERMINAL = {"finished", "failed", "error", "cancelled"}
# The submission page's words for a rule an ended grading never decided.
NOT_RUN_MESSAGE = (
    "Not decided: grading ended before this rule was checked (a stage it needs did not run), "
    "so it earned no points."
)
# How much of a failed submission's message is printed under it (the API has all of it).
MESSAGE_LINES, MESSAGE_WIDTH = 6, 200
STAGES = ["queued", "building", "checking", "training", "evaluating", "finished"]
RESULT_COLUMNS = [
    "file", "submission_id", "status", "reason", "passed", "accuracy", "params_total", "score",
    "message", "url",
]  # fmt: skip


def stage_fraction(status: str) -> float:
    """How far along the pipeline a status is, 0..1 (terminal states count as done)."""
    if status in TERMINAL:
        return 1.0
    return STAGES.index(status) / (len(STAGES) - 1) if status in STAGES else 0.0


def progress_bar(fraction: float, width: int = 30) -> str:
    """`[##########----------]  50 %`"""
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return f"[{'#' * filled}{'-' * (width - filled)}] {fraction * 100:3.0f} %"


# A stage's status stays on the submission, with no worker, until the next stage starts:
# while it waits in a queue, its status names the stage it finished.
_NEXT_STAGE = {
    "building": "the check",
    "checking": "training",
    "training": "evaluation",
    "evaluating": "the final verdict",
}


def describe(sub: dict) -> str:
    """One line about a submission: `#12 training (epoch 3, val. accuracy 61.2 %)`, or
    `#12 training done (epoch 5, ...), waiting for evaluation (position 2 in the queue)`."""
    waiting = bool(sub.get("queue_position")) and sub["status"] in _NEXT_STAGE
    text = f"#{sub['id']} {sub['status']}" + (" done" if waiting else "")
    if sub.get("reason"):
        text += f": {sub['reason']}"
    epochs = sub.get("epochs") or []
    if sub["status"] == "training" and epochs:
        last = epochs[-1]
        detail = f"epoch {last['epoch']}"
        if last.get("val_accuracy") is not None:
            detail += f", val. accuracy {last['val_accuracy'] * 100:.1f} %"
        text += f" ({detail})"
    if waiting:
        text += f", waiting for {_NEXT_STAGE[sub['status']]}"
    if sub.get("queue_position"):
        text += f" (position {sub['queue_position']} in the queue)"
    if sub["status"] in TERMINAL and sub.get("accuracy") is not None:
        text += f", test accuracy {sub['accuracy'] * 100:.2f} %"
    return text


def did_not_pass(sub: dict) -> bool:
    """A graded submission that failed, ended in an error, was cancelled or missed a rule."""
    return sub["status"] in TERMINAL and (sub["status"] != "finished" or sub.get("passed") is False)


def message_lines(sub: dict) -> list[str]:
    """The first lines of why a submission did not pass, indented, each cut to one line."""
    text = (sub.get("message") or "").strip()
    if not text or not did_not_pass(sub):
        return []
    lines = [terminal_safe(line.rstrip()) for line in text.splitlines() if line.strip()]
    shown = [
        "  " + (line if len(line) <= MESSAGE_WIDTH else line[: MESSAGE_WIDTH - 3] + "...")
        for line in lines[:MESSAGE_LINES]
    ]
    if len(lines) > MESSAGE_LINES:
        where = f"; the whole message: {sub['url']}" if sub.get("url") else ""
        shown.append(f"  ... {len(lines) - MESSAGE_LINES:,} more line(s){where}")
    return shown


def pause(seconds: float) -> None:
    """Wait between polls (a seam for tests, which run the next grading stage here)."""
    time.sleep(seconds)


def wait_for(
    api: Api,
    ids: Sequence[int],
    *,
    poll: float,
    timeout: float,
    out: TextIO,
    sleep: Callable[[float], None] | None = None,
) -> dict[int, dict]:
    """Poll each submission until all are done, drawing a progress bar; returns the details."""
    sleep = sleep or pause
    latest: dict[int, dict] = {}
    deadline = time.monotonic() + timeout
    interactive = out.isatty()
    last_line = ""
    while True:
        for sid in ids:
            if sid not in latest or latest[sid]["status"] not in TERMINAL:
                latest[sid] = api.get_json(f"/api/v1/submissions/{sid}/")
        fraction = sum(stage_fraction(s["status"]) for s in latest.values()) / len(ids)
        done = sum(s["status"] in TERMINAL for s in latest.values())
        active = [s for s in latest.values() if s["status"] not in TERMINAL]
        line = f"{progress_bar(fraction)} {done}/{len(ids)} done"
        if active:
            line += f"; {describe(active[0])}"
        if interactive:
            out.write("\r" + line.ljust(len(last_line)))
        elif line != last_line:
            out.write(line + "\n")  # a log file gets each change once, not carriage returns
        out.flush()
        last_line = line
        if not active:
            if interactive:
                out.write("\n")
            return latest
        if time.monotonic() > deadline:
            if interactive:
                out.write("\n")
            raise TimeoutError(f"{len(active)} submission(s) still running after {timeout:.0f} s.")
        sleep(poll)


def result_row(
    file: str, sub: dict | None, error: ApiError | None = None, *, status: str = "rejected"
) -> dict[str, Any]:
    """A CSV row for one submitted file (rejected files and failed uploads get their error)."""
    if sub is None:
        return {"file": file, "status": status, "reason": error.error_code if error else "",
                "message": error.message if error else ""}  # fmt: skip
    result = sub.get("result") or {}
    return {
        "file": file,
        "submission_id": sub["id"],
        "status": sub["status"],
        "reason": sub.get("reason", ""),
        "passed": sub.get("passed"),
        "accuracy": sub.get("accuracy"),
        "params_total": sub.get("params_total"),
        "score": result.get("final_score"),
        "message": sub.get("message", ""),
        "url": sub.get("url", ""),
    }


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=RESULT_COLUMNS)
        writer.writeheader()
        for row in rows:
            # File names and messages come from students: never a formula in a spreadsheet.
            writer.writerow(
                {
                    key: "" if row.get(key) is None else spreadsheet_safe(row.get(key))
                    for key in RESULT_COLUMNS
                }
            )


def cmd_submit(api: Api, args: argparse.Namespace, out: TextIO) -> int:
    accepted: dict[int, str] = {}
    rows: list[dict[str, Any]] = []
    code = EXIT_OK
    server_failed = False
    for name in args.files:
        path = Path(name)
        if not path.is_file():
            out.write(f"{name}: no such file\n")
            rows.append({"file": name, "status": "rejected", "reason": "missing_file"})
            code = EXIT_REJECTED
            continue
        try:
            sub = api.post_file(f"/api/v1/assignments/{args.assignment}/submissions/", path)
        except ApiError as exc:
            if exc.status >= 500:
                # The server failed, not the file. The files already queued are still waited
                # for and written to the CSV; the exit code says an API error happened.
                out.write(f"{name}: API error ({exc.status}): {terminal_safe(exc.message)}\n")
                rows.append(result_row(name, None, exc, status="api_error"))
                server_failed = True
                continue
            if exc.status in (0, 401, 403, 404) and exc.error_code not in {"not_enrolled", "late"}:
                raise
            out.write(f"{name}: rejected: {terminal_safe(exc.message)}\n")
            rows.append(result_row(name, None, exc))
            code = EXIT_REJECTED
            continue
        out.write(f"{name}: submission #{sub['id']} queued\n")
        accepted[sub["id"]] = name
    details: dict[int, dict] = {}
    if accepted and not args.no_wait:
        try:
            details = wait_for(api, list(accepted), poll=args.poll, timeout=args.timeout, out=out)
        except TimeoutError as exc:
            out.write(f"{exc}\n")
            code = EXIT_TIMEOUT
    for sid, name in accepted.items():
        sub = details.get(sid) or api.get_json(f"/api/v1/submissions/{sid}/")
        rows.append(result_row(name, sub))
        if sid in details:
            out.write(f"{name}: {describe(sub)}\n")
            for line in message_lines(sub):
                out.write(line + "\n")
            if did_not_pass(sub):
                code = code or EXIT_REJECTED
    if args.out:
        write_csv(Path(args.out), rows)
        out.write(f"Results written to {args.out}\n")
    return EXIT_ERROR if server_failed else code


def cmd_status(api: Api, args: argparse.Namespace, out: TextIO) -> int:
    """Show each submission, why it failed and its rules; exit 1 if one did not pass, 2 if an
    id is not one of the caller's submissions (the others are still shown)."""
    details: dict[int, dict] = {}
    code = EXIT_OK
    for sid in args.ids:
        try:
            details[sid] = api.get_json(f"/api/v1/submissions/{sid}/")
        except ApiError as exc:
            if exc.status != 404:
                raise
            out.write(f"#{sid}: not found (no submission with that id that you may see)\n")
            code = EXIT_ERROR
    if args.wait and details:
        try:
            details = wait_for(api, list(details), poll=args.poll, timeout=args.timeout, out=out)
        except TimeoutError as exc:
            out.write(f"{exc}\n")
            return EXIT_TIMEOUT
    for sub in details.values():
        out.write(describe(sub) + "\n")
        for line in message_lines(sub):
            out.write(line + "\n")
        for rule in (sub.get("result") or {}).get("rules") or []:
            mark = {True: "pass", False: "FAIL", None: "pending"}[rule.get("passed")]
            message = rule.get("message", "")
            if rule.get("passed") is None and sub["status"] in TERMINAL:
                # The grading ended: a rule still undecided never will be (training skipped).
                mark, message = "not run", NOT_RUN_MESSAGE
            name = terminal_safe(rule.get("name") or rule["id"])
            out.write(f"  [{mark:>7}] {name}: {terminal_safe(message)}\n")
        # The same codes as `submit`: one that is still being graded has not failed (yet).
        if did_not_pass(sub) and code == EXIT_OK:
            code = EXIT_REJECTED
    return code


def cmd_cancel(api: Api, args: argparse.Namespace, out: TextIO) -> int:
    """Cancel each submission; one that already ended is reported and makes the exit code 1."""
    code = EXIT_OK
    for sid in args.ids:
        try:
            sub = api.post_json(f"/api/v1/submissions/{sid}/cancel/")
        except ApiError as exc:
            if exc.error_code != "invalid_transition":
                raise
            out.write(f"#{sid} not cancelled: {terminal_safe(exc.message)}\n")
            code = EXIT_REJECTED
            continue
        out.write(describe(sub) + "\n")
    return code


def cmd_leaderboard(api: Api, args: argparse.Namespace, out: TextIO) -> int:
    board = api.get_json(f"/api/v1/assignments/{args.assignment}/leaderboard/")
    out.write(terminal_safe(board["rule"]) + "\n")
    out.write(f"{'rank':>4}  {'name':<30} {'accuracy':>9} {'params':>10}\n")
    for entry in board["entries"]:
        you = "  (you)" if entry["is_you"] else ""
        params = "" if entry["params_total"] is None else f"{entry['params_total']:,}"
        out.write(
            f"{entry['rank']:>4}  {terminal_safe(entry['name'])[:30]:<30} "
            f"{entry['accuracy'] * 100:>8.2f}% "
            f"{params:>10}{you}\n"
        )
    return EXIT_OK


def cmd_grades(api: Api, args: argparse.Namespace, out: TextIO) -> int:
    try:
        data = api.get_bytes(f"/api/v1/assignments/{args.assignment}/grades.csv")
    except ApiError as exc:
        if exc.status != 404:
            raise
        # The API does not tell a student that the assignment exists: say what 404 can mean.
        out.write(
            f"Error (404): no assignment `{terminal_safe(args.assignment)}` whose grades you "
            "may download. Grades are for the course's instructors and teaching assistants.\n"
        )
        return EXIT_ERROR
    if args.out:
        Path(args.out).write_bytes(data)
        out.write(f"Grades written to {args.out}\n")
    else:
        out.write(data.decode("utf-8"))
    return EXIT_OK


def cmd_batch(api: Api, args: argparse.Namespace, out: TextIO) -> int:
    try:
        answer = api.post_file(f"/api/v1/assignments/{args.assignment}/batch/", Path(args.zip))
    except ApiError as exc:
        if exc.error_code != "batch_rejected":
            raise
        out.write(f"Batch rejected: {terminal_safe(exc.message)}\n")
        for problem in (exc.body or {}).get("error", {}).get("problems", []):
            file, username, message = (
                terminal_safe(problem[key]) for key in ("file", "username", "message")
            )
            out.write(f"  {file} ({username}): {message}\n")
        return EXIT_REJECTED
    out.write(f"{answer['count']} submissions queued.\n")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m assignments.client", description=__doc__)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", required=True, help="the site, e.g. https://grader.example.org")
    common.add_argument("--token", required=True, help="your API token (see your profile page)")
    waiting = argparse.ArgumentParser(add_help=False)
    waiting.add_argument("--poll", type=float, default=2.0, help="seconds between status checks")
    waiting.add_argument("--timeout", type=float, default=4 * 3600, help="give up after seconds")
    commands = parser.add_subparsers(dest="command", required=True)

    submit = commands.add_parser("submit", parents=[common, waiting], help="submit model files")
    submit.add_argument("--assignment", required=True)
    submit.add_argument("--no-wait", action="store_true", help="do not wait for the grading")
    submit.add_argument("--out", help="write a CSV of the results here")
    submit.add_argument("files", nargs="+")
    submit.set_defaults(run=cmd_submit)

    status = commands.add_parser("status", parents=[common, waiting], help="show submissions")
    status.add_argument("--wait", action="store_true", help="wait until they are graded")
    status.add_argument("ids", nargs="+", type=int)
    status.set_defaults(run=cmd_status)

    cancel = commands.add_parser("cancel", parents=[common], help="cancel queued or running ones")
    cancel.add_argument("ids", nargs="+", type=int)
    cancel.set_defaults(run=cmd_cancel)

    board = commands.add_parser("leaderboard", parents=[common], help="show the leaderboard")
    board.add_argument("--assignment", required=True)
    board.set_defaults(run=cmd_leaderboard)

    grades = commands.add_parser("grades", parents=[common], help="download grades (CSV)")
    grades.add_argument("--assignment", required=True)
    grades.add_argument("--out", help="file to write; standard output if omitted")
    grades.set_defaults(run=cmd_grades)

    batch = commands.add_parser("batch", parents=[common], help="submit a zip for students")
    batch.add_argument("--assignment", required=True)
    batch.add_argument("zip")
    batch.set_defaults(run=cmd_batch)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the client; returns the exit code."""
    out = out or sys.stdout
    args = build_parser().parse_args(argv)
    try:
        return args.run(Api(args.url, args.token), args, out)
    except ApiError as exc:
        out.write(f"Error ({exc.status or 'no answer'}): {terminal_safe(exc.message)}\n")
        return EXIT_ERROR
