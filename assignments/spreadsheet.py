"""CSV cells a spreadsheet opens as text, never as a formula (no Django: the client uses it).

A cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return (OWASP's list of formula
triggers) is evaluated by Excel, LibreOffice and Google Sheets; a student's display name or
file name such as `=HYPERLINK(...)` would run in the instructor's spreadsheet. Such a cell gets a
leading `'`, which spreadsheets show as text. Numbers are left alone: a negative score stays a
number.
"""

from __future__ import annotations

from typing import Any

FORMULA_TRIGGERS = frozenset({"=", "+", "-", "@", "\t", "\r"})


def spreadsheet_safe(value: Any) -> Any:
    """`value`, with a `'` in front when it is text a spreadsheet would take for a formula."""
    if isinstance(value, str) and value[:1] in FORMULA_TRIGGERS:
        return "'" + value
    return value
