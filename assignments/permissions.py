"""Who may see and do what, decided in one place for pages and the API alike.

Roles come from `Enrollment`: a student sees the published assignments of their courses and
their own submissions; an instructor manages their courses; a superuser sees everything.
An object a user may not see answers 404 (not 403), so ids of others' submissions leak nothing.
"""

from __future__ import annotations

from django.http import Http404
from rest_framework.permissions import BasePermission

from assignments.models import Assignment, Course, Enrollment, Submission


def role_in(user, course: Course | int) -> str | None:
    """The user's role in the course ("student", "instructor") or None if not enrolled."""
    if not user.is_authenticated:
        return None
    course_id = course if isinstance(course, int) else course.pk
    cache = getattr(user, "_course_roles", None)
    if cache is None:
        # One query per request for every role check that follows.
        cache = dict(Enrollment.objects.filter(user=user).values_list("course_id", "role"))
        user._course_roles = cache
    return cache.get(course_id)


def is_instructor(user, course: Course | int) -> bool:
    """True for the course's instructors and for superusers."""
    if user.is_authenticated and user.is_superuser:
        return True
    return role_in(user, course) == Enrollment.Role.INSTRUCTOR


def can_view_assignment(user, assignment: Assignment) -> bool:
    """Enrolled users see published assignments; instructors also see unpublished ones."""
    if is_instructor(user, assignment.course_id):
        return True
    return assignment.is_published and role_in(user, assignment.course_id) is not None


def can_view_submission(user, submission: Submission) -> bool:
    """The submitting student, the course's instructors and superusers."""
    if not user.is_authenticated:
        return False
    if submission.student_id == user.pk:
        return True
    return is_instructor(user, submission.assignment.course_id)


def assignment_for(user, assignment: Assignment) -> Assignment:
    """Return the assignment if the user may see it, else raise Http404."""
    if not can_view_assignment(user, assignment):
        raise Http404("No such assignment.")
    return assignment


def managed_assignment(user, assignment: Assignment) -> Assignment:
    """Return the assignment if the user is its course's instructor, else raise Http404."""
    if not is_instructor(user, assignment.course_id):
        raise Http404("No such assignment.")
    return assignment


def submission_for(user, submission: Submission) -> Submission:
    """Return the submission if the user may see it, else raise Http404."""
    if not can_view_submission(user, submission):
        raise Http404("No such submission.")
    return submission


def instructed_course_ids(user) -> list[int] | None:
    """Ids of the courses the user teaches; None means all (superuser)."""
    if user.is_superuser:
        return None
    role_in(user, 0)  # fills the cache
    return [cid for cid, role in user._course_roles.items() if role == Enrollment.Role.INSTRUCTOR]


class IsCourseInstructor(BasePermission):
    """DRF: the object (an Assignment or Submission) belongs to a course the user teaches."""

    message = "Only the course's instructors may do this."

    def has_object_permission(self, request, view, obj) -> bool:
        course_id = obj.course_id if isinstance(obj, Assignment) else obj.assignment.course_id
        return is_instructor(request.user, course_id)
