"""Instructor pages: students whose models are the same network, and two models side by side."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from assignments.models import Assignment, Submission
from assignments.permissions import managed_assignment
from assignments.selectors.copies import (
    MIN_NEAR_LAYERS,
    _fingerprint,
    copy_groups,
)
from grader.fingerprint import alignment, edit_distance, near_duplicate_limit


def _managed(request: HttpRequest, slug: str) -> Assignment:
    assignment = get_object_or_404(Assignment.objects.select_related("course"), slug=slug)
    return managed_assignment(request.user, assignment)


@login_required
@require_GET
def copies(request: HttpRequest, slug: str) -> HttpResponse:
    """Groups of students whose counted models are identical or nearly identical networks."""
    assignment = _managed(request, slug)
    report = copy_groups(assignment)
    return render(
        request,
        "assignments/manage/copies.html",
        {"assignment": assignment, "report": report, "min_layers": MIN_NEAR_LAYERS},
    )


def _side(assignment: Assignment, pk: int):
    submission = (
        Submission.objects.filter(assignment=assignment, pk=pk, model_config__isnull=False)
        .select_related("student")
        .first()
    )
    if submission is None:
        raise Http404("No such built submission of this assignment.")
    generation = submission.queued_at.timestamp() if submission.queued_at else 0
    found = _fingerprint(submission.pk, generation, submission.model_config)
    if found is None:
        raise Http404("This submission's model cannot be analysed.")
    return submission, found


@login_required
@require_GET
def copies_diff(request: HttpRequest, slug: str, first: int, second: int) -> HttpResponse:
    """Two submissions' canonical layer tables side by side, aligned by a minimal edit script."""
    assignment = _managed(request, slug)
    left, left_print = _side(assignment, first)
    right, right_print = _side(assignment, second)
    rows = []
    for op, i, j in alignment(left_print.tokens, right_print.tokens):
        rows.append(
            {
                "op": op,
                "left": left_print.layers[i] if i is not None else None,
                "right": right_print.layers[j] if j is not None else None,
            }
        )
    distance = edit_distance(left_print.tokens, right_print.tokens)
    longest = max(len(left_print.layers), len(right_print.layers)) or 1
    return render(
        request,
        "assignments/manage/copies_diff.html",
        {
            "assignment": assignment,
            "left": left,
            "right": right,
            "rows": rows,
            "distance": distance,
            "similarity": 1 - (distance or 0) / longest,
            "identical": left_print.digest == right_print.digest,
            "limit": near_duplicate_limit(longest),
        },
    )
