"""Instructor pages: assignments and their rules, submissions, regrades, overrides, grades,
statistics and queue health. Every view checks that the user teaches the course (404 if not).
"""

from __future__ import annotations

import csv
import io

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from assignments import charts, selectors
from assignments.forms import (
    AssignmentForm,
    AssignmentImportForm,
    OverrideForm,
    SubmissionFilterForm,
)
from assignments.hbar import hbar_chart
from assignments.models import Assignment, Course, Result, Submission
from assignments.permissions import instructed_course_ids, is_instructor, managed_assignment
from assignments.rule_forms import EXPORT, SAVE, RuleSetEditor
from assignments.services import courses as course_services
from assignments.spreadsheet import spreadsheet_safe
from grader.errors import GraderError


def _managed(request: HttpRequest, slug: str) -> Assignment:
    assignment = get_object_or_404(Assignment.objects.select_related("course"), slug=slug)
    return managed_assignment(request.user, assignment)


def _managed_course(request: HttpRequest, slug: str) -> Course:
    course = get_object_or_404(Course, slug=slug)
    if not is_instructor(request.user, course):
        raise Http404("No such course.")
    return course


def _managed_submission(request: HttpRequest, pk: int) -> Submission:
    submission = get_object_or_404(
        Submission.objects.select_related("assignment__course", "result"), pk=pk
    )
    if not is_instructor(request.user, submission.assignment.course_id):
        raise Http404("No such submission.")
    return submission


@login_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    """The courses I teach, their assignments, and submission counts by status."""
    course_ids = instructed_course_ids(request.user)
    courses = (
        Course.objects.all() if course_ids is None else Course.objects.filter(pk__in=course_ids)
    )
    if not courses.exists() and not request.user.is_superuser:
        raise Http404("You teach no course.")
    assignments = (
        Assignment.objects.filter(course__in=courses)
        .select_related("course")
        .order_by("course__title", "title")
    )
    assignments = assignments.annotate(
        n_submissions=Count("submissions"),
        n_active=Count("submissions", filter=Q(submissions__status__in=Submission.OPEN_STATUSES)),
    )
    from assignments.selectors.datasets import dataset_rows

    return render(
        request,
        "assignments/manage/dashboard.html",
        {"courses": courses, "assignments": assignments, "dataset_rows": dataset_rows(assignments)},
    )


@login_required
@require_http_methods(["GET", "POST"])
def assignment_create(request: HttpRequest, course_slug: str) -> HttpResponse:
    """Create an assignment in a course I teach."""
    course = _managed_course(request, course_slug)
    return _assignment_page(request, course=course, assignment=None)


@login_required
@require_http_methods(["GET", "POST"])
def assignment_edit(request: HttpRequest, slug: str) -> HttpResponse:
    """Edit an assignment; a changed rule set bumps its version."""
    assignment = _managed(request, slug)
    return _assignment_page(request, course=assignment.course, assignment=assignment)


def _assignment_page(
    request: HttpRequest, *, course: Course, assignment: Assignment | None
) -> HttpResponse:
    """The assignment form: its settings, and the rule rows with their buttons.

    Save validates both and calls one service. Export downloads the rows as YAML. Any other
    button (add, remove, move a rule, change its id, import YAML, fill from a preset) returns the
    page rebuilt and unsaved.
    """
    stored_rules = assignment.rules_yaml if assignment else ""
    if request.method == "GET":
        form = AssignmentForm(instance=assignment)
        editor = RuleSetEditor.from_text(stored_rules)
        return _render_assignment_page(request, form, editor, course, assignment)

    form = AssignmentForm(request.POST, instance=assignment)
    editor = RuleSetEditor(request.POST, request.FILES)
    action = editor.pending_action
    if action not in (SAVE, EXPORT):
        update = editor.apply()
        return _render_assignment_page(
            request, form.redisplayed(update.settings), update.editor, course, assignment
        )
    if action == EXPORT:
        if editor.is_valid():
            name = form["slug"].value() or (assignment.slug if assignment else "") or "assignment"
            response = HttpResponse(editor.ruleset.to_yaml(), content_type="application/yaml")
            response["Content-Disposition"] = f'attachment; filename="{slugify(name)}-rules.yaml"'
            return response
        return _render_assignment_page(request, form, editor, course, assignment)

    form_ok = form.is_valid()  # both validated, so that every error shows at once
    if form_ok and editor.is_valid():
        fields = {**form.service_fields(), "rules_yaml": editor.rules_yaml(stored_rules)}
        try:
            if assignment is None:
                saved = course_services.create_assignment(
                    course=course,
                    actor=request.user,
                    slug=form.cleaned_data["slug"] or slugify(form.cleaned_data["title"]),
                    **fields,
                )
            else:
                # The form must not save the instance itself: the service validates and audits.
                fresh = Assignment.objects.get(pk=assignment.pk)
                saved = course_services.update_assignment(
                    assignment=fresh, actor=request.user, **fields
                )
        except course_services.AssignmentInvalid as exc:
            if exc.errors:
                form.add_service_errors(exc.errors, editor)
            else:
                form.add_error(None, exc.message)
        except GraderError as exc:
            form.add_error(None, exc.message)
        else:
            if assignment is None:
                messages.success(request, f"Assignment `{saved.slug}` created.")
                return redirect("manage_submissions", slug=saved.slug)
            if saved.rules_version != assignment.rules_version:
                messages.warning(
                    request,
                    f"Rules changed: now version {saved.rules_version}. Earlier results were "
                    "graded under older rules; regrade to apply the new ones.",
                )
            messages.success(request, f"Assignment `{saved.slug}` saved.")
            return redirect("assignment_edit", slug=saved.slug)
    return _render_assignment_page(request, form, editor, course, assignment)


def _render_assignment_page(
    request: HttpRequest,
    form: AssignmentForm,
    editor: RuleSetEditor,
    course: Course,
    assignment: Assignment | None,
) -> HttpResponse:
    return render(
        request,
        "assignments/manage/assignment_form.html",
        {
            "form": form,
            "editor": editor,
            "course": course,
            "assignment": assignment,
            "rule_reference": rule_reference(),
        },
    )


def rule_reference() -> list[dict]:
    """Every rule the engine knows, with its parameters, shown beside the rules editor."""
    from grader.rules import describe_rules

    return describe_rules()


@login_required
@require_GET
def assignment_export(request: HttpRequest, slug: str) -> HttpResponse:
    """The assignment's settings and rules as a YAML download."""
    assignment = _managed(request, slug)
    response = HttpResponse(
        course_services.export_assignment_yaml(assignment), content_type="application/yaml"
    )
    response["Content-Disposition"] = f'attachment; filename="{assignment.slug}.yaml"'
    return response


@login_required
@require_http_methods(["GET", "POST"])
def assignment_import(request: HttpRequest, course_slug: str) -> HttpResponse:
    """Create or update an assignment from an exported YAML file."""
    course = _managed_course(request, course_slug)
    form = AssignmentImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            assignment = course_services.import_assignment_yaml(
                course=course, actor=request.user, text=form.cleaned_data["text"]
            )
        except GraderError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, f"Assignment `{assignment.slug}` imported.")
            return redirect("assignment_edit", slug=assignment.slug)
    return render(request, "assignments/manage/import.html", {"form": form, "course": course})


@login_required
@require_GET
def submissions_table(request: HttpRequest, slug: str) -> HttpResponse:
    """All submissions of an assignment with filters, sorting and actions."""
    assignment = _managed(request, slug)
    filters = SubmissionFilterForm(request.GET or None)
    values = filters.cleaned_data if filters.is_valid() else {}
    qs = selectors.submissions_table(
        assignment=assignment,
        status=values.get("status", ""),
        reason=values.get("reason", ""),
        student=values.get("student", ""),
        sort=values.get("sort") or "newest",
    )
    page = Paginator(qs, 50).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "assignments/manage/submissions.html",
        {
            "assignment": assignment,
            "filters": filters,
            "page": page,
            "query": query.urlencode(),
            # What "Regrade all" would queue again (regrade_assignment skips cancelled ones).
            "regradable": assignment.submissions.exclude(
                status=Submission.Status.CANCELLED
            ).count(),
        },
    )


@login_required
@require_POST
def regrade_one(request: HttpRequest, pk: int) -> HttpResponse:
    """Regrade one submission under the current rules."""
    submission = _managed_submission(request, pk)
    from assignments.services.grading import regrade_submission

    try:
        regrade_submission(submission_id=submission.pk, actor=request.user)
    except GraderError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Submission #{submission.pk} queued for regrading.")
    return redirect("submission_detail", pk=submission.pk)


@login_required
@require_POST
def regrade_all(request: HttpRequest, slug: str) -> HttpResponse:
    """Regrade every submission of an assignment."""
    assignment = _managed(request, slug)
    from assignments.services.grading import regrade_assignment

    count = regrade_assignment(assignment_id=assignment.pk, actor=request.user)
    noun = "submission" if count == 1 else "submissions"
    messages.success(request, f"{count:,} {noun} queued for regrading.")
    return redirect("manage_submissions", slug=assignment.slug)


@login_required
@require_POST
def cancel(request: HttpRequest, pk: int) -> HttpResponse:
    """Cancel a queued or running submission."""
    submission = _managed_submission(request, pk)
    from assignments.services.grading import cancel_submission

    try:
        cancel_submission(submission_id=submission.pk, actor=request.user)
    except GraderError as exc:
        messages.error(request, exc.message)
    else:
        messages.info(request, f"Submission #{submission.pk} cancelled.")
    return redirect("submission_detail", pk=submission.pk)


@login_required
@require_POST
def override(request: HttpRequest, pk: int) -> HttpResponse:
    """Set or clear a manual score, with the reason recorded in the audit trail."""
    submission = _managed_submission(request, pk)
    result = Result.objects.filter(submission=submission).first()
    form = OverrideForm(request.POST)
    if result is None:
        messages.error(request, f"Submission #{submission.pk} has no result to override yet.")
    elif not form.is_valid():
        errors = "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items())
        messages.error(request, f"Override not saved. {errors}")
    else:
        try:
            course_services.override_score(
                result=result,
                actor=request.user,
                score=form.cleaned_data["score"],
                reason=form.cleaned_data["reason"],
                share_reason=form.cleaned_data["share_reason"],
            )
        except GraderError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"Score of submission #{submission.pk} updated.")
    return redirect("submission_detail", pk=submission.pk)


@login_required
@require_GET
def grades_csv(request: HttpRequest, slug: str) -> HttpResponse:
    """One row per student: standing submission, a column per rule, accuracy, score, late."""
    assignment = _managed(request, slug)
    return grades_response(assignment)


def grades_response(assignment: Assignment) -> HttpResponse:
    """The grades CSV as a download (shared with the API)."""
    table = selectors.grade_table(assignment)
    # Written to a buffer, then handed over once: a response's write() per row costs more.
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(table.header)
    for row in table.rows:
        # A leading =, +, -, @, tab or carriage return would make a spreadsheet evaluate a
        # display name as a formula (OWASP's list of triggers).
        writer.writerow([spreadsheet_safe(v) for v in row])
    response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{assignment.slug}-grades.csv"'
    return response


@login_required
@require_GET
def stats(request: HttpRequest, slug: str) -> HttpResponse:
    """Accuracy histogram, pass rate per rule, submissions over time."""
    assignment = _managed(request, slug)
    data = selectors.assignment_stats(assignment)
    pass_rates = [
        (rule, passed / graded if graded else 0.0, passed, graded)
        for rule, passed, graded in data.rule_pass_rates
    ]
    return render(
        request,
        "assignments/manage/stats.html",
        {
            "assignment": assignment,
            "stats": data,
            "pass_rates": pass_rates,
            "histogram": charts.accuracy_histogram(data.accuracies),
            "pass_chart": hbar_chart(
                [rule for rule, *_ in pass_rates],
                [rate for _, rate, *_ in pass_rates],
                title="Pass rate per rule",
                x_max=1.0,
                css_class="pass-rates",
            ),
            "histogram_rows": _histogram_rows(data.accuracies),
            "per_day_chart": charts.bar_chart(
                [day.isoformat() for day, _ in data.per_day],
                [n for _, n in data.per_day],
                title="Submissions per day",
                x_label="day",
                y_label="submissions",
                css_class="per-day",
            ),
            "audit": selectors.recent_audit(assignment),
        },
    )


def _histogram_rows(accuracies: list[float], bins: int = 10) -> list[tuple[str, int]]:
    """The accuracy histogram's bins as text rows: `("70 % to 80 %", 12)` (the last bin
    includes 100 %, as the chart's)."""
    counts = charts.histogram_counts(accuracies, bins, 0.0, 1.0)
    edges = [round(100 * i / bins) for i in range(bins + 1)]
    return [(f"{edges[i]} % to {edges[i + 1]} %", n) for i, n in enumerate(counts)]


@login_required
@require_GET
def queue_health(request: HttpRequest) -> HttpResponse:
    """Queue depths and workers (`queue_stats()`), and per course taught who holds the queue
    now, the oldest wait and the projected time to drain (`queue_order.course_queues`)."""
    course_ids = instructed_course_ids(request.user)
    if course_ids == [] and not request.user.is_superuser:
        raise Http404("You teach no course.")
    from assignments.selectors import queue_health as health
    from assignments.selectors.datasets import dataset_rows
    from assignments.selectors.queue_order import course_queues
    from assignments.selectors.queue_stats import queue_stats

    workers = health.workers()
    return render(
        request,
        "assignments/manage/queue.html",
        {
            "stats": queue_stats(),
            "courses": course_queues(course_ids),
            "dataset_rows": dataset_rows(),
            "health": {
                "queues": health.workers_by_queue(workers),
                "workers": workers,
                "running": health.running_stages(),
                "errors": health.recent_infrastructure_errors(request.user),
            },
        },
    )
