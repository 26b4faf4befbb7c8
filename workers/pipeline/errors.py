"""How a stage ends when it does not succeed: a verdict, or a problem of ours.

`StageFailed` and `InfrastructureError` are the grading's own (`grader.grading.outcomes`, raised
by the static check too); the two below exist only where workers run stages.
"""

from __future__ import annotations

from grader.grading.outcomes import InfrastructureError as InfrastructureError
from grader.grading.outcomes import StageFailed as StageFailed


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
