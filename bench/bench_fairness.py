"""Fair share at the deadline, with real workers on PostgreSQL and Redis.

One student uploads 10 submissions, then 20 students upload one each within a second, to the
`smoke` preset (synthetic dataset, trainings of one epoch, bubblewrap sandboxes on the CPU).
Two Celery workers grade everything, as docker-compose deploys them: one on the `preflight`
and `maintenance` queues (build, check, finalize, the reaper) and one on the `gpu` queue
(train, evaluate; `--gpu-concurrency` processes, CPU only here). Stages are handed out in the
fair order. The script prints, per student, the time from upload to their first verdict, then
checks the two goals:

- every one of the 20 gets a verdict before the flooding student's third;
- the `gpu` worker's processes are busy running a stage for at least 90 % of the wall time
  (from the first upload to the last verdict), from the worker's own log of each task's run
  time.

    .venv/bin/python bench/bench_fairness.py           # scratch database, Redis db 11
    BENCH_BROKER_URL=redis://127.0.0.1:6379/12 .venv/bin/python bench/bench_fairness.py

It creates `grader_bench_<pid>` on the local PostgreSQL (trust auth, user postgres) and drops it
at the end; the Redis database named by BENCH_BROKER_URL (default 11) is emptied before and
after. The flooding student's assignment allows 10 unfinished submissions at once (the default,
2, would refuse 8 of the 10 uploads: the script shows that first, then raises the limit so that
the order itself is measured).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from local_stack import create_database, wait_ready  # this folder: run as a script

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/11")
BUSY_GOAL = 0.90
TASK_LINE = re.compile(r"Task (workers\.\w+)\[[^\]]+\] succeeded in ([0-9.]+)s: '(\w+)'")


def model_bytes(n: int) -> bytes:
    """The smoke reference model as a JSON upload, made unique by its name (as a comment would
    make a `.py` unique): every upload is a new grading, none a duplicate."""
    config = json.loads((ROOT / "tests/fixtures/models/smoke_separable.json").read_text())
    config["config"]["name"] = f"upload_{n}"
    return json.dumps(config).encode()


def seed(students: int) -> tuple[object, object, list[object]]:
    """The course, the `smoke` assignment (trainings of one epoch), the flooder and the others."""
    import yaml
    from django.contrib.auth import get_user_model

    from assignments.models import Assignment, Course, Enrollment
    from grader.presets import preset_text

    rules = yaml.safe_load(preset_text("smoke"))
    rules["training"]["epochs"] = 1  # short trainings: the order is what is measured
    course = Course.objects.create(slug="bench", title="Fairness benchmark")
    assignment = Assignment.objects.create(
        course=course,
        slug="smoke",
        title="Smoke",
        dataset="synthetic",
        rules_yaml=yaml.safe_dump(rules, sort_keys=False),
        time_limit_seconds=300,
        max_epochs=5,
        daily_quota=100,
    )
    users = get_user_model()
    flooder = users.objects.create_user("flooder", password="x")
    others = [users.objects.create_user(f"student{i:02d}", password="x") for i in range(students)]
    for user in [flooder, *others]:
        Enrollment.objects.create(course=course, user=user)
    return assignment, flooder, others


def start_worker(
    env: dict[str, str], log: Path, *, queues: str, concurrency: int, beat: bool
) -> subprocess.Popen[bytes]:
    celery = str(Path(sys.executable).with_name("celery"))
    handle = log.open("wb")
    argv = [
        celery, "-A", "workers", "worker", "-Q", queues, "--concurrency", str(concurrency),
        "--pool", "prefork", "--prefetch-multiplier", "1", "--loglevel", "INFO",
        "-n", f"{log.stem}{os.getpid()}@%h",
    ]  # fmt: skip
    if beat:
        argv += ["-B", "-s", str(log.with_suffix(".beat"))]
    return subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
    )


def busy_seconds(log: Path) -> tuple[float, int]:
    """Seconds the worker's processes spent running stages (tasks that did one), and how
    many tasks ran none (their stage had been handed out already)."""
    busy, idle_runs = 0.0, 0
    for name, seconds, outcome in TASK_LINE.findall(log.read_text(errors="replace")):
        if name == "workers.reap_stale_submissions":
            continue
        if outcome == "skipped":
            idle_runs += 1
        busy += float(seconds)
    return busy, idle_runs


def write_timeline(path: Path, uploads: dict[int, tuple[str, float]]) -> None:
    """One CSV row per submission: who, its fair round, and when each stage began (seconds
    after the first upload, from the database's timestamps)."""
    import csv

    from assignments.models import Submission

    stamps = ("created_at", "building_at", "checking_at", "training_at", "evaluating_at")
    rows = list(Submission.objects.filter(pk__in=list(uploads)).order_by("pk"))
    first = min(row.created_at for row in rows)
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["id", "user", "fair_round", "status", *stamps, "finished_at"])
        for row in rows:
            times = [getattr(row, name) for name in (*stamps, "finished_at")]
            out.writerow(
                [row.pk, uploads[row.pk][0], row.fair_round, row.status]
                + [f"{(t - first).total_seconds():.1f}" if t else "" for t in times]
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=20)
    parser.add_argument("--flood", type=int, default=10)
    parser.add_argument("--gpu-concurrency", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument("--timeline", help="write when each stage began, per submission (CSV)")
    parser.add_argument("--worker-log", help="keep the worker's log at this path")
    args = parser.parse_args()

    url, drop = create_database()
    var = Path(tempfile.mkdtemp(prefix="bench-fairness-"))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "GRADER_ENV_FILE": "",
        "DATABASE_URL": url,
        "CELERY_BROKER_URL": BROKER_URL,
        "GRADER_VAR_DIR": str(var),
        "GRADER_SANDBOX": "bwrap",
        "GRADER_HEARTBEAT_INTERVAL": "5",
        # The workers and this process must choose the same hidden examples.
        "GRADER_DATASET_KEY": secrets.token_urlsafe(48),
    }
    os.environ.update(env)
    import django

    django.setup()
    import redis
    from django.core.management import call_command
    from django.utils import timezone

    from assignments.models import Submission
    from assignments.services.submissions import TooManyWaiting, create_submission
    from grader.datasets import prepare_dataset

    redis.Redis.from_url(BROKER_URL).flushdb()
    workers: list[subprocess.Popen[bytes]] = []
    log = var / "gpu.log"
    preflight_log = var / "preflight.log"
    try:
        call_command("migrate", verbosity=0)
        prepare_dataset("synthetic", var / "datasets", key=env["GRADER_DATASET_KEY"])
        assignment, flooder, others = seed(args.students)

        # With the default limit (2 unfinished at once), most of the flood is refused.
        refused = 0
        for n in range(args.flood):
            try:
                create_submission(
                    assignment=assignment,
                    student=flooder,
                    filename="net.json",
                    data=model_bytes(n),
                )
            except TooManyWaiting:
                refused += 1
        print(
            f"default limit ({assignment.max_waiting_per_student}): {refused} of {args.flood} "
            "flooding uploads refused (429)"
        )
        Submission.objects.all().delete()
        redis.Redis.from_url(BROKER_URL).flushdb()  # their messages too
        assignment.max_waiting_per_student = args.flood
        assignment.save()

        workers.append(
            start_worker(
                env, preflight_log, queues="preflight,maintenance", concurrency=1, beat=True
            )
        )
        workers.append(
            start_worker(env, log, queues="gpu", concurrency=args.gpu_concurrency, beat=False)
        )
        wait_ready(preflight_log, workers[0])
        wait_ready(log, workers[1])
        began = time.monotonic()
        uploads: dict[int, tuple[str, float]] = {}
        for n in range(args.flood):
            sub = create_submission(
                assignment=assignment, student=flooder, filename="net.json", data=model_bytes(n)
            )
            uploads[sub.pk] = ("flooder", time.monotonic())
        burst = time.monotonic()
        for i, user in enumerate(others):
            sub = create_submission(
                assignment=assignment,
                student=user,
                filename="net.json",
                data=model_bytes(100 + i),
            )
            uploads[sub.pk] = (user.username, time.monotonic())
        burst_seconds = time.monotonic() - burst
        print(f"{args.students} students uploaded one each in {burst_seconds:.2f} s")

        deadline = time.monotonic() + args.timeout
        verdicts: dict[int, float] = {}
        while len(verdicts) < len(uploads):
            if time.monotonic() > deadline:
                print(f"TIMEOUT after {args.timeout:.0f} s; {len(verdicts)} verdicts")
                break
            if any(worker.poll() is not None for worker in workers):
                print(f"a worker exited:\n{log.read_text(errors='replace')[-3000:]}")
                break
            ended = Submission.objects.filter(
                pk__in=list(uploads), status__in=Submission.TERMINAL_STATUSES
            ).values_list("pk", flat=True)
            for pk in ended:
                verdicts.setdefault(pk, time.monotonic())
            time.sleep(0.25)
        wall = max(verdicts.values(), default=time.monotonic()) - began
        statuses = dict(Submission.objects.filter(pk__in=list(uploads)).values_list("pk", "status"))
        if args.timeline:
            write_timeline(Path(args.timeline), uploads)
        if args.worker_log:
            Path(args.worker_log).write_bytes(log.read_bytes())
    finally:
        for worker in workers:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
        redis.Redis.from_url(BROKER_URL).flushdb()
        drop()

    waits = {pk: verdicts[pk] - uploads[pk][1] for pk in uploads if pk in verdicts}
    flood = sorted(pk for pk in uploads if uploads[pk][0] == "flooder")
    flood_verdicts = sorted(verdicts[pk] for pk in flood if pk in verdicts)
    print()
    print("| student | upload -> first verdict (s) | verdict |")
    print("| --- | ---: | --- |")
    for pk, (name, _) in sorted(uploads.items(), key=lambda item: waits.get(item[0], 1e9)):
        if name == "flooder" and pk != flood[0]:
            continue
        shown = f"{waits[pk]:.1f}" if pk in waits else "none"
        print(f"| {name} | {shown} | {statuses.get(pk, '?')} |")
    flooder_waits = [f"{waits[pk]:.0f}" for pk in flood if pk in waits]
    print(f"\nflooder's verdicts, s after each upload: {', '.join(flooder_waits)}")
    others_waits = [waits[pk] for pk in uploads if uploads[pk][0] != "flooder" and pk in waits]
    if others_waits:
        print(
            f"the {len(others_waits)} students: median {statistics.median(others_waits):.1f} s, "
            f"max {max(others_waits):.1f} s"
        )

    busy, idle_runs = busy_seconds(log)
    share = busy / (args.gpu_concurrency * wall) if wall > 0 else 0.0
    preflight_busy, _ = busy_seconds(preflight_log)
    last_other = max(
        (verdicts[pk] for pk in uploads if uploads[pk][0] != "flooder" and pk in verdicts),
        default=float("inf"),
    )
    third = flood_verdicts[2] if len(flood_verdicts) >= 3 else float("inf")
    all_done = len(verdicts) == len(uploads)
    fair = all_done and last_other < third
    print(
        f"\nwall time {wall:.1f} s (first upload to last verdict); the {args.gpu_concurrency} gpu "
        f"worker processes busy {busy:.1f} s = {share:.1%} of it ({idle_runs} messages found "
        f"their stage handed out already); the preflight worker busy {preflight_busy:.1f} s"
    )
    print(
        f"every student's verdict before the flooder's third: "
        f"{'PASS' if fair else 'FAIL'} (last student at {last_other - began:.1f} s, "
        f"flooder's third at {third - began:.1f} s)"
    )
    print(f"gpu workers busy >= {BUSY_GOAL:.0%}: {'PASS' if share >= BUSY_GOAL else 'FAIL'}")
    print(
        f"load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())} "
        f"on {os.cpu_count()} cores; verdicts at {timezone.now():%Y-%m-%d %H:%M} UTC"
    )
    return 0 if fair and share >= BUSY_GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
