"""Uploads: validation, duplicates, quotas, late policy, storage, then the queue.

Every way a file enters the system (the upload form, the API, the instructor's batch zip) goes
through `create_submission`, so the checks below hold everywhere. Rejections raise
`SubmissionRejected` (or a subclass); the views and the API map them to answers in one place.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import PurePath

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from assignments.dispatch import enqueue_submission
from assignments.models import Assignment, Enrollment, Submission
from assignments.services import fair_share
from assignments.services.submission_errors import (
    DuplicateSubmission,
    InvalidUpload,
    LateSubmission,
    NotEnrolled,
    QuotaExceeded,
    SubmissionRejected,
    TooManyWaiting,  # noqa: F401 - re-exported: callers import it from here
)
from grader.errors import GraderError, SourceRejected
from grader.keras_config import MODEL_CLASSES
from grader.loading import unsupported_extension_message

logger = logging.getLogger(__name__)

ALLOWED_SUFFIXES = {
    ".py": Submission.FileFormat.PYTHON,
    ".ipynb": Submission.FileFormat.NOTEBOOK,
    ".json": Submission.FileFormat.JSON,
    ".keras": Submission.FileFormat.KERAS,
}
# What a file of each format holds, for the message refusing an empty one.
EXPECTED_CONTENT = {
    Submission.FileFormat.PYTHON: "Python source defining `build_model(input_shape, num_classes)`",
    Submission.FileFormat.NOTEBOOK: "a Jupyter notebook whose code cells define "
    "`build_model(input_shape, num_classes)`",
    Submission.FileFormat.JSON: "a Keras model config, as written by `model.to_json()`",
    Submission.FileFormat.KERAS: "a .keras archive saved with `model.save('model.keras')`",
}


@dataclass(frozen=True)
class ValidatedUpload:
    """A file that passed every content check, ready to be stored."""

    name: str
    file_format: str
    data: bytes
    sha256: str


def clean_filename(filename: str) -> str:
    """The base name a browser or client sent, stripped of any directory part and of
    non-printable characters (newlines, terminal escapes), at most 255."""
    # Windows clients may send backslashes; neither kind of separator may survive. A batch zip
    # member's name never went through Django's multipart parser, which drops the rest.
    printable = "".join(char for char in filename if char.isprintable())
    name = PurePath(printable.replace("\\", "/")).name.strip()
    return name[-255:] if name else "upload"


def validate_upload(
    *, filename: str, data: bytes, mode: str = Assignment.Mode.TRAIN
) -> ValidatedUpload:
    """Check an upload's extension, size and content without running any of it.

    Args:
        filename: the name the student gave the file (only its extension is used).
        data: the file's bytes.
        mode: the assignment's mode; evaluate-only assignments need a trained `.keras` archive.

    Returns:
        The validated upload with its file format and SHA-256.

    Raises:
        InvalidUpload: with a message naming what was expected and what was received.
    """
    name = clean_filename(filename)
    suffix = PurePath(name).suffix.lower()
    if suffix not in ALLOWED_SUFFIXES:
        raise InvalidUpload(unsupported_extension_message(name, suffix))
    if mode == Assignment.Mode.EVALUATE and suffix != ".keras":
        raise InvalidUpload(
            f"File `{name}` is a `{suffix}` file. This assignment evaluates a trained model: "
            "expected a `.keras` archive saved with `model.save('model.keras')`."
        )
    limit = settings.GRADER_MAX_UPLOAD_BYTES
    if len(data) > limit:
        raise InvalidUpload(
            f"File `{name}` is {len(data):,} bytes. Expected at most {limit:,} bytes."
        )
    file_format = ALLOWED_SUFFIXES[suffix]
    if not data:
        raise InvalidUpload(
            f"File `{name}` is empty (0 bytes). Expected {EXPECTED_CONTENT[file_format]}."
        )
    if file_format == Submission.FileFormat.PYTHON:
        _check_python(name, data)
    elif file_format == Submission.FileFormat.NOTEBOOK:
        from assignments.services.notebooks import notebook_problem

        problem = notebook_problem(name=name, data=data)
        if problem is not None:
            raise InvalidUpload(problem)
    else:
        _check_model_file(name, data)
    return ValidatedUpload(
        name=name, file_format=file_format, data=data, sha256=hashlib.sha256(data).hexdigest()
    )


def _check_python(name: str, data: bytes) -> None:
    # Bounded before anything parses it, then parsed in a limited child interpreter: a hostile
    # file costs this process milliseconds and no memory (grader.python_source).
    from grader.python_source import check_source_bounds, top_level_functions

    try:
        check_source_bounds(name, data)
        defined = top_level_functions(name, data)
    except SourceRejected as exc:
        raise InvalidUpload(exc.message) from exc
    if "build_model" not in defined:
        from grader.notebook import missing_build_model_message

        raise InvalidUpload(missing_build_model_message(name))


def _check_model_file(name: str, data: bytes) -> None:
    # grader.loading reads JSON and .keras archives safely (zip limits, no Keras, no pickle).
    from grader.loading import load_model_config_bytes

    try:
        config = load_model_config_bytes(data, name)
    except GraderError as exc:
        raise InvalidUpload(f"File `{name}`: {exc.message}") from exc
    if not isinstance(config, dict) or config.get("class_name") not in MODEL_CLASSES:
        received = config.get("class_name") if isinstance(config, dict) else type(config).__name__
        raise InvalidUpload(
            f"File `{name}` does not hold a Keras model config: top-level `class_name` is "
            f"{received!r}. Expected one of {sorted(MODEL_CLASSES)}."
        )


def start_of_day(now: dt.datetime | None = None) -> dt.datetime:
    """Midnight of the current day in the site's time zone: quotas reset then."""
    local = timezone.localtime(now or timezone.now())
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def counted_today(
    *, assignment: Assignment, student_id: int, now: dt.datetime | None = None
) -> int:
    """Submissions that count against today's quota: infrastructure errors are ours, not theirs,
    and so is a training that waited for a dataset the course had not installed."""
    return (
        Submission.objects.filter(
            assignment=assignment, student_id=student_id, created_at__gte=start_of_day(now)
        )
        .exclude(status=Submission.Status.ERROR, reason=Submission.Reason.INFRASTRUCTURE)
        .exclude(quota_exempt=True)
        .count()
    )


def submissions_left_today(*, assignment: Assignment, student_id: int) -> int:
    """How many more submissions the student may make today (never negative)."""
    used = counted_today(assignment=assignment, student_id=student_id)
    return max(assignment.daily_quota - used, 0)


def find_duplicate(*, assignment: Assignment, student_id: int, sha256: str) -> Submission | None:
    """The student's earlier submission of the same bytes, unless that one never got a verdict.

    A submission lost to an infrastructure error or cancelled may be sent again.
    """
    return (
        Submission.objects.filter(assignment=assignment, student_id=student_id, sha256=sha256)
        .exclude(
            Q(status=Submission.Status.CANCELLED)
            | Q(status=Submission.Status.ERROR, reason=Submission.Reason.INFRASTRUCTURE)
        )
        .order_by("created_at")
        .first()
    )


@contextmanager
def files_removed_on_failure() -> Iterator[list[str]]:
    """Delete the stored files whose names the block appends if the block raises.

    A file is stored inside the transaction that records its row, before the commit: when the
    transaction fails (a lock timeout, a failed commit, a later batch member), the row is rolled
    back and nothing would ever point at the file again. Wrap the `transaction.atomic()` block
    (`with files_removed_on_failure() as stored, transaction.atomic():`) so that a failed
    commit is seen here too.
    """
    from django.core.files.storage import default_storage

    stored: list[str] = []
    try:
        yield stored
    except BaseException:
        for name in stored:
            try:
                default_storage.delete(name)
            except OSError:
                # The request's own error is the one to report; this one only leaves a file.
                logger.warning("Could not remove upload %s of a failed submission.", name)
        raise


def create_submission(
    *,
    assignment: Assignment,
    student,
    filename: str,
    data: bytes,
    now: dt.datetime | None = None,
    enforce_quota: bool = True,
) -> Submission:
    """Validate, store and queue one upload.

    Args:
        assignment: where the file is submitted.
        student: the submitting user; must be enrolled as a student (instructors may submit to
            their own courses to try an assignment).
        filename: the name the file was uploaded under (kept for display only).
        data: the file's bytes.
        now: the time of submission (tests pass a fixed time).
        enforce_quota: False for instructors' batch imports, which are not a student's attempts:
            neither the daily quota nor the limit of unfinished submissions applies.

    Returns:
        The new, queued submission.

    Raises:
        InvalidUpload, DuplicateSubmission, QuotaExceeded, TooManyWaiting, LateSubmission,
        NotEnrolled.
        Any database error leaves neither a row nor a stored file. Inside a caller's
        transaction, the caller removes the file if its transaction fails later
        (`files_removed_on_failure`, as `create_batch` does).
    """
    now = now or timezone.now()
    upload = validate_upload(filename=filename, data=data, mode=assignment.mode)
    with files_removed_on_failure() as stored, transaction.atomic():
        # Locking the enrollment row serializes one student's concurrent uploads, so two
        # requests racing for the last slot of the quota cannot both win.
        enrollment = (
            Enrollment.objects.select_for_update()
            .filter(course_id=assignment.course_id, user=student)
            .first()
        )
        if enrollment is None and not student.is_superuser:
            raise NotEnrolled(
                f"User `{student.get_username()}` is not enrolled in course "
                f"`{assignment.course.slug}`."
            )
        if (
            not assignment.is_published
            and (enrollment is None or enrollment.role != Enrollment.Role.INSTRUCTOR)
            and not student.is_superuser
        ):
            raise SubmissionRejected(f"Assignment `{assignment.slug}` is not open yet.")
        existing = find_duplicate(
            assignment=assignment, student_id=student.pk, sha256=upload.sha256
        )
        if existing is not None:
            raise DuplicateSubmission(
                f"File `{upload.name}` is identical to submission #{existing.pk} "
                f"(`{existing.original_name}`, {existing.get_status_display().lower()}). "
                "It was not graded again.",
                existing=existing,
            )
        is_late = assignment.deadline is not None and now > assignment.deadline
        if is_late and assignment.late_policy == Assignment.LatePolicy.REJECT:
            raise LateSubmission(
                f"The deadline of `{assignment.slug}` was "
                f"{timezone.localtime(assignment.deadline):%Y-%m-%d %H:%M %Z}; "
                "this assignment does not accept late submissions."
            )
        if enforce_quota:
            used = counted_today(assignment=assignment, student_id=student.pk, now=now)
            if used >= assignment.daily_quota:
                raise QuotaExceeded(
                    f"You made {used:,} submissions to `{assignment.slug}` today. Expected at "
                    f"most {assignment.daily_quota:,} per day; the quota resets at midnight "
                    f"({timezone.get_current_timezone_name()})."
                )
        if enforce_quota:
            fair_share.check_waiting_limit(
                assignment=assignment,
                user=student,
                staff=fair_share.is_staff(enrollment=enrollment, user=student),
            )
        submission = Submission(
            fair_round=fair_share.next_round(course_id=assignment.course_id, user_id=student.pk),
            assignment=assignment,
            student=student,
            original_name=upload.name,
            file_format=upload.file_format,
            sha256=upload.sha256,
            size_bytes=len(upload.data),
            status=Submission.Status.QUEUED,
            is_late=is_late,
            queued_at=now,
        )
        # upload_to generates the stored name; the student's name never reaches the disk.
        submission.file.save(upload.name, ContentFile(upload.data), save=False)
        stored.append(submission.file.name)
        submission.save()
        enqueue_submission(submission.pk)
    return submission


class BatchRejected(SubmissionRejected):
    """A batch zip is malformed or one of its members is not acceptable; nothing was queued."""

    error_code = "batch_rejected"

    def __init__(self, message: str, *, problems: list[dict] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


@dataclass(frozen=True)
class BatchMember:
    """One file of a batch, mapped to a student."""

    filename: str
    username: str
    data: bytes


MANIFEST_NAME = "manifest.csv"


def read_batch_zip(data: bytes) -> list[BatchMember]:
    """Read a batch zip into members mapped to usernames, checking sizes before reading.

    The mapping comes from `manifest.csv` (columns `file,username`) if present, else from file
    names `<username>.<ext>`. Nothing is extracted to disk.

    Raises:
        BatchRejected: the zip is too large, malformed, or a member is oversized or unmapped.
    """
    import csv
    import io
    import zipfile

    limit = settings.GRADER_MAX_BATCH_BYTES
    if len(data) > limit:
        raise BatchRejected(f"The batch zip is {len(data):,} bytes. Expected at most {limit:,}.")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = [info for info in archive.infolist() if not info.is_dir()]
    except zipfile.BadZipFile as exc:
        raise BatchRejected(f"The batch file is not a zip archive ({exc}).") from exc
    if len(infos) > settings.GRADER_MAX_BATCH_MEMBERS:
        raise BatchRejected(
            f"The batch zip holds {len(infos):,} files. Expected at most "
            f"{settings.GRADER_MAX_BATCH_MEMBERS:,}."
        )
    member_limit = settings.GRADER_MAX_UPLOAD_BYTES
    total = 0
    for info in infos:
        # Declared sizes are checked first, then reads are capped: a zip bomb that lies in its
        # headers still cannot make us inflate more than the limit.
        if info.file_size > member_limit:
            raise BatchRejected(
                f"Member `{info.filename}` is {info.file_size:,} bytes uncompressed. "
                f"Expected at most {member_limit:,}."
            )
        total += info.file_size
    if total > limit:
        raise BatchRejected(
            f"The batch zip inflates to {total:,} bytes. Expected at most {limit:,}."
        )

    def read(info) -> bytes:
        with archive.open(info) as handle:
            content = handle.read(member_limit + 1)
        if len(content) > member_limit:
            raise BatchRejected(f"Member `{info.filename}` inflates beyond {member_limit:,} bytes.")
        return content

    by_name = {info.filename: info for info in infos}
    manifest = by_name.pop(MANIFEST_NAME, None)
    if manifest is not None:
        text = read(manifest).decode("utf-8-sig", errors="replace")
        reader = csv.DictReader(io.StringIO(text))
        # (line, file, username): the line numbers name rows in the errors below.
        rows = [
            (reader.line_num, (row.get("file") or "").strip(), (row.get("username") or "").strip())
            for row in reader
        ]
        if not rows or not {"file", "username"} <= set(reader.fieldnames or []):
            raise BatchRejected(
                "`manifest.csv` must have a header `file,username` and one row per file."
            )
        mapping = _manifest_mapping(rows)
        missing = sorted(set(mapping) - set(by_name))
        if missing:
            raise BatchRejected(f"`manifest.csv` names files missing from the zip: {missing}.")
        unmapped = sorted(set(by_name) - set(mapping))
        if unmapped:
            raise BatchRejected(f"Files not listed in `manifest.csv`: {unmapped}.")
    else:
        mapping = {name: PurePath(name).stem for name in by_name}
    if not mapping:
        raise BatchRejected("The batch zip holds no model files.")
    return [
        BatchMember(filename=name, username=username, data=read(by_name[name]))
        for name, username in sorted(mapping.items())
    ]


def _manifest_mapping(rows: list[tuple[int, str, str]]) -> dict[str, str]:
    """File -> username from the manifest's (line, file, username) rows, one row per file.

    Raises:
        BatchRejected: a file is listed on several rows; a dictionary would silently keep the
            last of them, and the other students' submissions would be lost.
    """
    lines_by_file: dict[str, list[tuple[int, str]]] = {}
    for line, file, username in rows:
        lines_by_file.setdefault(file, []).append((line, username))
    repeated = {file: lines for file, lines in lines_by_file.items() if len(lines) > 1}
    if repeated:
        described = "; ".join(
            f"`{file}` on lines " + ", ".join(f"{line} (`{username}`)" for line, username in lines)
            for file, lines in sorted(repeated.items())
        )
        raise BatchRejected(
            f"`manifest.csv` lists a file on several rows: {described}. Expected one row per "
            "file (one file per student).",
            problems=[
                {
                    "file": file,
                    "username": username,
                    "kind": BatchRejected.error_code,
                    "message": f"`{file}` is listed on {len(lines):,} rows of `manifest.csv` "
                    f"(line {line} names `{username}`). Expected one row per file.",
                }
                for file, lines in sorted(repeated.items())
                for line, username in lines
            ],
        )
    return {file: lines[0][1] for file, lines in lines_by_file.items()}


def create_batch(*, assignment: Assignment, actor, data: bytes) -> list[Submission]:
    """Submit a zip of files on behalf of students; all or nothing.

    Every member is validated (mapping, enrollment, content, duplicates) before any is stored;
    one problem rejects the batch with the full list, so an instructor fixes it in one go.
    Daily quotas do not apply (these are not the students' own attempts); the late policy does.

    Raises:
        BatchRejected: with `problems`, one `{"file", "username", "kind", "message"}` each.
    """
    from django.contrib.auth import get_user_model

    members = read_batch_zip(data)
    usernames = {m.username for m in members}
    users = {
        u.username: u
        for u in get_user_model().objects.filter(
            username__in=usernames,
            enrollments__course_id=assignment.course_id,
            enrollments__role=Enrollment.Role.STUDENT,
        )
    }
    problems = []
    seen_users: dict[str, str] = {}
    for member in members:
        problem = None
        user = users.get(member.username)
        if user is None:
            problem = NotEnrolled(
                f"`{member.username}` is not a student of course `{assignment.course.slug}`."
            )
        elif member.username in seen_users:
            problem = SubmissionRejected(
                f"Student `{member.username}` has two files: `{seen_users[member.username]}` "
                f"and `{member.filename}`. Expected one file per student."
            )
        else:
            seen_users[member.username] = member.filename
            try:
                upload = validate_upload(
                    filename=member.filename, data=member.data, mode=assignment.mode
                )
            except SubmissionRejected as exc:
                problem = exc
            else:
                existing = find_duplicate(
                    assignment=assignment, student_id=user.pk, sha256=upload.sha256
                )
                if existing is not None:
                    problem = SubmissionRejected(
                        f"File `{member.filename}` is identical to submission #{existing.pk}."
                    )
        if problem is not None:
            problems.append(
                {"file": member.filename, "username": member.username, **problem.to_dict()}
            )
    if problems:
        raise BatchRejected(
            f"{len(problems):,} of {len(members):,} files in the batch were rejected; "
            "nothing was queued.",
            problems=problems,
        )
    submissions: list[Submission] = []
    # All or nothing on disk too: a failing member rolls back the earlier rows, so their files go.
    with files_removed_on_failure() as stored, transaction.atomic():
        for member in members:
            submission = create_submission(
                assignment=assignment,
                student=users[member.username],
                filename=member.filename,
                data=member.data,
                enforce_quota=False,
            )
            stored.append(submission.file.name)
            submissions.append(submission)
    return submissions
