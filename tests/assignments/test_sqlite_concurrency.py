"""Concurrent uploads on the embedded default: one SQLite file, a web server and a worker.

The Quick start runs `manage.py runserver` (a thread per request) and a Celery worker on the same
SQLite file. In SQLite's default deferred transactions, a request that reads (enrollment, quota,
duplicates) and then writes fails at once with "database is locked" when another connection
writes meanwhile: the lock upgrade cannot wait, whatever the busy timeout. These tests start the
real server on a database file under a temporary var folder (not pytest-django's in-memory test
database, which has neither the file locks nor WAL), upload from many threads at the same moment
while a worker process writes epochs, and check every answer and every stored file.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from assignments.client.http import Api, ApiError
from tests.support.site_fixtures import model_json

pytestmark = pytest.mark.embedded

ROOT = Path(__file__).resolve().parents[2]
QUOTA = 3
STUDENTS = ["s1", "s2", "s3"]
EDGE_STUDENT = "edge"  # uploads more files at once than the daily quota allows
WORKER = "worker@test#1"

SETUP = f"""
    import json
    import django
    django.setup()
    from django.core.management import call_command
    from django.core.files.base import ContentFile
    from django.utils import timezone
    from rest_framework.authtoken.models import Token
    from django.contrib.auth import get_user_model
    from assignments.models import Assignment, Course, Enrollment, Submission

    call_command("migrate", verbosity=0)
    course = Course.objects.create(slug="race", title="Race")
    assignment = Assignment.objects.create(
        course=course, slug="race-hw", title="Race", dataset="synthetic",
        rules_yaml="rules:\\n  - id: max_params\\n    limit: 20000\\n", daily_quota={QUOTA},
        max_waiting_per_student=100,  # the quota is what these uploads race for
    )
    tokens = {{}}
    for name in {[*STUDENTS, EDGE_STUDENT, "trainee"]!r}:
        user = get_user_model().objects.create_user(name, password="x")
        Enrollment.objects.create(course=course, user=user)
        tokens[name] = Token.objects.create(user=user).key
    # The submission the worker process is training while the uploads arrive.
    training = Submission(
        assignment=assignment, student=get_user_model().objects.get(username="trainee"),
        original_name="t.json", file_format="json", sha256="0" * 64, size_bytes=1,
        status=Submission.Status.TRAINING, worker={WORKER!r}, queued_at=timezone.now(),
    )
    training.file.save("t.json", ContentFile(b"{{}}"), save=False)
    training.save()
    print(json.dumps({{"tokens": tokens, "training": training.pk}}))
"""

# The worker side of the race, through the services a training worker calls: every epoch is a
# locked read of the submission, then writes (record_epoch), plus heartbeats.
WORKER_LOOP = f"""
    import sys, time
    from pathlib import Path
    import django
    django.setup()
    from assignments.services.grading import heartbeat, record_epoch

    stop = Path(sys.argv[1])
    training = int(sys.argv[2])
    epoch = 0
    while not stop.exists():
        epoch = epoch % 500 + 1
        assert record_epoch(
            submission_id=training, worker={WORKER!r}, epoch=epoch,
            metrics={{"loss": 1.0 / epoch, "accuracy": 0.5}},
        )
        assert heartbeat(submission_id=training, worker={WORKER!r})
    print("epochs", epoch)
"""


def embedded_env(var_dir: Path) -> dict[str, str]:
    """The Quick start's environment: no service URL, no .env, everything under `var_dir`."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE"}
    }
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.local",
        GRADER_ENV_FILE="",
        GRADER_VAR_DIR=str(var_dir),
        PYTHONPATH=str(ROOT),
    )
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Site:
    url: str
    tokens: dict[str, str]
    var_dir: Path
    training: int


@pytest.fixture
def site(tmp_path) -> Iterator[Site]:
    """The embedded default migrated into a SQLite file, served by runserver, with a worker."""
    env = embedded_env(tmp_path)
    setup = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SETUP)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert setup.returncode == 0, setup.stderr
    described = json.loads(setup.stdout.strip().splitlines()[-1])
    port = free_port()
    # A file, not a pipe: tracebacks of failed requests would fill a pipe and stall the server.
    log = (tmp_path / "web.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert server.poll() is None, (tmp_path / "web.log").read_text()
                assert time.monotonic() < deadline, "runserver did not open its port in 60 s"
                time.sleep(0.2)
        yield Site(f"http://127.0.0.1:{port}", described["tokens"], tmp_path, described["training"])
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


@pytest.fixture
def busy_worker(site) -> Iterator[None]:
    """A worker process writing epochs and heartbeats to the same file during the test."""
    stop = site.var_dir / "stop-worker"
    worker = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(WORKER_LOOP), str(stop), str(site.training)],
        cwd=site.var_dir, env=embedded_env(site.var_dir),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(1.0)  # let it get into its loop: the uploads must meet its writes
    assert worker.poll() is None, worker.communicate()[1]
    yield
    stop.touch()
    out, err = worker.communicate(timeout=60)
    # The worker's own read-then-write transactions must not have failed either.
    assert worker.returncode == 0, err
    assert out.startswith("epochs"), out


def upload_all_at_once(site: Site, uploads: list[tuple[str, Path]]) -> list[tuple[str, int, str]]:
    """POST every (username, file) from its own thread, released together; (user, status, code)."""
    barrier = threading.Barrier(len(uploads))
    answers: list[tuple[str, int, str]] = []
    lock = threading.Lock()

    def send(username: str, path: Path) -> None:
        api = Api(site.url, site.tokens[username], timeout=120)
        barrier.wait()
        try:
            api.post_file("/api/v1/assignments/race-hw/submissions/", path)
            answer = (username, 201, "")
        except ApiError as exc:
            answer = (
                username,
                exc.status,
                exc.error_code if exc.status < 500 else exc.message[:300],
            )
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=send, args=upload) for upload in uploads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    assert len(answers) == len(uploads), "an upload thread did not finish"
    return answers


def stored_state(var_dir: Path) -> tuple[dict[str, int], set[str], set[str]]:
    """Rows per student, file names in the rows, and files in the uploads folder (read directly)."""
    with sqlite3.connect(var_dir / "db.sqlite3") as db:
        rows = db.execute(
            "SELECT u.username, s.file FROM assignments_submission s "
            "JOIN auth_user u ON u.id = s.student_id"
        ).fetchall()
    per_student: dict[str, int] = {}
    for username, _ in rows:
        per_student[username] = per_student.get(username, 0) + 1
    uploads = var_dir / "uploads"
    on_disk = {str(p.relative_to(uploads)) for p in uploads.rglob("*") if p.is_file()}
    return per_student, {name for _, name in rows}, on_disk


DESCRIBE_CONNECTION = """
    import json
    import django
    django.setup()
    from django.db import connection, transaction
    with connection.cursor() as cursor:
        pragmas = {
            name: cursor.execute(f"PRAGMA {name}").fetchone()[0]
            for name in ("journal_mode", "synchronous", "busy_timeout")
        }
    # An atomic block that has not written yet already holds the write lock (BEGIN IMMEDIATE):
    # another connection cannot start writing.
    import sqlite3
    with transaction.atomic():
        connection.ensure_connection()
        other = sqlite3.connect(connection.settings_dict["NAME"], timeout=0)
        try:
            other.execute("BEGIN IMMEDIATE")
            pragmas["other_writer"] = "allowed"
        except sqlite3.OperationalError as exc:
            pragmas["other_writer"] = str(exc)
        other.close()
    print(json.dumps({"transaction_mode": connection.transaction_mode, **pragmas}))
"""


@pytest.mark.parametrize(
    ("module", "database_url"),
    [
        ("config.settings.local", None),  # the Quick start's web process and worker
        ("config.settings.test", None),
        ("config.settings.local", "sqlite:///{var}/other.sqlite3"),  # a SQLite URL set by hand
    ],
)
def test_every_sqlite_connection_waits_for_the_write_lock_in_wal_mode(
    tmp_path, module, database_url
):
    env = embedded_env(tmp_path)
    env["DJANGO_SETTINGS_MODULE"] = module
    if database_url:
        env["DATABASE_URL"] = database_url.format(var=tmp_path)
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(DESCRIBE_CONNECTION)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    described = json.loads(result.stdout.strip().splitlines()[-1])
    assert described == {
        "transaction_mode": "IMMEDIATE",
        "journal_mode": "wal",
        "synchronous": 1,  # NORMAL
        "busy_timeout": 30_000,
        "other_writer": "database is locked",
    }


def test_simultaneous_uploads_all_succeed_or_hit_the_quota_while_a_worker_writes(
    site, busy_worker, tmp_path
):
    files = tmp_path / "files"
    files.mkdir()
    uploads: list[tuple[str, Path]] = []
    for n, username in enumerate([*STUDENTS, *[EDGE_STUDENT] * 8]):
        path = files / f"model{n}.json"
        path.write_bytes(model_json(filters=4 + n))  # distinct bytes: no duplicates
        uploads.append((username, path))

    answers = upload_all_at_once(site, uploads)

    errors = [answer for answer in answers if answer[1] not in (201, 429)]
    server_log = (site.var_dir / "web.log").read_text()[-3000:]
    assert errors == [], f"expected only 201 and 429 answers, received {errors}\n{server_log}"
    by_student = {
        name: sorted(status for user, status, _ in answers if user == name)
        for name in [*STUDENTS, EDGE_STUDENT]
    }
    assert by_student == {
        **{name: [201] for name in STUDENTS},
        # The quota's last slot is won exactly QUOTA times: the uploads were serialized.
        EDGE_STUDENT: [201] * QUOTA + [429] * (8 - QUOTA),
    }
    assert {error_code for _, status, error_code in answers if status == 429} == {"quota_exceeded"}
    per_student, in_rows, on_disk = stored_state(site.var_dir)
    assert per_student == {**{name: 1 for name in STUDENTS}, EDGE_STUDENT: QUOTA, "trainee": 1}
    # Refused uploads leave no file behind, and every row's file exists.
    assert on_disk == in_rows
