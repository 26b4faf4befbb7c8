"""Queue health an instructor can act on (issue 13, part 6): workers alive per queue with their
last report, sandbox and GPUs; the stages running now and for how long; recent infrastructure
errors of the instructor's own courses."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from assignments.models import Assignment, Submission, WorkerPresence
from assignments.selectors import queue_health
from assignments.services.worker_presence import record_stopped, record_worker
from tests.support.site_fixtures import make_submission

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("uploads_dir")]

NOW = timezone.now()


@pytest.fixture(autouse=True)
def _fresh_now():
    # The page measures against the real clock: an import-time NOW ages by the minutes a long
    # run takes before this test, and a worker reported "3 s ago" would read as silent.
    global NOW
    NOW = timezone.now()


def report(node: str, queues: list[str], *, seconds_ago: float, gpus=(), sandbox="bwrap"):
    return record_worker(
        node=node, queues=queues, sandbox=sandbox, gpus=list(gpus),
        started_at=NOW - dt.timedelta(hours=1), concurrency=2,
        now=NOW - dt.timedelta(seconds=seconds_ago),
    )  # fmt: skip


def test_a_worker_reports_once_per_node_and_a_restart_replaces_it():
    report("cpu@a", ["preflight"], seconds_ago=60)
    report("cpu@a", ["maintenance", "preflight"], seconds_ago=5)
    row = WorkerPresence.objects.get()
    assert row.queues == ["maintenance", "preflight"]
    assert row.last_seen == NOW - dt.timedelta(seconds=5) and row.stopped_at is None


def test_workers_are_alive_silent_or_stopped():
    report("cpu@a", ["preflight"], seconds_ago=10)
    report("gpu@b", ["gpu"], seconds_ago=95, gpus=["0", "1"])  # three reports missed
    report("cpu@c", ["maintenance"], seconds_ago=20)
    record_stopped(node="cpu@c", now=NOW - dt.timedelta(seconds=15))

    rows = {r.node: r for r in queue_health.workers(now=NOW)}

    assert {node: r.state for node, r in rows.items()} == {
        "cpu@a": "alive",
        "gpu@b": "silent",
        "cpu@c": "stopped",
    }
    assert rows["gpu@b"].gpus == ["0", "1"] and rows["gpu@b"].seconds_since == 95
    by_queue = {q["queue"]: q for q in queue_health.workers_by_queue(list(rows.values()))}
    assert (by_queue["preflight"]["alive"], by_queue["gpu"]["alive"]) == (1, 0)
    assert by_queue["gpu"]["workers"] == 1
    assert by_queue["gpu"]["last_seen"] == NOW - dt.timedelta(seconds=95)


def test_running_stages_show_their_age_and_stale_heartbeats(assignment, student, settings):
    settings.GRADER_HEARTBEAT_TIMEOUT = 300
    fresh = make_submission(assignment, student, status="training", with_result=False)
    stuck = make_submission(assignment, student, status="building", with_result=False)
    Submission.objects.filter(pk=fresh.pk).update(
        worker="gpu@b#1", training_at=NOW - dt.timedelta(minutes=20),
        heartbeat_at=NOW - dt.timedelta(seconds=12),
    )  # fmt: skip
    Submission.objects.filter(pk=stuck.pk).update(
        worker="cpu@a#2", building_at=NOW - dt.timedelta(minutes=9),
        heartbeat_at=NOW - dt.timedelta(minutes=8),
    )  # fmt: skip

    stages = queue_health.running_stages(now=NOW)

    assert [(s.submission_id, s.seconds, s.stale) for s in stages] == [
        (fresh.pk, 1200.0, False),
        (stuck.pk, 540.0, True),
    ]
    assert stages[0].heartbeat_seconds == 12


def test_infrastructure_errors_are_those_of_the_instructors_courses(
    assignment, student, instructor, other_course
):
    mine = make_submission(
        assignment, student, status="error", reason="infrastructure", with_result=False
    )
    elsewhere = Assignment.objects.create(
        course=other_course, slug="other", title="Other", rules_yaml="rules: []"
    )
    make_submission(elsewhere, student, status="error", reason="infrastructure", with_result=False)
    make_submission(assignment, student, status="failed", reason="rules")
    assert [s.pk for s in queue_health.recent_infrastructure_errors(instructor)] == [mine.pk]


def test_the_page_shows_workers_running_stages_and_errors(client, instructor, student, assignment):
    report("gpu@b", ["gpu"], seconds_ago=200, gpus=["0"], sandbox="docker")
    report("cpu@a", ["maintenance", "preflight"], seconds_ago=3)
    broken = make_submission(
        assignment, student, status="error", reason="infrastructure", with_result=False
    )
    Submission.objects.filter(pk=broken.pk).update(
        message="The docker sandbox is not available: engine down.", finished_at=NOW
    )
    client.force_login(instructor)

    html = client.get(reverse("queue_health")).content.decode()

    gpu = html[html.index('id="queue-gpu"') :]
    assert "✘ none" in gpu[: gpu.index("</tr>")] and "of 1" in gpu[: gpu.index("</tr>")]
    assert "✔ 1" in html[html.index('id="queue-preflight"') :].split("</tr>")[0]
    assert re.search(r"silent for 3 min [23]\d s", html)  # 200 s and the test's own time
    assert '<td data-label="Sandbox">docker</td>' in html
    errors = html[html.index('id="infrastructure-errors"') :]
    assert f"#{broken.pk:,}</a>" in errors and "engine down" in errors
