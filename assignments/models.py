"""Courses, assignments, submissions and their results.

The database is the source of truth for every submission's progress: the broker only carries
wake-up calls, so a lost message or a dead worker never loses a submission (see the reaper).
"""

from __future__ import annotations

import secrets
import uuid
from pathlib import PurePath

from django.conf import settings
from django.db import models
from django.db.models import Q


class Course(models.Model):
    slug = models.SlugField(max_length=64, unique=True)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title


class Enrollment(models.Model):
    """A user's role in one course; the pseudonym stands in for names on public leaderboards."""

    class Role(models.TextChoices):
        STUDENT = "student", "Student"
        INSTRUCTOR = "instructor", "Instructor"

    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="enrollments")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="enrollments"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.STUDENT)
    display_name = models.CharField(max_length=100, blank=True)
    pseudonym = models.CharField(max_length=40, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["course", "user"], name="unique_enrollment"),
        ]
        indexes = [models.Index(fields=["user", "role"])]

    def __str__(self) -> str:
        return f"{self.user} in {self.course} ({self.role})"

    def save(self, *args, **kwargs):
        if not self.pseudonym:
            self.pseudonym = f"Student-{secrets.randbelow(900000) + 100000}"
        super().save(*args, **kwargs)


class Assignment(models.Model):
    class Mode(models.TextChoices):
        TRAIN = "train", "Train and evaluate"
        EVALUATE = "evaluate", "Evaluate a trained model"

    class LatePolicy(models.TextChoices):
        REJECT = "reject", "Reject late submissions"
        ACCEPT = "accept", "Accept and flag late submissions"
        PENALTY = "penalty", "Accept with a score penalty"

    class LeaderboardPolicy(models.TextChoices):
        BEST = "best", "Best passing submission"
        LATEST = "latest", "Latest passing submission"

    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="assignments")
    slug = models.SlugField(max_length=64, unique=True)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True, help_text="Markdown; sanitized when shown.")
    dataset = models.CharField(max_length=64, default="synthetic")
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.TRAIN)
    # The rule set as YAML (validated by grader.rules on save through the services layer).
    rules_yaml = models.TextField()
    rules_version = models.PositiveIntegerField(default=1)
    time_limit_seconds = models.PositiveIntegerField(default=1800)
    memory_limit_mb = models.PositiveIntegerField(default=4096)
    max_epochs = models.PositiveIntegerField(default=50)
    deadline = models.DateTimeField(null=True, blank=True)
    late_policy = models.CharField(
        max_length=16, choices=LatePolicy.choices, default=LatePolicy.ACCEPT
    )
    late_penalty = models.FloatField(default=0.0, help_text="Fraction of the score removed.")
    daily_quota = models.PositiveIntegerField(default=10)
    # Unfinished submissions (queued or being graded) one user may have on this assignment at
    # once: past it an upload is refused (429) until one ends or is cancelled. Staff (the
    # course's instructors, superusers) trying the assignment have their own limit.
    max_waiting_per_student = models.PositiveIntegerField(default=2)
    max_waiting_per_staff = models.PositiveIntegerField(default=5)
    leaderboard_policy = models.CharField(
        max_length=16, choices=LeaderboardPolicy.choices, default=LeaderboardPolicy.BEST
    )
    hide_names_until_deadline = models.BooleanField(default=False)
    stop_on_static_failure = models.BooleanField(default=True)
    allow_custom_training = models.BooleanField(default=False)
    is_published = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["course", "title"]
        constraints = [
            models.CheckConstraint(
                condition=Q(late_penalty__gte=0) & Q(late_penalty__lte=1),
                name="late_penalty_is_a_fraction",
            ),
        ]

    def __str__(self) -> str:
        return self.title


def submission_upload_to(instance: Submission, filename: str) -> str:
    """A generated name: the student's file name never reaches the filesystem."""
    suffix = PurePath(filename).suffix.lower()
    if suffix not in {".py", ".ipynb", ".keras", ".json"}:
        suffix = ".bin"
    return f"submissions/{instance.assignment_id}/{uuid.uuid4().hex}{suffix}"


class Submission(models.Model):
    class FileFormat(models.TextChoices):
        PYTHON = "py", "Python module"
        NOTEBOOK = "ipynb", "Jupyter notebook"
        KERAS = "keras", "Keras archive"
        JSON = "json", "Model JSON"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        BUILDING = "building", "Building"
        CHECKING = "checking", "Checking"
        TRAINING = "training", "Training"
        EVALUATING = "evaluating", "Evaluating"
        # Checked, but its dataset is not installed on the workers yet: no task is pending for
        # it and no dispatcher picks it; `services.data_wait` resumes it once the data is there.
        WAITING_DATA = "waiting_data", "Waiting for data"
        FINISHED = "finished", "Finished"
        FAILED = "failed", "Failed"
        ERROR = "error", "Error"
        CANCELLED = "cancelled", "Cancelled"

    class Reason(models.TextChoices):
        NONE = "", "—"
        RULES = "rules", "Rules not met"
        BUILD_ERROR = "build_error", "Build error"
        TIMEOUT = "timeout", "Time limit exceeded"
        OUT_OF_MEMORY = "out_of_memory", "Memory limit exceeded"
        CRASHED = "crashed", "Crashed"
        OUTPUT_LIMIT = "output_limit", "Output limit exceeded"
        INVALID_SUBMISSION = "invalid_submission", "Invalid submission"
        INFRASTRUCTURE = "infrastructure", "Infrastructure error"

    ACTIVE_STATUSES = (
        Status.QUEUED,
        Status.BUILDING,
        Status.CHECKING,
        Status.TRAINING,
        Status.EVALUATING,
    )
    TERMINAL_STATUSES = (Status.FINISHED, Status.FAILED, Status.ERROR, Status.CANCELLED)
    # Not over, yet out of the pipeline: nothing runs or is sent for these until an outside
    # event (a dataset installed) resumes them. Dispatchers select from ACTIVE_STATUSES only.
    PARKED_STATUSES = (Status.WAITING_DATA,)
    # Everything not yet graded: what a student may cancel and the page keeps polling.
    OPEN_STATUSES = (*ACTIVE_STATUSES, *PARKED_STATUSES)

    assignment = models.ForeignKey(Assignment, on_delete=models.CASCADE, related_name="submissions")
    student = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="submissions"
    )
    file = models.FileField(upload_to=submission_upload_to, max_length=255)
    original_name = models.CharField(max_length=255)
    # The uploaded file's format. The column (and the API's JSON key) keep the older name `kind`.
    file_format = models.CharField(max_length=8, choices=FileFormat.choices, db_column="kind")
    sha256 = models.CharField(max_length=64, db_index=True)
    size_bytes = models.PositiveIntegerField(default=0)

    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    reason = models.CharField(max_length=32, choices=Reason.choices, blank=True, default="")
    message = models.TextField(blank=True)
    is_late = models.BooleanField(default=False)

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    building_at = models.DateTimeField(null=True, blank=True)
    checking_at = models.DateTimeField(null=True, blank=True)
    training_at = models.DateTimeField(null=True, blank=True)
    evaluating_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    # Ownership of the running stage: a worker refreshes its heartbeat; the reaper re-queues a
    # submission whose heartbeat went stale.
    worker = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    # The round of the fair order this grading waits in (`services.fair_share`): a student's
    # n-th unfinished submission gets a later round than everyone's (n-1)-th. NULL (rows from
    # before the fair order) counts as round 0. Nullable so that adding it leaves the table,
    # and the Standing triggers on it, in place on SQLite.
    fair_round = models.BigIntegerField(null=True, blank=True)
    # Not charged to the daily quota: its training waited for a dataset the course had not
    # installed (set by `services.data_wait.park_for_data`, within a per-student bound).
    quota_exempt = models.BooleanField(default=False)

    # What the build stage produced: the architecture and the student's declared training config.
    model_config = models.JSONField(null=True, blank=True)
    training_config = models.JSONField(null=True, blank=True)
    log = models.TextField(blank=True)  # captured sandbox output, capped

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["assignment", "status"]),
            models.Index(fields=["student", "created_at"]),
            models.Index(fields=["assignment", "student", "created_at"]),
            models.Index(fields=["status", "heartbeat_at"]),
            models.Index(fields=["status", "fair_round"]),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.original_name} ({self.status})"

    @property
    def is_active(self) -> bool:
        """Not graded yet: queued, in a stage, or waiting for its dataset."""
        return self.status in self.OPEN_STATUSES


class Result(models.Model):
    """The verdict of one grading of a submission (rewritten on regrade)."""

    submission = models.OneToOneField(Submission, on_delete=models.CASCADE, related_name="result")
    rules_version = models.PositiveIntegerField()
    rules_yaml = models.TextField(blank=True)  # the rule set actually applied, for the record
    checks = models.JSONField(default=dict)  # the check_model object (params, RF, layers, rules)
    rules = models.JSONField(default=list)  # final rule results, training-decided ones included
    passed = models.BooleanField(null=True)
    params_total = models.BigIntegerField(null=True, blank=True)
    params_trainable = models.BigIntegerField(null=True, blank=True)
    accuracy = models.FloatField(null=True, blank=True, db_index=True)
    loss = models.FloatField(null=True, blank=True)
    per_class_accuracy = models.JSONField(null=True, blank=True)
    confusion_matrix = models.JSONField(null=True, blank=True)
    training_seconds = models.FloatField(null=True, blank=True)
    epochs_run = models.PositiveIntegerField(null=True, blank=True)
    score = models.FloatField(null=True, blank=True)
    score_override = models.FloatField(null=True, blank=True)
    override_reason = models.TextField(blank=True)
    # Whether the student reads the reason (the instructor's choice; older reasons stay private).
    override_reason_shared = models.BooleanField(default=False)
    # The verdict before the running regrade (`services.regrade_snapshot`), shown meanwhile.
    previous = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["passed", "accuracy"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(score_override__isnull=True) | ~Q(override_reason=""),
                name="override_has_reason",
            ),
        ]

    def __str__(self) -> str:
        return f"Result of submission #{self.submission_id}"

    @property
    def final_score(self) -> float | None:
        return self.score_override if self.score_override is not None else self.score


class Standing(models.Model):
    """The submission that stands for a student on an assignment's leaderboard, with its
    ranking keys: one row per student and leaderboard policy, in a narrow table.

    Under `best` it is the student's finished, passing submission with the highest test
    accuracy (ties: fewer parameters, then the earlier submission); under `latest` their latest
    such submission. A student without one has no row. The leaderboard reads these rows in rank
    order along an index, and the grades export looks each student's up, instead of picking
    the best of thousands of submissions from the wide submission and result tables.

    Written only by database triggers (migration 0002): a change to a submission's status,
    creation time, assignment or student, or to its result's verdict, accuracy or parameter
    count recomputes that student's rows in the same transaction, whoever writes (services,
    `update()`, bulk inserts, deletes, the admin). The code never saves one.
    """

    assignment = models.ForeignKey(
        Assignment, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    student = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    policy = models.CharField(max_length=16, choices=Assignment.LeaderboardPolicy.choices)
    submission = models.ForeignKey(Submission, on_delete=models.CASCADE, related_name="+")
    accuracy = models.FloatField()
    params_total = models.BigIntegerField(null=True)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["assignment", "student", "policy"], name="one_standing_per_policy"
            ),
        ]
        indexes = [
            # The leaderboard's order: test accuracy, fewer parameters, earlier submission.
            models.Index(
                fields=[
                    "assignment",
                    "policy",
                    "-accuracy",
                    "params_total",
                    "created_at",
                    "submission",
                ],
                name="standing_rank_order",
            ),
        ]

    def __str__(self) -> str:
        return f"Submission #{self.submission_id} stands for student #{self.student_id}"

    def save(self, *args, **kwargs):
        raise TypeError("Standing rows are written by database triggers only.")


class EpochMetric(models.Model):
    """One training epoch as reported live by the trainer."""

    submission = models.ForeignKey(Submission, on_delete=models.CASCADE, related_name="epochs")
    epoch = models.PositiveIntegerField()
    loss = models.FloatField(null=True)
    accuracy = models.FloatField(null=True)
    val_loss = models.FloatField(null=True)
    val_accuracy = models.FloatField(null=True)
    learning_rate = models.FloatField(null=True)
    seconds = models.FloatField(null=True)

    class Meta:
        ordering = ["submission", "epoch"]
        constraints = [
            models.UniqueConstraint(fields=["submission", "epoch"], name="unique_epoch"),
        ]

    def __str__(self) -> str:
        return f"Epoch {self.epoch} of submission #{self.submission_id}"


class WorkerPresence(models.Model):
    """A Celery worker node as it last reported itself (`workers.presence`): which queues it
    consumes, its sandbox backend and GPUs, and when it was last seen alive."""

    node = models.CharField(max_length=200, unique=True)
    queues = models.JSONField(default=list)
    sandbox = models.CharField(max_length=32, blank=True)
    gpus = models.JSONField(default=list)
    concurrency = models.PositiveIntegerField(null=True, blank=True)
    started_at = models.DateTimeField()
    last_seen = models.DateTimeField()
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["node"]

    def __str__(self) -> str:
        return f"Worker {self.node}"


class AuditEntry(models.Model):
    """Who did what to grades: overrides, regrades, cancellations, rule changes."""

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=64)
    assignment = models.ForeignKey(
        Assignment, null=True, blank=True, on_delete=models.CASCADE, related_name="audit"
    )
    submission = models.ForeignKey(
        Submission, null=True, blank=True, on_delete=models.CASCADE, related_name="audit"
    )
    details = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.action} by user #{self.actor_id or '-'} ({self.created_at or 'unsaved'})"
