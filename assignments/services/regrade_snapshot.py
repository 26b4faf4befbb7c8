"""The previous verdict of a submission being regraded, kept for its pages.

A regrade clears every number the last grading computed (nothing stale may pass for the new
verdict), so the page would show an empty result until the new one is in. Instead the old
verdict is copied to `Result.previous` first and the page shows it, marked as being regraded,
while the submission is not graded again. Only a verdict is kept: regrading a submission whose
regrade has not finished keeps the verdict before both.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from assignments.models import Result

FIELDS = ("passed", "accuracy", "params_total", "params_trainable", "score", "epochs_run")


def snapshot(result: Result) -> dict[str, Any] | None:
    """The verdict `result` holds now, or None when it holds none (never graded to the end)."""
    if result.passed is None and result.score is None and result.accuracy is None:
        return None
    submission = result.submission
    return {
        **{field: getattr(result, field) for field in FIELDS},
        "final_score": result.final_score,
        "rules_version": result.rules_version,
        "status": submission.status,
        "reason": submission.reason,
        "finished_at": submission.finished_at.isoformat() if submission.finished_at else None,
    }


def keep_previous_results(submission_ids: Iterable[int]) -> int:
    """Copy each result's verdict to `Result.previous` before a regrade clears it.

    Call it inside the regrade's transaction, before the submissions and results are reset.

    Returns:
        How many results had a verdict to keep.
    """
    kept = 0
    results = Result.objects.select_related("submission").filter(submission_id__in=submission_ids)
    for result in results.iterator():
        verdict = snapshot(result)
        if verdict is not None:
            Result.objects.filter(pk=result.pk).update(previous=verdict)
            kept += 1
    return kept
