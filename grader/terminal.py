"""Text safe to print on a terminal: a student's names and messages never drive the terminal.

A file name, a layer name or an exception message is the student's text; printed raw, an escape
sequence in it (``\\x1b[2J``, ``\\x1b]0;title\\x07``) could clear an instructor's screen, retitle
the window or overwrite the lines above, and a newline or carriage return could forge a line of
the report. Every command that prints such text (`check_model`, `grade`, `grade_batch`, the API
client) passes it through `terminal_safe`. Standard library only: the API client uses it too.
"""

from __future__ import annotations

from typing import Any

# C0 and C1 control characters but tab, and DEL, written as `\x1b`.
_CONTROL_CHARACTERS = {
    code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F, *range(0x80, 0xA0)) if code != 0x09
}


def terminal_safe(text: Any) -> str:
    """`text` as one printable line: control characters (newlines too) shown as escapes."""
    return str(text).translate(_CONTROL_CHARACTERS)


def terminal_lines(text: Any) -> list[str]:
    """`text` split into its lines (a traceback, a multi-line message), each `terminal_safe`."""
    return [terminal_safe(line) for line in str(text).splitlines()]
