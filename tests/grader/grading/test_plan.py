"""A plan's stage limits: training by the assignment, the rest by the host, nested for Celery."""

from __future__ import annotations

import pytest

from grader.grading.plan import GradingPlan, StageLimits

HOST = {"build_seconds": 300, "evaluate_seconds": 600, "grace_seconds": 60}


@pytest.mark.parametrize(
    ("stage", "sandbox_seconds"),
    [("training", 1234), ("evaluating", 600), ("building", 300), ("checking", 300)],
)
def test_each_stage_gets_its_own_limit_and_celery_two_grace_periods_more(stage, sandbox_seconds):
    plan = GradingPlan(slug="a", dataset="synthetic", mode="train", rules_yaml="rules: []",
                       time_limit_seconds=1234)  # fmt: skip

    limits = plan.stage_limits(stage, **HOST)

    assert limits == StageLimits(
        sandbox_seconds=sandbox_seconds,
        soft_time_limit=sandbox_seconds + 60,
        time_limit=sandbox_seconds + 120,
    )


def test_the_local_grader_and_the_site_read_the_same_limits_of_a_preset():
    plan = GradingPlan.from_preset("smoke")

    assert plan.stage_limits("training", **HOST).sandbox_seconds == plan.time_limit_seconds == 300
