"""Numbers and marks for people: units, thousands separators, pass/fail marks, status badges.

Plain functions: the template filters of `templatetags.grader_format` and the presentation
helpers (`assignments.presentation`) both use them. JSON answers carry the exact numbers; pages
round them for reading.
"""

from __future__ import annotations

import re
from typing import Any

from django.utils.html import escape, format_html
from django.utils.safestring import mark_safe

from assignments.models import Submission


def percent(value: Any, digits: int = 2) -> str:
    """0.91234 -> "91.23 %"; blank for None."""
    if value is None or value == "":
        return ""
    return f"{float(value) * 100:.{int(digits)}f} %"


def number(value: Any) -> str:
    """Integers with thousands separators; floats to 4 significant digits."""
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, list | tuple):
        return " \u00d7 ".join(number(v) for v in value)
    return str(value)


_QUOTED = re.compile(r"`([^`\n]+)`")


def inline_code(text: Any) -> str:
    """A message as HTML: escaped, with its `backticked` names (layers, rules, files) as code.

    The grader's messages quote names in backticks (Markdown's convention), and the same text
    goes to the API and the command line, so pages turn them into `<code>` rather than show
    the backticks. The text is escaped first: a name a student chose stays inert.
    """
    if text is None:
        return ""
    return mark_safe(_QUOTED.sub(r"<code>\1</code>", escape(str(text))))  # noqa: S308


def audit_details(details: Any) -> str:
    """An audit entry's details for people: `key: value` lines, lists joined with commas, and
    long or multi-line text (a previous rule set) folded away under its key."""
    if not isinstance(details, dict):
        return "" if details in (None, "") else escape(str(details))
    lines = []
    for key, value in details.items():
        if isinstance(value, list | tuple):
            text = ", ".join(str(item) for item in value)
        else:
            text = "\u2013" if value is None else str(value)
        if "\n" in text or len(text) > 80:
            lines.append(
                format_html("<details><summary>{}</summary><pre>{}</pre></details>", key, text)
            )
        else:
            lines.append(format_html("{}: {}", key, text))
    return mark_safe("<br>".join(lines))  # noqa: S308 - every part is escaped by format_html


def duration(seconds: Any) -> str:
    """Seconds for people: "850 ms", "12.3 s", "4 min 05 s", "1 h 02 min"."""
    if seconds is None or seconds == "":
        return ""
    s = float(seconds)
    if s < 1:
        return f"{s * 1000:,.0f} ms"
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60):02d} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"


def shape(value: Any) -> str:
    """An output shape without the batch axis: [32, 32, 16] -> "32 x 32 x 16" (with x signs)."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        if value and isinstance(value[0], list | tuple):
            return ", ".join(shape(v) for v in value)
        return " \u00d7 ".join("?" if v is None else f"{v:,}" for v in value)
    return str(value)


def verdict_mark(passed: bool | None) -> str:
    """A pass/fail/pending mark with its word (the colour alone must not carry meaning)."""
    if passed is True:
        return mark_safe('<span class="mark pass" title="passed">✔ pass</span>')
    if passed is False:
        return mark_safe('<span class="mark fail" title="failed">✘ fail</span>')
    return mark_safe('<span class="mark pending" title="not decided yet">… pending</span>')


def status_badge(submission) -> str:
    """The submission's status as a badge with its reason."""
    return status_badge_html(submission.status, submission.reason)


STATUS_LABELS = dict(Submission.Status.choices)
REASON_LABELS = dict(Submission.Reason.choices)


def status_badge_html(status: str, reason: str) -> str:
    """`status_badge` from the two values (for rows read without model instances)."""
    label = STATUS_LABELS.get(status, status)
    if reason:
        label = f"{label}: {REASON_LABELS.get(reason, reason)}"
    return format_html('<span class="badge status-{}">{}</span>', status, label)
