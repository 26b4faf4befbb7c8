"""How a stage ends when it does not succeed: a verdict, or a problem of ours."""

from __future__ import annotations

from typing import Any


class StageFailed(Exception):
    """The submission caused the failure: a verdict (`rules`, `build_error`, `timeout`, ...).

    Never retried: the same submission would fail the same way.

    `details`: entries for the result's `checks` that only instructors see (the submission's
    `message` and `log` are the student's), e.g. ``{"built_model": {...}}``.
    """

    def __init__(
        self, reason: str, message: str, *, log: str = "", details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.log = log
        self.details = details or {}


class InfrastructureError(Exception):
    """The grading machinery failed (sandbox could not start, disk, broker): retried later.

    `retry=False` marks a problem retrying cannot fix (an assignment's invalid rule set, a
    dataset missing on this host): the submission ends as `error` at once.
    """

    def __init__(self, message: str, *, log: str = "", retry: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.log = log
        self.retry = retry


class StageAborted(Exception):
    """The stage stopped because its worker no longer owns the submission: not an outcome.

    The submission was cancelled, regraded or handed to another worker by the reaper while the
    stage ran; its sandbox was killed and nothing is written (the new owner, or the cancel, has
    the last word).
    """

    def __init__(self, message: str = "The stage's worker no longer owns the submission.") -> None:
        super().__init__(message)
        self.message = message


class DatasetMissing(Exception):
    """The stage needs its dataset's images and this host has no prepared copy: not an outcome.

    The submission waits (`assignments.services.data_wait.park_for_data`) instead of ending as
    an error, and is resumed once the dataset is installed. `detail` is for operators (it may
    name host paths and commands); students never see it.
    """

    def __init__(self, dataset: str, detail: str) -> None:
        super().__init__(detail)
        self.dataset = dataset
        self.detail = detail
