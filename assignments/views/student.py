"""Pages every enrolled user sees: home, assignment, upload, submission, leaderboard."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.html import format_html
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from assignments import selectors
from assignments.forms import UploadForm
from assignments.markdown import render_markdown
from assignments.models import Assignment, Submission
from assignments.permissions import assignment_for, is_instructor, submission_for
from assignments.presentation import (
    describe_assignment_rules,
    leaderboard_lines,
    shown_message,
    submission_context,
)
from assignments.services.grading import InvalidTransition, cancel_submission
from assignments.services.submissions import (
    DuplicateSubmission,
    SubmissionRejected,
    create_submission,
    submissions_left_today,
)
from assignments.views.build_errors import message_view


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """My courses and their assignments."""
    from assignments.selectors.best import best_by_assignment

    grouped = selectors.courses_for_user(request.user)
    best = best_by_assignment(
        student=request.user, assignments=[a for items in grouped.values() for a in items]
    )
    courses = [
        {
            "course": course,
            "rows": [{"assignment": a, "best": best.get(a.pk)} for a in items],
            "teaches": is_instructor(request.user, course),
        }
        for course, items in grouped.items()
    ]
    return render(request, "assignments/home.html", {"courses": courses})


def _assignment_page(
    request: HttpRequest, assignment: Assignment, form: UploadForm
) -> HttpResponse:
    from assignments.selectors.best import best_by_assignment

    user = request.user
    context = {
        "assignment": assignment,
        "best": best_by_assignment(student=user, assignments=[assignment]).get(assignment.pk),
        "description_html": render_markdown(assignment.description),
        "rules": describe_assignment_rules(
            assignment.rules_yaml,
            trains=assignment.mode != "evaluate",
            dataset=assignment.dataset,
        ),
        "form": form,
        "left_today": submissions_left_today(assignment=assignment, student_id=user.pk),
        "submissions": selectors.student_submissions(assignment=assignment, student=user)[:50],
        "teaches": is_instructor(user, assignment.course_id),
        "max_upload_bytes": settings.GRADER_MAX_UPLOAD_BYTES,
    }
    return render(request, "assignments/assignment_detail.html", context)


@login_required
@require_GET
def supported_layers(request: HttpRequest, slug: str) -> HttpResponse:
    """The layer classes the grader analyses, and the shapes the assignment's dataset needs."""
    from grader.datasets import get_source
    from grader.errors import DatasetUnavailable
    from grader.layer_arguments import accepted_objects
    from grader.layers import supported_classes

    assignment = assignment_for(
        request.user, get_object_or_404(Assignment.objects.select_related("course"), slug=slug)
    )
    try:
        dataset = get_source(assignment.dataset)
    except DatasetUnavailable:
        dataset = None
    context = {
        "assignment": assignment,
        "layers": supported_classes(),
        "dataset": dataset,
        "arguments": accepted_objects(),
        "frozen_allowed": _frozen_layers_allowed(assignment),
    }
    return render(request, "assignments/supported_layers.html", context)


def _frozen_layers_allowed(assignment: Assignment) -> bool:
    """Whether `trainable=False` passes: an evaluate-only assignment, or its rules allow it."""
    from grader.errors import GraderError
    from grader.rules import implied_rules, load_ruleset

    try:
        ruleset = load_ruleset(assignment.rules_yaml)
    except GraderError:
        return True  # no rule can be checked then; the instructor's form shows the error
    listed = any(spec.id == "all_layers_trainable" for spec in ruleset.rules)
    return not listed and not implied_rules(ruleset, trains=assignment.mode != "evaluate")


@login_required
@require_http_methods(["GET", "POST"])
def assignment_detail(request: HttpRequest, slug: str) -> HttpResponse:
    """The assignment: description, rules in plain words, quota, upload form, my submissions."""
    assignment = assignment_for(
        request.user, get_object_or_404(Assignment.objects.select_related("course"), slug=slug)
    )
    if request.method != "POST":
        return _assignment_page(request, assignment, UploadForm())
    form = UploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return _assignment_page(request, assignment, form)
    upload = form.cleaned_data["file"]
    try:
        submission = create_submission(
            assignment=assignment, student=request.user, filename=upload.name, data=upload.read()
        )
    except DuplicateSubmission as exc:
        url = reverse("submission_detail", args=[exc.existing.pk])
        messages.warning(
            request,
            format_html(
                '{} <a href="{}">See submission #{}</a>.', exc.message, url, exc.existing.pk
            ),
        )
        return redirect("assignment_detail", slug=slug)
    except SubmissionRejected as exc:
        form.add_error("file", exc.message)
        return _assignment_page(request, assignment, form)
    messages.success(
        request, f"Submission #{submission.pk} `{submission.original_name}` is queued."
    )
    return redirect("submission_detail", pk=submission.pk)


def _visible_submission(request: HttpRequest, pk: int) -> Submission:
    try:
        submission = selectors.submission_detail(pk)
    except Submission.DoesNotExist:
        raise Http404("No such submission.") from None
    return submission_for(request.user, submission)


def _live_context(request: HttpRequest, submission: Submission) -> dict:
    context = submission_context(submission)
    context["teaches"] = is_instructor(request.user, submission.assignment.course_id)
    message = shown_message(submission, teaches=context["teaches"])
    context["message_view"] = message_view(submission, message) if message else None
    if context["teaches"]:
        # Why the built network was refused: the student's page says so in a sentence only.
        result = context["result"]
        built = ((result.checks if result else None) or {}).get("built_model") or {}
        context["built_model_differences"] = list(built.get("differences") or [])
    # The student's own Cancel button (instructors have theirs among the page's actions).
    context["student_can_cancel"] = (
        submission.student_id == request.user.pk and not context["teaches"]
    )
    return context


@login_required
@require_GET
def submission_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """A submission's stages, curves, rule report, layer table and log; updates itself live."""
    submission = _visible_submission(request, pk)
    return render(request, "assignments/submission_detail.html", _live_context(request, submission))


@login_required
@require_GET
def submission_fragment(request: HttpRequest, pk: int) -> HttpResponse:
    """The live part of the submission page, polled every 2 s while grading runs."""
    submission = _visible_submission(request, pk)
    response = render(
        request, "assignments/_submission_live.html", _live_context(request, submission)
    )
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def submission_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    """Cancel a queued or running submission: its student, or the course's instructors.

    Anyone else gets 404, as for viewing it. A running sandbox is stopped within seconds; the
    submission still counts toward the daily quota.
    """
    submission = _visible_submission(request, pk)
    try:
        cancel_submission(submission_id=submission.pk, actor=request.user)
    except InvalidTransition as exc:
        messages.error(request, exc.message)
    else:
        counted = "" if submission.quota_exempt else " It still counts toward today's limit."
        messages.info(request, f"Submission #{submission.pk} cancelled.{counted}")
    return redirect("submission_detail", pk=submission.pk)


@login_required
@require_GET
def submission_file(request: HttpRequest, pk: int) -> FileResponse:
    """Download the submitted file (the student's own, or any for the course's instructors)."""
    submission = _visible_submission(request, pk)
    return FileResponse(
        submission.file.open("rb"),
        as_attachment=True,
        filename=submission.original_name,
        content_type="application/octet-stream",
    )


@login_required
@require_GET
def my_submissions(request: HttpRequest) -> HttpResponse:
    """All my submissions, newest first."""
    from assignments.selectors.best import best_by_assignment

    submissions = (
        Submission.objects.filter(student=request.user)
        .select_related("assignment__course", "result")
        .defer(*selectors.HEAVY_SUBMISSION_FIELDS, *selectors.HEAVY_RESULT_FIELDS)
        .order_by("-created_at")[:200]
    )
    assignments = list(selectors.assignments_for_user(request.user))
    best = best_by_assignment(student=request.user, assignments=assignments)
    standings = [{"assignment": a, "best": best[a.pk]} for a in assignments if a.pk in best]
    return render(
        request,
        "assignments/my_submissions.html",
        {"submissions": submissions, "standings": standings},
    )


@login_required
@require_GET
def leaderboard(request: HttpRequest, slug: str) -> HttpResponse:
    """Ranked best (or latest) passing submission per student, 50 a page; the viewer's own
    rank is stated on every page with a link to the page that shows it."""
    assignment = assignment_for(
        request.user, get_object_or_404(Assignment.objects.select_related("course"), slug=slug)
    )
    board = selectors.leaderboard_page(
        assignment, viewer=request.user, page=request.GET.get("page")
    )
    return render(
        request,
        "assignments/leaderboard.html",
        {
            "assignment": assignment,
            "lines": leaderboard_lines(board.entries),
            "page": board.page,
            "you": leaderboard_lines([board.viewer])[0] if board.viewer else None,
            "your_page": board.viewer_page,
            "rule": selectors.ranking_rule(assignment),
            "names_hidden": selectors.names_hidden(assignment),
        },
    )
