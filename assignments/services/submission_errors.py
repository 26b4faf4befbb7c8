"""Why an upload is refused before grading: the `SubmissionRejected` family.

Its own module so that the services that raise them (`submissions`, `fair_share`) need not import
each other; `assignments.services.submissions` re-exports every class.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from grader.errors import GraderError

if TYPE_CHECKING:
    from assignments.models import Submission


class SubmissionRejected(GraderError):
    """An upload was refused before grading; the message tells the student why."""

    error_code = "submission_rejected"


class InvalidUpload(SubmissionRejected):
    """The file's name, size or content is not a gradable model."""

    error_code = "invalid_upload"


class DuplicateSubmission(SubmissionRejected):
    """The same file (same SHA-256) was already submitted to this assignment by this student."""

    error_code = "duplicate"

    def __init__(self, message: str, *, existing: Submission) -> None:
        super().__init__(message)
        self.existing = existing


class QuotaExceeded(SubmissionRejected):
    """The student used every submission the assignment allows today."""

    error_code = "quota_exceeded"


class TooManyWaiting(SubmissionRejected):
    """The user already holds as many unfinished submissions as the assignment allows at once.

    Attributes:
        limit: the assignment's limit for this user (student or staff).
        unfinished: how many the user holds.
        oldest_waiting: the id of their oldest submission waiting for a stage (None when all
            of them are being graded).
        position: that submission's place in the dispatch order of its next stage.
    """

    error_code = "too_many_waiting"

    def __init__(
        self,
        message: str,
        *,
        limit: int,
        unfinished: int,
        oldest_waiting: int | None = None,
        position: int | None = None,
    ) -> None:
        super().__init__(message)
        self.limit = limit
        self.unfinished = unfinished
        self.oldest_waiting = oldest_waiting
        self.position = position


class LateSubmission(SubmissionRejected):
    """The deadline passed and the assignment rejects late submissions."""

    error_code = "late"


class NotEnrolled(SubmissionRejected):
    """The user is not a student of the assignment's course."""

    error_code = "not_enrolled"
