"""How a stage ends when it does not succeed: a verdict the submission earned, or our problem."""

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
