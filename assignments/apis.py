"""REST API v1 (DRF): same permissions as the pages, token or session authentication.

Errors have one shape, `{"error": {"kind", "message"}}`, produced by `api_exception_handler`:
the single place where domain errors become HTTP status codes.
"""

from __future__ import annotations

from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.exceptions import APIException, NotAuthenticated, ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.throttling import UserRateThrottle
from rest_framework.views import APIView, exception_handler

from assignments import selectors, serializers
from assignments.models import Assignment, Submission
from assignments.permissions import assignment_for, managed_assignment, submission_for
from assignments.services.grading import InvalidTransition, cancel_submission
from assignments.services.submissions import (
    BatchRejected,
    DuplicateSubmission,
    LateSubmission,
    NotEnrolled,
    QuotaExceeded,
    SubmissionRejected,
    TooManyWaiting,
    create_batch,
    create_submission,
)
from grader.errors import GraderError

# Domain error class -> HTTP status. Order matters: the first matching class wins.
STATUS_BY_ERROR: tuple[tuple[type[GraderError], int], ...] = (
    (QuotaExceeded, status.HTTP_429_TOO_MANY_REQUESTS),
    (TooManyWaiting, status.HTTP_429_TOO_MANY_REQUESTS),
    (DuplicateSubmission, status.HTTP_409_CONFLICT),
    (InvalidTransition, status.HTTP_409_CONFLICT),
    (NotEnrolled, status.HTTP_403_FORBIDDEN),
    (LateSubmission, status.HTTP_403_FORBIDDEN),
    (SubmissionRejected, status.HTTP_400_BAD_REQUEST),
    (GraderError, status.HTTP_400_BAD_REQUEST),
)


def _error_body(error_code: str, message: str, **extra) -> dict:
    return {"error": {"kind": error_code, "message": message, **extra}}


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    """Map domain errors and DRF's own to `{"error": {"kind", "message"}}` answers."""
    if isinstance(exc, GraderError):
        code = next(code for cls, code in STATUS_BY_ERROR if isinstance(exc, cls))
        extra = {}
        if isinstance(exc, DuplicateSubmission):
            request = context.get("request")
            path = reverse("api-submission-detail", args=[exc.existing.pk])
            extra["existing"] = {
                "id": exc.existing.pk,
                "url": request.build_absolute_uri(path) if request else path,
            }
        if isinstance(exc, BatchRejected):
            extra["problems"] = exc.problems
        if isinstance(exc, TooManyWaiting):
            extra["limit"] = exc.limit
            extra["unfinished"] = exc.unfinished
            extra["oldest_waiting"] = (
                {"id": exc.oldest_waiting, "position": exc.position}
                if exc.oldest_waiting is not None
                else None
            )
        return Response(_error_body(exc.error_code, exc.message, **extra), status=code)
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, ValidationError):
        message = "; ".join(_flatten(exc.detail))
        response.data = _error_body("invalid_request", message, fields=exc.detail)
    elif isinstance(exc, APIException):
        error_code = "not_authenticated" if isinstance(exc, NotAuthenticated) else exc.default_code
        response.data = _error_body(error_code, str(exc.detail))
    elif isinstance(exc, Http404):
        response.data = _error_body("not_found", "Not found.")
    return response


def _flatten(detail, prefix: str = "") -> list[str]:
    if isinstance(detail, dict):
        return [m for key, value in detail.items() for m in _flatten(value, f"{prefix}{key}: ")]
    if isinstance(detail, list):
        return [m for item in detail for m in _flatten(item, prefix)]
    return [f"{prefix}{detail}"]


class UploadRateThrottle(UserRateThrottle):
    """Uploads (POST of a submission or a batch) per user, in their own scope `uploads`.

    Separate from the read rate (`user`): the rate is `API_THROTTLE_UPLOADS` (default 30/hour),
    counted per user (per address when anonymous), read at request time. Past it the answer
    is 429 with a `Retry-After` header. Other methods of the same views are not counted here.
    """

    scope = "uploads"

    def get_rate(self) -> str | None:
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def allow_request(self, request, view) -> bool:
        if request.method != "POST":
            return True
        return super().allow_request(request, view)


#: The views that take uploads: the site-wide throttles plus the upload scope.
UPLOAD_THROTTLES = [*api_settings.DEFAULT_THROTTLE_CLASSES, UploadRateThrottle]


def _assignment(request: Request, slug: str) -> Assignment:
    assignment = get_object_or_404(Assignment.objects.select_related("course"), slug=slug)
    return assignment_for(request.user, assignment)


def _managed(request: Request, slug: str) -> Assignment:
    assignment = get_object_or_404(Assignment.objects.select_related("course"), slug=slug)
    return managed_assignment(request.user, assignment)


@extend_schema_view(get=extend_schema(summary="List the assignments of my courses"))
class AssignmentListApi(generics.ListAPIView):
    """Assignments of my courses."""

    serializer_class = serializers.AssignmentSerializer

    def get_queryset(self):
        return selectors.assignments_for_user(self.request.user)


@extend_schema_view(get=extend_schema(summary="Read one assignment, its rules and my quota"))
class AssignmentDetailApi(generics.RetrieveAPIView):
    """One assignment, with the submissions I have left today and its rules in plain words."""

    serializer_class = serializers.AssignmentDetailSerializer
    lookup_field = "slug"

    def get_object(self):
        return _assignment(self.request, self.kwargs["slug"])


@extend_schema_view(get=extend_schema(summary="List my submissions to an assignment"))
class SubmissionListCreateApi(generics.ListCreateAPIView):
    """GET: my submissions (all of them for the course's instructors). POST: submit a file."""

    parser_classes = [MultiPartParser, FormParser]
    throttle_classes = UPLOAD_THROTTLES

    def get_serializer_class(self):
        if self.request.method == "POST":
            return serializers.SubmissionCreateSerializer
        return serializers.SubmissionListSerializer

    def get_queryset(self):
        assignment = _assignment(self.request, self.kwargs["slug"])
        return selectors.visible_submissions(user=self.request.user, assignment=assignment)

    @extend_schema(
        summary="Submit a model file for grading",
        request=serializers.SubmissionCreateSerializer,
        responses={
            201: serializers.SubmissionDetailSerializer,
            400: OpenApiResponse(serializers.ErrorSerializer, "Rejected upload"),
            403: OpenApiResponse(serializers.ErrorSerializer, "Not enrolled, or late"),
            409: OpenApiResponse(serializers.ErrorSerializer, "Identical to an earlier file"),
            429: OpenApiResponse(
                serializers.ErrorSerializer,
                "Daily quota used (`quota_exceeded`), as many unfinished submissions as the"
                " assignment allows at once (`too_many_waiting`, with `limit` and the"
                " `oldest_waiting` submission's `id` and `position`), or too many uploads per"
                " hour (`throttled`, with Retry-After)",
            ),
        },
    )
    def post(self, request: Request, slug: str) -> Response:
        assignment = _assignment(request, slug)
        form = serializers.SubmissionCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        upload = form.validated_data["file"]
        submission = create_submission(
            assignment=assignment, student=request.user, filename=upload.name, data=upload.read()
        )
        submission = selectors.submission_detail(submission.pk)
        data = serializers.SubmissionDetailSerializer(submission, context={"request": request}).data
        return Response(data, status=status.HTTP_201_CREATED)


@extend_schema_view(get=extend_schema(summary="Read a submission's status and results"))
class SubmissionDetailApi(generics.RetrieveAPIView):
    """A submission: stage, reason, timestamps, queue position, rule results, metrics."""

    serializer_class = serializers.SubmissionDetailSerializer

    def get_object(self):
        try:
            submission = (
                Submission.objects.select_related("assignment__course", "student", "result")
                .prefetch_related("epochs")
                .get(pk=self.kwargs["pk"])
            )
        except Submission.DoesNotExist:
            raise Http404 from None
        return submission_for(self.request.user, submission)


class SubmissionCancelApi(APIView):
    """Cancel a queued or running submission: my own, or any of my course's as its instructor.

    Its running sandbox is stopped within seconds. A cancelled submission still counts toward
    the daily quota. Another user's submission is 404, as for reading it.
    """

    @extend_schema(
        summary="Cancel a queued or running submission",
        request=None,
        responses={
            200: serializers.SubmissionDetailSerializer,
            404: OpenApiResponse(serializers.ErrorSerializer, "No such submission of mine"),
            409: OpenApiResponse(serializers.ErrorSerializer, "The grading already ended"),
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        try:
            submission = Submission.objects.select_related("assignment").get(pk=pk)
        except Submission.DoesNotExist:
            raise Http404 from None
        submission_for(request.user, submission)
        cancel_submission(submission_id=submission.pk, actor=request.user)
        detail = selectors.submission_detail(submission.pk)
        data = serializers.SubmissionDetailSerializer(detail, context={"request": request}).data
        return Response(data)


class LeaderboardApi(APIView):
    """The ranked leaderboard (names follow the assignment's hiding policy)."""

    @extend_schema(
        summary="Read an assignment's leaderboard",
        responses=serializers.LeaderboardEntrySerializer(many=True),
    )
    def get(self, request: Request, slug: str) -> Response:
        assignment = _assignment(request, slug)
        entries = selectors.leaderboard(assignment, viewer=request.user)
        return Response(
            {
                "assignment": assignment.slug,
                "rule": selectors.ranking_rule(assignment),
                "names_hidden": selectors.names_hidden(assignment),
                "entries": serializers.LeaderboardEntrySerializer(entries, many=True).data,
            }
        )


class GradesCsvApi(APIView):
    """Grades as CSV: one row per student (instructors only)."""

    @extend_schema(
        summary="Download the grades as CSV (instructors)",
        responses={(200, "text/csv"): OpenApiResponse(description="Grades CSV")},
    )
    def get(self, request: Request, slug: str) -> HttpResponse:
        from assignments.views.instructor import grades_response

        return grades_response(_managed(request, slug))


class BatchApi(APIView):
    """Submit a zip of students' files (instructors only); all or nothing."""

    parser_classes = [MultiPartParser]
    throttle_classes = UPLOAD_THROTTLES

    @extend_schema(
        summary="Submit a zip of students' files (instructors)",
        request=serializers.BatchSerializer,
        responses={
            201: serializers.SubmissionListSerializer(many=True),
            400: OpenApiResponse(serializers.ErrorSerializer, "Rejected batch, with problems"),
            429: OpenApiResponse(serializers.ErrorSerializer, "Too many uploads (Retry-After)"),
        },
    )
    def post(self, request: Request, slug: str) -> Response:
        assignment = _managed(request, slug)
        form = serializers.BatchSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        submissions = create_batch(
            assignment=assignment, actor=request.user, data=form.validated_data["file"].read()
        )
        data = serializers.SubmissionListSerializer(
            submissions, many=True, context={"request": request}
        ).data
        return Response({"count": len(submissions), "submissions": data}, status=201)
