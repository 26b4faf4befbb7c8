"""Workers asking for the next stage at the same moment: each stage is handed out exactly once.

PostgreSQL: threads of this process, each on its own connection, claim together (the pick
locks its row and skips rows others hold). SQLite: worker processes on one database file, as
in the embedded default (every writing transaction takes the write lock at `BEGIN`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from django.db import connection

from assignments.models import Assignment, Course, Enrollment, Submission
from assignments.selectors.queue_order import waiting_order
from assignments.services import dispatcher
from assignments.services.submissions import create_submission
from tests.assignments.test_sqlite_concurrency import embedded_env
from tests.support.site_fixtures import RULES_YAML, make_user, model_json

Status = Submission.Status
ROOT = Path(__file__).resolve().parents[2]
WORKERS = 4
STUDENTS = 6
EACH = 3


def _queue_for_everyone() -> list[Submission]:
    course = Course.objects.create(slug="race", title="Race")
    assignment = Assignment.objects.create(
        course=course,
        slug="race-hw",
        title="Race",
        dataset="synthetic",
        rules_yaml=RULES_YAML,
        max_waiting_per_student=EACH,
    )
    made = []
    for n in range(STUDENTS):
        user = make_user(f"s{n}")
        Enrollment.objects.create(course=course, user=user)
        for k in range(EACH):
            made.append(
                create_submission(
                    assignment=assignment,
                    student=user,
                    filename="n.json",
                    data=model_json(1 + n * EACH + k),
                )
            )
    return made


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_postgresql_workers_claiming_together_each_get_a_different_stage(uploads_dir):
    if connection.vendor != "postgresql":
        from tests.conftest import service_missing

        service_missing(f"PostgreSQL as the test database (got {connection.vendor})")
    made = _queue_for_everyone()
    order = waiting_order("preflight")
    barrier = threading.Barrier(WORKERS)
    claims: dict[int, list[int]] = {n: [] for n in range(WORKERS)}
    failures: list[BaseException] = []

    def work(n: int) -> None:
        from django.db import connection as own

        try:
            barrier.wait(timeout=30)
            for run in range(100):
                claimed = dispatcher.claim_next(queue="preflight", worker=f"w{n}@h#w{n}r{run}.1")
                if claimed is None:
                    return
                claims[n].append(claimed.submission_id)
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert failures == []
    everything = [pk for runs in claims.values() for pk in runs]
    assert sorted(everything) == sorted(s.pk for s in made)  # each once, none left
    # Each worker took the first stage left at its turn: its own claims follow the order.
    for runs in claims.values():
        places = [order.index(pk) for pk in runs]
        assert places == sorted(places)
    for n, runs in claims.items():
        for pk in runs:
            row = Submission.objects.get(pk=pk)
            assert (row.status, row.worker.split("#")[0]) == (Status.BUILDING, f"w{n}@h")


SETUP = """
    import json
    import django
    django.setup()
    from django.core.management import call_command
    call_command("migrate", verbosity=0)
    from tests.assignments import test_dispatch_concurrency as t
    made = t._queue_for_everyone()
    print(json.dumps([s.pk for s in made]))
"""

CLAIMER = """
    import json, sys, time
    import django
    django.setup()
    from assignments.services import dispatcher
    name, start = sys.argv[1], float(sys.argv[2])
    time.sleep(max(0.0, start - time.time()))
    claims = []
    while True:
        claimed = dispatcher.claim_next(
            queue="preflight", worker=f"{name}@h#{name}r{len(claims)}.1"
        )
        if claimed is None:
            break
        claims.append(claimed.submission_id)
    print(json.dumps(claims))
"""


@pytest.mark.embedded
def test_sqlite_worker_processes_claiming_together_each_get_a_different_stage(tmp_path):
    env = embedded_env(tmp_path)
    env["GRADER_MEDIA_ROOT"] = str(tmp_path / "uploads")
    setup = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SETUP)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert setup.returncode == 0, setup.stderr[-3000:]
    made = json.loads(setup.stdout.strip().splitlines()[-1])
    start = time.time() + 4.0  # every process imported Django and waits for the same moment
    claimers = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(CLAIMER), f"w{n}", str(start)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(WORKERS)
    ]
    claims = {}
    for n, process in enumerate(claimers):
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-3000:]
        claims[n] = json.loads(out.strip().splitlines()[-1])

    everything = [pk for runs in claims.values() for pk in runs]
    assert sorted(everything) == sorted(made)
    import sqlite3

    with sqlite3.connect(tmp_path / "db.sqlite3") as db:
        rows = dict(db.execute("SELECT id, worker FROM assignments_submission").fetchall())
    for n, runs in claims.items():
        assert all(rows[pk].startswith(f"w{n}@h#") for pk in runs)
