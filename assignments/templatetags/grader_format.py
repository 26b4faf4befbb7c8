"""Template filters that show numbers for people: units, thousands separators, marks.

The functions live in `assignments.formatting` (plain Python, shared with
`assignments.presentation`); this library registers them under the same names.
JSON answers carry the exact numbers; pages round them for reading.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.template.defaulttags import CsrfTokenNode

from assignments import presentation
from assignments.formatting import (
    REASON_LABELS,
    STATUS_LABELS,
    audit_details,
    duration,
    inline_code,
    number,
    percent,
    shape,
    status_badge,
    status_badge_html,
    verdict_mark,
)
from assignments.permissions import instructed_course_ids

__all__ = ["REASON_LABELS", "STATUS_LABELS", "register", "status_badge_html"]

register = template.Library()
register.filter("percent", percent)
register.filter("number", number)
register.filter("inline_code", inline_code)
register.filter("audit_details", audit_details)
register.filter("duration", duration)
register.filter("shape", shape)
register.filter("verdict_mark", verdict_mark)
register.filter("status_badge", status_badge)


@register.filter
def get_item(mapping: Any, key: Any) -> Any:
    """`mapping[key]` in a template; None when absent."""
    try:
        return mapping.get(key)
    except AttributeError:
        return None


@register.simple_tag
def teaches_any(user) -> bool:
    """Whether to show the instructor menu: the user teaches a course (or is a superuser)."""
    if not user.is_authenticated:
        return False
    ids = instructed_course_ids(user)
    return ids is None or bool(ids)


@register.simple_tag(takes_context=True)
def submission_rows(context, page) -> list[str]:
    """The rows of the instructor's submissions table as HTML, formatted once in Python:
    `{% submission_rows page as rows %}` (see `assignments.presentation`)."""
    csrf_input = CsrfTokenNode().render(context)  # what {% csrf_token %} would write
    return [
        presentation.submission_row_html(row, csrf_input)
        for row in presentation.submission_rows(page)
    ]
