"""Uploads: content validation, duplicates, daily quota, late policy, storage, enqueueing."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest
from django.conf import settings
from django.db import DatabaseError
from django.db.models.signals import post_save
from django.utils import timezone

from assignments.models import Assignment, Submission
from assignments.services.submissions import (
    BatchRejected,
    DuplicateSubmission,
    InvalidUpload,
    LateSubmission,
    NotEnrolled,
    QuotaExceeded,
    create_batch,
    create_submission,
    submissions_left_today,
    validate_upload,
)
from tests.support.site_fixtures import (
    PY_MODEL,
    make_submission,
    make_user,
    model_json,
    tiny_model_config,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("uploads_dir")]


def keras_archive(config: dict | None = None, *, include_config: bool = True) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
        if include_config:
            archive.writestr("config.json", json.dumps(config or tiny_model_config()))
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("filename", "data", "expected"),
    [
        (
            "model.txt",
            b"x",
            "has extension `.txt`. Expected one of `.py`, `.ipynb`, `.json`, `.keras`.",
        ),
        ("model", b"x", "has extension `(none)`"),
        ("model.py", b"def build_model(:\n", "is not valid Python: invalid syntax at line 1"),
        (
            "model.py",
            b"def make_model():\n    pass\n",
            "defines no top-level function `build_model`",
        ),
        ("model.py", b"\xff\xfe\x00", "is not UTF-8 text"),
        ("model.py", b"", "is empty"),
        ("model.json", b"{not json", "model.json"),
        ("model.json", b'{"class_name": "Dense", "config": {}}', "model.json"),
        ("model.keras", b"PK not a zip", "model.keras"),
        ("model.keras", keras_archive(include_config=False), "config.json"),
    ],
)
def test_rejects_invalid_uploads_with_a_specific_message(filename, data, expected):
    with pytest.raises(InvalidUpload) as info:
        validate_upload(filename=filename, data=data)
    assert expected in info.value.message
    assert info.value.to_dict()["kind"] == "invalid_upload"


def test_accepts_each_supported_kind():
    assert validate_upload(filename="m.py", data=PY_MODEL).file_format == "py"
    assert validate_upload(filename="m.json", data=model_json()).file_format == "json"
    assert validate_upload(filename="m.keras", data=keras_archive()).file_format == "keras"


def test_a_python_file_is_parsed_never_run(tmp_path):
    marker = tmp_path / "ran"
    source = f"open({str(marker)!r}, 'w').write('x')\ndef build_model(s, n):\n    pass\n"
    validate_upload(filename="m.py", data=source.encode())
    assert not marker.exists()


def test_rejects_a_file_over_the_size_limit(settings):
    settings.GRADER_MAX_UPLOAD_BYTES = 100
    with pytest.raises(InvalidUpload, match=r"is 101 bytes\. Expected at most 100 bytes\."):
        validate_upload(filename="m.py", data=b"#" * 101)


def test_evaluate_mode_needs_a_keras_archive():
    with pytest.raises(InvalidUpload, match=r"expected a `\.keras` archive"):
        validate_upload(filename="m.json", data=model_json(), mode=Assignment.Mode.EVALUATE)


def test_stores_the_file_under_a_generated_name_outside_static(assignment, student):
    submission = create_submission(
        assignment=assignment,
        student=student,
        filename="../../etc/<script>.json",
        data=model_json(),
    )
    stored = Path(submission.file.path).resolve()
    assert stored.name != "<script>.json" and stored.suffix == ".json"
    assert Path(settings.MEDIA_ROOT).resolve() in stored.parents
    assert Path(settings.STATIC_ROOT).resolve() not in stored.parents
    assert submission.original_name == "<script>.json"  # kept for display only
    assert stored.read_bytes() == model_json()
    assert submission.sha256 == hashlib.sha256(model_json()).hexdigest()


def test_queues_after_commit(assignment, student, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        submission = create_submission(
            assignment=assignment, student=student, filename="m.json", data=model_json()
        )
    assert submission.status == Submission.Status.QUEUED and submission.queued_at is not None
    assert len(callbacks) == 1


def test_identical_resubmission_links_the_earlier_one_and_is_not_queued(
    assignment, student, django_capture_on_commit_callbacks
):
    first = create_submission(
        assignment=assignment, student=student, filename="a.json", data=model_json()
    )
    with (
        django_capture_on_commit_callbacks(execute=False) as callbacks,
        pytest.raises(DuplicateSubmission) as info,
    ):
        create_submission(
            assignment=assignment, student=student, filename="b.json", data=model_json()
        )
    assert info.value.existing.pk == first.pk
    assert f"identical to submission #{first.pk}" in info.value.message
    assert callbacks == []
    assert Submission.objects.count() == 1


def test_resubmission_after_an_infrastructure_error_is_allowed(assignment, student):
    first = create_submission(
        assignment=assignment, student=student, filename="a.json", data=model_json()
    )
    Submission.objects.filter(pk=first.pk).update(
        status=Submission.Status.ERROR, reason=Submission.Reason.INFRASTRUCTURE
    )
    again = create_submission(
        assignment=assignment, student=student, filename="a.json", data=model_json()
    )
    assert again.pk != first.pk


def test_another_students_identical_file_is_not_a_duplicate(assignment, student, other_student):
    create_submission(assignment=assignment, student=student, filename="a.json", data=model_json())
    create_submission(
        assignment=assignment, student=other_student, filename="a.json", data=model_json()
    )


def test_daily_quota_is_enforced_and_infrastructure_errors_do_not_count(assignment, student):
    assert assignment.daily_quota == 3
    made = [
        create_submission(
            assignment=assignment, student=student, filename="m.json", data=model_json(filters)
        )
        for filters in (1, 2, 3)
    ]
    assert submissions_left_today(assignment=assignment, student_id=student.pk) == 0
    with pytest.raises(QuotaExceeded, match=r"You made 3 submissions .* Expected at most 3 per"):
        create_submission(
            assignment=assignment, student=student, filename="m.json", data=model_json(4)
        )
    # Our fault, not theirs: an infrastructure error gives the attempt back.
    Submission.objects.filter(pk=made[0].pk).update(
        status=Submission.Status.ERROR, reason=Submission.Reason.INFRASTRUCTURE
    )
    assert submissions_left_today(assignment=assignment, student_id=student.pk) == 1
    create_submission(assignment=assignment, student=student, filename="m.json", data=model_json(4))
    # A failure caused by the model still counts.
    Submission.objects.filter(pk=made[1].pk).update(
        status=Submission.Status.FAILED, reason=Submission.Reason.RULES
    )
    with pytest.raises(QuotaExceeded):
        create_submission(
            assignment=assignment, student=student, filename="m.json", data=model_json(5)
        )


def test_quota_counts_only_today(assignment, student):
    yesterday = timezone.now() - dt.timedelta(days=1, hours=1)
    for _ in range(3):
        make_submission(assignment, student, created_at=yesterday)
    assert submissions_left_today(assignment=assignment, student_id=student.pk) == 3


@pytest.mark.parametrize(
    ("policy", "accepted"),
    [
        (Assignment.LatePolicy.REJECT, False),
        (Assignment.LatePolicy.ACCEPT, True),
        (Assignment.LatePolicy.PENALTY, True),
    ],
)
def test_late_policy(assignment, student, policy, accepted):
    assignment.deadline = timezone.now() - dt.timedelta(minutes=1)
    assignment.late_policy = policy
    assignment.save()
    if not accepted:
        with pytest.raises(LateSubmission, match="does not accept late submissions"):
            create_submission(
                assignment=assignment, student=student, filename="m.json", data=model_json()
            )
        return
    submission = create_submission(
        assignment=assignment, student=student, filename="m.json", data=model_json()
    )
    assert submission.is_late


def test_on_time_submission_is_not_late(assignment, student):
    assignment.deadline = timezone.now() + dt.timedelta(hours=1)
    assignment.late_policy = Assignment.LatePolicy.REJECT
    assignment.save()
    submission = create_submission(
        assignment=assignment, student=student, filename="m.json", data=model_json()
    )
    assert not submission.is_late


def test_refuses_a_user_not_enrolled(assignment):
    outsider = make_user("mallory")
    with pytest.raises(NotEnrolled, match="is not enrolled in course `dl101`"):
        create_submission(
            assignment=assignment, student=outsider, filename="m.json", data=model_json()
        )


def batch_zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_batch_by_file_names(assignment, instructor, student, other_student):
    submissions = create_batch(
        assignment=assignment,
        actor=instructor,
        data=batch_zip({"alice.json": model_json(1), "bob.py": PY_MODEL}),
    )
    assert sorted((s.student.username, s.file_format) for s in submissions) == [
        ("alice", "json"),
        ("bob", "py"),
    ]


def test_batch_by_manifest_and_quota_does_not_apply(assignment, instructor, student):
    for _ in range(3):
        make_submission(assignment, student)
    assert submissions_left_today(assignment=assignment, student_id=student.pk) == 0
    data = batch_zip({"manifest.csv": b"file,username\nx.json,alice\n", "x.json": model_json(7)})
    [submission] = create_batch(assignment=assignment, actor=instructor, data=data)
    assert submission.student == student


def test_batch_is_all_or_nothing_and_lists_every_problem(assignment, instructor, student):
    data = batch_zip(
        {"alice.json": model_json(), "mallory.json": model_json(2), "alice2.txt": b"x"}
    )
    with pytest.raises(BatchRejected) as info:
        create_batch(assignment=assignment, actor=instructor, data=data)
    problems = {p["file"]: p["kind"] for p in info.value.problems}
    assert problems == {"mallory.json": "not_enrolled", "alice2.txt": "not_enrolled"}
    assert Submission.objects.count() == 0


def test_batch_rejects_a_manifest_listing_one_file_for_two_students(
    assignment, instructor, student, other_student
):
    manifest = b"file,username\na.json,alice\na.json,bob\n"
    data = batch_zip({"manifest.csv": manifest, "a.json": model_json()})
    with pytest.raises(BatchRejected) as info:
        create_batch(assignment=assignment, actor=instructor, data=data)
    assert info.value.message == (
        "`manifest.csv` lists a file on several rows: `a.json` on lines 2 (`alice`), "
        "3 (`bob`). Expected one row per file (one file per student)."
    )
    assert [(p["file"], p["username"]) for p in info.value.problems] == [
        ("a.json", "alice"),
        ("a.json", "bob"),
    ]
    assert Submission.objects.count() == 0


def test_batch_rejects_oversized_members_before_inflating(assignment, instructor, settings):
    settings.GRADER_MAX_UPLOAD_BYTES = 1000
    data = batch_zip({"alice.py": b"#" * 5000})  # compresses to far less than 1000 bytes
    assert len(data) < 1000
    with pytest.raises(
        BatchRejected, match=r"is 5,000 bytes uncompressed\. Expected at most 1,000"
    ):
        create_batch(assignment=assignment, actor=instructor, data=data)


def test_batch_rejects_a_non_zip(assignment, instructor):
    with pytest.raises(BatchRejected, match="not a zip archive"):
        create_batch(assignment=assignment, actor=instructor, data=b"hello")


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_concurrent_uploads_cannot_exceed_the_quota(assignment, student):
    """Two requests racing for the last slot: the enrollment row lock lets exactly one win."""
    import threading
    import time

    from django.db import connection, connections

    from tests.conftest import service_missing

    if connection.vendor != "postgresql":
        service_missing("PostgreSQL as the test database (DATABASE_URL=postgres://...)")
    for filters in (1, 2):
        create_submission(
            assignment=assignment, student=student, filename="m.json", data=model_json(filters)
        )
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    # Widen the race: each request pauses between counting and inserting, so without the lock
    # every request would count 2 used and all four would be accepted.
    def slow_insert(sender, instance, **kwargs) -> None:
        if instance.pk is None:
            time.sleep(0.3)

    from django.db.models.signals import pre_save

    pre_save.connect(slow_insert, sender=Submission, dispatch_uid="slow_insert")

    def race(filters: int) -> None:
        try:
            barrier.wait()
            create_submission(
                assignment=assignment, student=student, filename="m.json", data=model_json(filters)
            )
            outcomes.append("accepted")
        except QuotaExceeded:
            outcomes.append("quota")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=race, args=(10 + i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join(timeout=60)
    finally:
        pre_save.disconnect(dispatch_uid="slow_insert", sender=Submission)
    assert sorted(outcomes) == ["accepted", "quota", "quota", "quota"]
    assert Submission.objects.filter(student=student).count() == assignment.daily_quota


def stored_files() -> list[Path]:
    return [path for path in Path(settings.MEDIA_ROOT).rglob("*") if path.is_file()]


class FailingSaves:
    """Makes the Nth save of a submission fail the way a database error fails the transaction."""

    def __init__(self, fail_at: int) -> None:
        self.fail_at = fail_at
        self.saves = 0

    def __call__(self, sender, instance, **kwargs) -> None:
        self.saves += 1
        if self.saves == self.fail_at:
            raise DatabaseError("database is locked")

    def __enter__(self) -> FailingSaves:
        post_save.connect(self, sender=Submission, dispatch_uid="failing_saves")
        return self

    def __exit__(self, *exc_info) -> None:
        post_save.disconnect(sender=Submission, dispatch_uid="failing_saves")


def test_a_failed_transaction_removes_the_stored_file(assignment, student):
    with FailingSaves(fail_at=1), pytest.raises(DatabaseError):
        create_submission(
            assignment=assignment, student=student, filename="m.json", data=model_json()
        )
    assert Submission.objects.count() == 0
    assert stored_files() == []
    # The next upload works and keeps its file.
    submission = create_submission(
        assignment=assignment, student=student, filename="m.json", data=model_json()
    )
    assert stored_files() == [Path(submission.file.path)]


def test_a_failed_batch_member_removes_the_files_of_the_earlier_members(
    assignment, instructor, student, other_student
):
    data = batch_zip({"alice.json": model_json(1), "bob.json": model_json(2)})
    with FailingSaves(fail_at=2), pytest.raises(DatabaseError):
        create_batch(assignment=assignment, actor=instructor, data=data)
    assert Submission.objects.count() == 0
    assert stored_files() == []
