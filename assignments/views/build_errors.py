"""A submission's message as a student reads it: its first line as a sentence, and a
traceback kept line by line, naming the student's own file, with the failing line shown in
its source and highlighted.

The sandbox builds a module under a generated name (`SANDBOX_MODULE`); the student knows their
file by the name they uploaded, so the message says that name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from assignments.models import Submission

SANDBOX_MODULE = "submission.py"  # workers.pipeline.build.SUBMISSION_MODULE
# The sentence `workers.runner.error_hints` ends a build error with: shown as prose, not code.
_HINT = re.compile(r"^(Did you mean `.+`\?|`[\w.]+` is not installed in the grader's sandbox\..*)$")
CONTEXT_LINES = 2
MAX_SOURCE_BYTES = 512 * 1024  # grader.python_source.MAX_SOURCE_BYTES: uploads are no larger


@dataclass(frozen=True)
class Line:
    """One line of a traceback or of the source, and whether it is the failing one."""

    number: int | None
    text: str
    failing: bool = False


@dataclass(frozen=True)
class MessageView:
    """A message split for the page: a sentence, then the traceback and source, if any."""

    summary: str
    details: tuple[Line, ...]
    hint: str
    file_name: str
    failing_line: int | None
    source: tuple[Line, ...]

    @property
    def has_details(self) -> bool:
        return bool(self.details)


def _frame_pattern(name: str) -> re.Pattern[str]:
    return re.compile(r'^\s*File "' + re.escape(name) + r'", line (\d+)')


def _source_excerpt(submission: Submission, number: int) -> tuple[Line, ...]:
    try:
        with submission.file.open("rb") as handle:
            data = handle.read(MAX_SOURCE_BYTES + 1)
    except (OSError, ValueError):
        return ()
    lines = data[:MAX_SOURCE_BYTES].decode("utf-8", errors="replace").splitlines()
    if not 1 <= number <= len(lines):
        return ()
    first, last = max(number - CONTEXT_LINES, 1), min(number + CONTEXT_LINES, len(lines))
    return tuple(
        Line(number=n, text=lines[n - 1], failing=n == number) for n in range(first, last + 1)
    )


def message_view(submission: Submission, message: str) -> MessageView:
    """`message` (already as the viewer may read it) split and annotated for the page.

    Args:
        submission: whose message it is (its file name and, for a module, its source).
        message: the text to show.

    Returns:
        The first line as `summary`; the other lines as `details` with the student's file
        name in place of the sandbox's, the failing frame's code line flagged; a last line of
        advice ("Did you mean ...?") as `hint`; and, for a module, the source lines around
        the failing line.
    """
    is_module = submission.file_format == Submission.FileFormat.PYTHON
    name = submission.original_name if is_module else ""
    if name:
        message = message.replace(f'File "{SANDBOX_MODULE}"', f'File "{name}"').replace(
            f"`{SANDBOX_MODULE}`", f"`{name}`"
        )
    summary, _, rest = message.partition("\n")
    raw = rest.splitlines()
    hint = raw.pop() if raw and _HINT.match(raw[-1]) else ""
    frame = _frame_pattern(name or SANDBOX_MODULE)
    frames = [i for i, text in enumerate(raw) if frame.match(text)]
    failing_index = failing_line = None
    if frames:
        last = frames[-1]
        match = frame.match(raw[last])
        failing_line = int(match.group(1)) if match else None
        code = last + 1
        if code < len(raw) and not raw[code].lstrip().startswith("File "):
            failing_index = code
    details = tuple(
        Line(number=None, text=text, failing=i == failing_index) for i, text in enumerate(raw)
    )
    source: tuple[Line, ...] = ()
    if name and failing_line is not None:
        source = _source_excerpt(submission, failing_line)
    return MessageView(
        summary=summary,
        details=details,
        hint=hint,
        file_name=name,
        failing_line=failing_line,
        source=source,
    )
