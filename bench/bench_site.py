"""Benchmark of the site's read paths at two sizes, in one process, on PostgreSQL.

Seeds one course with 300 students: assignment `big` gets 10,000 submissions, assignment `small`
100. Then, for each page (leaderboard, instructor submissions table, API submission list, API
leaderboard, grades CSV) it measures the latency (p50, p95 over repeated requests through
Django's test client, after a warm-up) and the number of SQL queries, for both sizes, and prints
the ratios big/small with PASS/FAIL against the goals: p95 under 100 ms at 10,000 submissions,
and the same number of queries at both sizes.

    .venv/bin/python bench/bench_site.py            # creates and drops a scratch database
    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/mydb .venv/bin/python bench/bench_site.py

Without BENCH_DATABASE_URL it creates `grader_bench_<pid>` on the local server (trust auth, user
postgres) and drops it at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import sys
import time
from pathlib import Path

from local_stack import create_database  # this folder: run as a script

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

P95_GOAL_MS = 100.0


def seed(n_students: int, n_big: int, n_small: int, seed_value: int = 0) -> dict:
    """Bulk-insert the course, users, enrollments, two assignments, submissions and results."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from assignments.models import Assignment, Course, Enrollment, Result, Submission

    rng = random.Random(seed_value)
    user_model = get_user_model()
    course = Course.objects.create(slug="bench", title="Benchmark course")
    instructor = user_model.objects.create_user("bench-prof", password="x")
    Enrollment.objects.create(course=course, user=instructor, role=Enrollment.Role.INSTRUCTOR)
    students = user_model.objects.bulk_create(
        [user_model(username=f"student{i:04d}", password="!") for i in range(n_students)]
    )
    Enrollment.objects.bulk_create(
        [
            Enrollment(course=course, user=u, display_name=f"Student {i}", pseudonym=f"P-{i:06d}")
            for i, u in enumerate(students)
        ]
    )
    rules = "rules:\n  - id: max_params\n    limit: 100000\n"
    big = Assignment.objects.create(course=course, slug="big", title="Big", rules_yaml=rules)
    small = Assignment.objects.create(course=course, slug="small", title="Small", rules_yaml=rules)
    start = timezone.now() - dt.timedelta(days=20)
    statuses = ["finished"] * 7 + ["failed", "error", "queued"]
    for assignment, count, pool in ((big, n_big, students), (small, n_small, students[:30])):
        subs = []
        for i in range(count):
            student = pool[i % len(pool)]
            subs.append(
                Submission(
                    assignment=assignment,
                    student=student,
                    file=f"submissions/{assignment.pk}/{i:06d}.json",
                    original_name="model.json",
                    file_format="json",
                    sha256=f"{assignment.pk:08d}{i:056d}",
                    size_bytes=4096,
                    status=rng.choice(statuses),
                    log="epoch 1/10 ...\n" * 50,
                    queued_at=start + dt.timedelta(minutes=i),
                )
            )
        subs = Submission.objects.bulk_create(subs, batch_size=2000)
        # created_at is auto_now_add: spread it over the period, as real traffic would be.
        for i, sub in enumerate(subs):
            sub.created_at = start + dt.timedelta(minutes=i * 2)
        Submission.objects.bulk_update(subs, ["created_at"], batch_size=2000)
        results = []
        for sub in subs:
            if sub.status not in ("finished", "failed"):
                continue
            passed = sub.status == "finished" and rng.random() < 0.85
            params = rng.randrange(20_000, 120_000)
            results.append(
                Result(
                    submission=sub,
                    rules_version=1,
                    passed=passed,
                    accuracy=round(rng.uniform(0.4, 0.92), 4) if sub.status == "finished" else None,
                    params_total=params,
                    params_trainable=params,
                    score=100.0 if passed else 50.0,
                    rules=[{"id": "max_params", "name": "max_params", "passed": params <= 100_000,
                            "measured": params, "limit": 100_000, "message": "", "hint": None,
                            "points": 1.0}],
                    checks={"layers": [{"name": f"l{k}", "params": 100} for k in range(30)]},
                )
            )  # fmt: skip
        Result.objects.bulk_create(results, batch_size=2000)
    return {"instructor": instructor, "student": students[0], "big": big, "small": small}


def measure(client, url: str, repeat: int) -> tuple[list[float], list[float], int, int]:
    """Wall and CPU milliseconds over `repeat` requests, one request's query count, its status.

    CPU time is this process's (Django's) share; wall time also includes PostgreSQL and, on a
    shared machine, waiting for a core: both are reported so a loaded host can be recognised.
    """
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(3):  # warm-up: connections, template loading, caches of the database
        client.get(url)
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    # Read now: the next request's request_started signal clears the connection's query log.
    queries = len(ctx.captured_queries)
    times, cpu = [], []
    for _ in range(repeat):
        begin, begin_cpu = time.perf_counter(), time.process_time()
        client.get(url)
        times.append((time.perf_counter() - begin) * 1000)
        cpu.append((time.process_time() - begin_cpu) * 1000)
    return times, cpu, queries, response.status_code


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(repeat: int, n_students: int, n_big: int, n_small: int) -> bool:
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client
    from rest_framework.authtoken.models import Token

    call_command("migrate", verbosity=0)
    begin = time.perf_counter()
    rows = seed(n_students, n_big, n_small)
    from django.db import connection

    with connection.cursor() as cursor:
        # Fresh statistics, as autovacuum would have gathered on a live database: without them
        # the planner guesses one row per table after a bulk insert.
        cursor.execute("ANALYZE")
    print(
        f"Seeded {n_big:,} + {n_small:,} submissions, {n_students:,} students in "
        f"{time.perf_counter() - begin:.1f} s."
    )
    instructor_client = Client()
    instructor_client.force_login(rows["instructor"])
    student_client = Client()
    student_client.force_login(rows["student"])
    token = Token.objects.create(user=rows["instructor"]).key
    api_client = Client(HTTP_AUTHORIZATION=f"Token {token}")
    pages = [
        ("leaderboard page", student_client, "/a/{slug}/leaderboard/"),
        ("submissions table", instructor_client, "/manage/a/{slug}/"),
        ("API submission list", api_client, "/api/v1/assignments/{slug}/submissions/"),
        ("API leaderboard", api_client, "/api/v1/assignments/{slug}/leaderboard/"),
        ("grades CSV", instructor_client, "/manage/a/{slug}/grades.csv"),
    ]
    ok = True
    header = (
        f"{'page':<22}{'size':>7}{'p50 ms':>9}{'p95 ms':>9}{'cpu p50':>9}{'queries':>9}   "
        f"{'p95 big/small':>13}  verdict"
    )
    print(header)
    print("-" * len(header))
    for name, client, pattern in pages:
        measured = {}
        for size, assignment in (("small", rows["small"]), ("big", rows["big"])):
            url = pattern.format(slug=assignment.slug)
            times, cpu, queries, status = measure(client, url, repeat)
            assert status == 200, f"{name} answered {status}"
            measured[size] = (
                percentile(times, 0.5),
                percentile(times, 0.95),
                queries,
                percentile(cpu, 0.5),
            )
        for size in ("small", "big"):
            p50, p95, queries, cpu50 = measured[size]
            line = f"{name:<22}{size:>7}{p50:>9.1f}{p95:>9.1f}{cpu50:>9.1f}{queries:>9}"
            if size == "big":
                ratio = p95 / measured["small"][1]
                fast = p95 < P95_GOAL_MS
                constant = queries == measured["small"][2]
                ok = ok and fast and constant
                verdict = (
                    f"{'PASS' if fast else 'FAIL'} p95<{P95_GOAL_MS:.0f}ms, "
                    f"{'PASS' if constant else 'FAIL'} queries {measured['small'][2]}->{queries}"
                )
                line += f"   {ratio:>12.2f}x  {verdict}"
            print(line)
    print("OVERALL:", "PASS" if ok else "FAIL", f"(load average {os.getloadavg()[0]:.1f})")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=40, help="timed requests per page and size")
    parser.add_argument("--students", type=int, default=300)
    parser.add_argument("--big", type=int, default=10_000)
    parser.add_argument("--small", type=int, default=100)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    url = os.environ.get("BENCH_DATABASE_URL")
    drop = None
    if url is None:
        url, drop = create_database()
    os.environ["DATABASE_URL"] = url
    try:
        ok = run(args.repeat, args.students, args.big, args.small)
    finally:
        if drop is not None:
            drop()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
