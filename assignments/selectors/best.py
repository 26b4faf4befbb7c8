"""A student's standing on each assignment, for their home page, assignment page and
"My submissions": the submission that counts for the grade, its score and status.

The same choice as the grades export (`standings.grade_table`): the best effective score (an
override, else the computed score), ties to a passing submission, then the leaderboard policy;
without any score, the latest submission. Two queries whatever the number of assignments.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import BigIntegerField, F, OuterRef, Subquery
from django.db.models.functions import Coalesce

from assignments.models import Assignment, Submission
from assignments.selectors.standings import EFFECTIVE_SCORE, TIE_ORDER


@dataclass(frozen=True)
class Best:
    """The submission that counts for a student on one assignment."""

    submission_id: int
    status: str
    reason: str
    score: float | None  # the effective score: override, else computed
    overridden: bool
    passed: bool | None
    accuracy: float | None

    @property
    def is_scored(self) -> bool:
        return self.score is not None


def best_by_assignment(*, student, assignments: Iterable[Assignment]) -> dict[int, Best]:
    """`{assignment id: Best}` for each of `assignments` the student submitted to."""
    ids = [a.pk for a in assignments]
    if not ids:
        return {}
    mine = Submission.objects.filter(assignment_id=OuterRef("pk"), student=student)
    scored = mine.annotate(effective_score=EFFECTIVE_SCORE).filter(effective_score__isnull=False)
    by_policy = {
        policy: scored.order_by(
            F("effective_score").desc(), F("result__passed").desc(nulls_last=True), *order
        ).values("id")[:1]
        for policy, order in TIE_ORDER.items()
    }
    latest = mine.order_by("-created_at", "-id").values("id")[:1]
    rows = Assignment.objects.filter(pk__in=ids).annotate(
        **{
            f"best_{policy}": Coalesce(
                Subquery(query), Subquery(latest), output_field=BigIntegerField()
            )
            for policy, query in by_policy.items()
        }
    )
    chosen = {
        pk: values[policy]
        for pk, policy, *rest in rows.values_list(
            "pk", "leaderboard_policy", *(f"best_{p}" for p in by_policy)
        )
        for values in [dict(zip(by_policy, rest, strict=True))]
        if values.get(policy) is not None
    }
    found = Submission.objects.filter(pk__in=chosen.values()).values(
        "pk",
        "status",
        "reason",
        "result__passed",
        "result__accuracy",
        "result__score",
        "result__score_override",
    )
    by_id = {row["pk"]: row for row in found}
    best = {}
    for assignment_id, submission_id in chosen.items():
        row = by_id[submission_id]
        override = row["result__score_override"]
        best[assignment_id] = Best(
            submission_id=submission_id,
            status=row["status"],
            reason=row["reason"],
            score=override if override is not None else row["result__score"],
            overridden=override is not None,
            passed=row["result__passed"],
            accuracy=row["result__accuracy"],
        )
    return best
