"""Latency of one grading on this machine: upload to static verdict, upload to final verdict.

Grades the `smoke` reference submission (`tests/fixtures/models/smoke_submission.py`, a `.py`
upload, the preset's 5 epochs on the synthetic dataset) one upload at a time through the real
service: `create_submission` (what the upload API calls), a Celery worker started as the Quick
start starts it (`-Q preflight,gpu,maintenance --concurrency 1`), bubblewrap sandboxes. Twice, in
the same run, each with its own worker:

- **before**: the build sandbox imports TensorFlow (`GRADER_BUILD_KERAS_BACKEND=tensorflow`),
  no warm build, train or evaluate sandbox (`GRADER_WARM_BUILD=false`,
  `GRADER_WARM_TRAIN=false`, `GRADER_WARM_EVALUATE=false`) and the embedded broker polls its
  queues every second (kombu's default, `CELERY_BROKER_POLLING_INTERVAL=1`), as before issue
  15 (except that the evaluate stage finalizes at once in both: that has no switch);
- **after**: the defaults (numpy build backend, warm build, train and evaluate sandboxes,
  0.1 s polls).

Each configuration starts with one unmeasured grading (the worker's first build and training
start cold and start the warm sandboxes the next upload uses; file caches).

For each it prints the medians over `--runs` uploads of: upload to static verdict (rules,
parameters, receptive field, hints: the check stage's result row), upload to final verdict,
the pure epoch time (the sum of the epochs' own seconds), and where the time went (each stage's
span between the timestamps the workers record, queue hops included), then the two goals and
the after/before ratios:

- static verdict within 2 s of the upload;
- final verdict within 2 x the epoch time + 3 s.

    .venv/bin/python bench/bench_latency.py                  # embedded default (SQLite, files)
    .venv/bin/python bench/bench_latency.py --stack services # PostgreSQL + Redis (db 13)
    .venv/bin/python bench/bench_latency.py --runs 5 --only after

The embedded stack lives in a scratch folder; `services` creates `grader_bench_<pid>` on the
local PostgreSQL (dropped at the end) and empties the Redis database of BENCH_BROKER_URL. The
machine is shared: the script also prints the load average, since a busy machine stretches
every figure.
"""

from __future__ import annotations

import argparse
import os
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

BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/13")
STATIC_GOAL_SECONDS = 2.0
SUBMISSION = ROOT / "tests/fixtures/models/smoke_submission.py"
#: The settings that differ between the two configurations measured.
CONFIGURATIONS = {
    "before": {
        "GRADER_BUILD_KERAS_BACKEND": "tensorflow",
        "GRADER_WARM_BUILD": "false",
        "GRADER_WARM_TRAIN": "false",
        "GRADER_WARM_EVALUATE": "false",
        "CELERY_BROKER_POLLING_INTERVAL": "1",
    },
    "after": {},
}
SPANS = (
    ("upload -> build starts", "uploaded", "building_at"),
    ("build (+ hop to check)", "building_at", "checking_at"),
    ("check", "checking_at", "static"),
    ("hop to training", "static", "training_at"),
    ("train (+ hop to evaluate)", "training_at", "evaluating_at"),
    ("evaluate + finalize", "evaluating_at", "finished_at"),
)


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """One worker on every queue, one process: the Quick start's (`scripts/quickstart.sh`)."""
    celery = str(Path(sys.executable).with_name("celery"))
    argv = [
        celery, "-A", "workers", "worker", "-Q", "preflight,gpu,maintenance",
        "--concurrency", "1", "--loglevel", "INFO", "-n", f"{log.stem}{os.getpid()}@%h",
    ]  # fmt: skip
    return subprocess.Popen(
        argv,
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGTERM)
    try:
        worker.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()


def grade_once(assignment: object, student: object, n: int, timeout: float) -> dict[str, float]:
    """Upload the smoke submission (made unique by a comment), wait for its verdict, and return
    the seconds from the upload to each recorded moment, and the epochs' own seconds."""
    from django.utils import timezone

    from assignments.models import EpochMetric, Result, Submission
    from assignments.services.submissions import create_submission

    data = SUBMISSION.read_bytes() + f"\n# upload {n} {time.time()}\n".encode()
    uploaded = timezone.now()
    submission = create_submission(
        assignment=assignment, student=student, filename="smoke.py", data=data
    )
    deadline = time.monotonic() + timeout
    while True:
        submission.refresh_from_db()
        if submission.status in Submission.TERMINAL_STATUSES:
            break
        if time.monotonic() > deadline:
            sys.exit(f"Submission {submission.pk} not graded in {timeout:.0f} s")
        time.sleep(0.1)
    if submission.status != Submission.Status.FINISHED:
        sys.exit(f"Submission {submission.pk}: {submission.status}: {submission.message}")
    result = Result.objects.get(submission=submission)
    moments = {
        "uploaded": uploaded,
        "building_at": submission.building_at,
        "checking_at": submission.checking_at,
        "static": result.created_at,
        "training_at": submission.training_at,
        "evaluating_at": submission.evaluating_at,
        "finished_at": submission.finished_at,
    }
    out = {name: (moment - uploaded).total_seconds() for name, moment in moments.items()}
    epochs = EpochMetric.objects.filter(submission=submission).values_list("seconds", flat=True)
    out["epoch_seconds"] = float(sum(s or 0.0 for s in epochs))
    out["epochs"] = float(len(epochs))
    return out


def measure(
    name: str, env: dict[str, str], var: Path, runs: int, timeout: float
) -> list[dict[str, float]]:
    from django.contrib.auth import get_user_model

    from assignments.models import Assignment

    assignment = Assignment.objects.get(slug="smoke")
    student = get_user_model().objects.get(username="student1")
    log = var / f"worker-{name}.log"
    worker = start_worker({**env, **CONFIGURATIONS[name]}, log)
    try:
        wait_ready(log, worker)
        time.sleep(2.0)  # the worker's own start-up work (presence, take-back) settles
        grade_once(assignment, student, -1, timeout)  # warm-up: file caches, first compile
        samples = []
        for n in range(runs):
            samples.append(grade_once(assignment, student, n, timeout))
            print(
                f"  {name} run {n + 1}: static {samples[-1]['static']:.2f} s, "
                f"final {samples[-1]['finished_at']:.2f} s, "
                f"epochs {samples[-1]['epoch_seconds']:.2f} s",
                flush=True,
            )
        print(f"  {name}: load average {os.getloadavg()[0]:.2f} at the end", flush=True)
        return samples
    finally:
        stop_worker(worker)


def median(samples: list[dict[str, float]], key: str) -> float:
    return statistics.median(sample[key] for sample in samples)


def report(results: dict[str, list[dict[str, float]]]) -> bool:
    names = list(results)
    print()
    header = f"{'median seconds':<28}" + "".join(f"{name:>10}" for name in names)
    if len(names) == 2:
        header += f"{'ratio':>10}"
    print(header)
    rows = [("upload -> static verdict", "static"), ("upload -> final verdict", "finished_at")]
    rows += [("pure epoch time", "epoch_seconds")]
    for label, key in rows:
        values = [median(results[name], key) for name in names]
        line = f"{label:<28}" + "".join(f"{value:>10.2f}" for value in values)
        if len(values) == 2 and values[0] > 0:
            line += f"{values[1] / values[0]:>9.2f}x"
        print(line)
    print("where the time went (median span between recorded moments):")
    for label, start, end in SPANS:
        values = [
            statistics.median(sample[end] - sample[start] for sample in results[name])
            if start != "uploaded"
            else median(results[name], end)
            for name in names
        ]
        print(f"  {label:<26}" + "".join(f"{value:>10.2f}" for value in values))
    print()
    passed = True
    for name in names:
        static = median(results[name], "static")
        final = median(results[name], "finished_at")
        epochs = median(results[name], "epoch_seconds")
        final_goal = 2 * epochs + 3
        ok_static, ok_final = static <= STATIC_GOAL_SECONDS, final <= final_goal
        print(
            f"{name}: static verdict {static:.2f} s (goal <= {STATIC_GOAL_SECONDS:.0f} s): "
            f"{'PASS' if ok_static else 'FAIL'}; final verdict {final:.2f} s (goal <= 2 x "
            f"{epochs:.2f} + 3 = {final_goal:.2f} s; {final / epochs:.1f}x the epoch time): "
            f"{'PASS' if ok_final else 'FAIL'}"
        )
        if name == "after":
            passed = ok_static and ok_final
    return passed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", choices=("embedded", "services"), default="embedded")
    parser.add_argument("--runs", type=int, default=3, help="uploads per configuration")
    parser.add_argument("--only", choices=tuple(CONFIGURATIONS), help="measure one configuration")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per grading")
    args = parser.parse_args()

    print(f"load average before: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
    var = Path(tempfile.mkdtemp(prefix="bench-latency-"))
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_BROKER_POLLING_INTERVAL")
        and not key.startswith("GRADER_")
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.local",
            "GRADER_ENV_FILE": "",
            "GRADER_VAR_DIR": str(var),
            "GRADER_SANDBOX": "bwrap",
        }
    )
    drop = None
    if args.stack == "services":
        url, drop = create_database()
        env.update({"DATABASE_URL": url, "CELERY_BROKER_URL": BROKER_URL})
    os.environ.clear()
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    if args.stack == "services":
        import redis

        redis.Redis.from_url(BROKER_URL).flushdb()
    try:
        call_command("migrate", verbosity=0)
        call_command("load_demo", verbosity=0)
        call_command("prepare_dataset", "synthetic", verbosity=0)
        from assignments.models import Assignment

        Assignment.objects.filter(slug="smoke").update(daily_quota=1000)
        names = [args.only] if args.only else list(CONFIGURATIONS)
        results = {name: measure(name, env, var, args.runs, args.timeout) for name in names}
        print(f"load average after: {os.getloadavg()[0]:.2f}")
        passed = report(results)
    finally:
        if args.stack == "services":
            import redis

            redis.Redis.from_url(BROKER_URL).flushdb()
        if drop is not None:
            drop()
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
