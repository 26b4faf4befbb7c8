"""The profile page: who I am, my courses, my API token."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods
from rest_framework.authtoken.models import Token

from assignments.models import Enrollment


@login_required
@require_http_methods(["GET", "POST"])
def profile(request: HttpRequest) -> HttpResponse:
    """Show the API token; POST creates it, or replaces it (the old one stops working)."""
    if request.method == "POST":
        with transaction.atomic():
            Token.objects.filter(user=request.user).delete()
            Token.objects.create(user=request.user)
        messages.success(request, "A new API token was created; the previous one no longer works.")
        return redirect("profile")
    token = Token.objects.filter(user=request.user).first()
    enrollments = Enrollment.objects.filter(user=request.user).select_related("course")
    return render(
        request,
        "assignments/profile.html",
        {
            "token": token,
            "courses": [_course_names(e) for e in enrollments],
            "site_url": request.build_absolute_uri("/").rstrip("/"),
        },
    )


def _course_names(enrollment: Enrollment) -> dict:
    """How the course's leaderboards name this user: the same function the leaderboard uses."""
    from assignments.selectors import names_hidden
    from assignments.selectors.standings import public_name

    hiding = [
        a.title for a in enrollment.course.assignments.filter(is_published=True) if names_hidden(a)
    ]
    return {
        "enrollment": enrollment,
        "shown_as": public_name(enrollment.display_name, enrollment.pseudonym, hidden=False),
        "hidden_as": public_name(enrollment.display_name, enrollment.pseudonym, hidden=True),
        "hiding": hiding,
    }
