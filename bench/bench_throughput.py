"""Throughput of the whole service when a course submits at once, and a deadline burst.

Starts the production stack on loopback: gunicorn with `config.settings.production`, a
`preflight` worker (`preflight,maintenance`, with beat) and a `gpu` worker (CPU only here), as
docker-compose deploys them, on PostgreSQL and Redis, with bubblewrap sandboxes. Everything goes
through the REST API with a token per student, as `python -m assignments.client` does; the
results are read back from the database. Two phases (`--phase`):

**throughput**: N students (`--students`, 20) upload one `smoke` reference module each at once
(a `.py`: the build stage runs it in a sandbox; trainings of the preset's 5 epochs on the
synthetic dataset). Prints the time from the first upload to the last verdict, the sum of pure
epoch time (every epoch's own seconds, less the first epoch's excess over a steady epoch, which
counts as compile), their ratio per `gpu` worker process (goal: >= 70 % of the workers' time
is training), p50/p95 upload-to-static-verdict and upload-to-final-verdict, and a table of where
each grading's time went. The stage timestamps come from the database (`Submission.*_at`: a
stage's claim; `Result.created_at`: the static verdict; `finished_at`), the end of each stage
from polling its release (a released stage's `heartbeat_at` is the moment it ended), epochs
from `EpochMetric.seconds` (the trainer's own clock), and the first epoch's end from polling.
Nothing in the pipeline records imports or sandbox start-up on its own: the script measures a
bubblewrap start and `import keras` in a bubblewrap sandbox once, on the same machine, and
prints them beside the table as the reference cost per sandbox.

**burst**: `--clients` (100) concurrent clients upload `--uploads` (200) models within about
`--window` seconds (10), each client as its own student. The models fail a static rule
(`max_params`), so grading ends at the check stage and the CPU cost stays small. Checks: every
request answered 201 or a 429 that names its reason (`too_many_waiting`, `quota_exceeded`,
`throttled`), no 5xx and no connection error, none lost (every 201's submission exists and
ended), each graded exactly once (one result row each, no retried stage, and the workers ran as
many build and check stages as there were 201s), and no row without its 201. Prints the p50/p95
upload latency.

    .venv/bin/python bench/bench_throughput.py                  # both phases, full size
    .venv/bin/python bench/bench_throughput.py --quick          # about 2 minutes
    .venv/bin/python bench/bench_throughput.py --phase burst --clients 100 --uploads 200

It creates the PostgreSQL database `<--database-prefix>_<pid>` (default `bench_throughput`;
trust auth, user postgres) and drops it at the end; the Redis databases of `--broker-url`
(default db 8) and `--cache-url` (the rate-limit counters, default db 9) are emptied before and
after. Exit code 0 when every check passed (the 70 % goal is reported, not enforced).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ADMIN_URL = os.environ.get("BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TRAINING_SHARE_GOAL = 0.70
#: The reasons a 429 may give: the assignment's limits and the API's upload rate.
CLEAR_429_CODES = {"too_many_waiting", "quota_exceeded", "throttled"}
TASK_LINE = re.compile(r"Task (workers\.\w+)\[[^\]]+\] succeeded in ([0-9.]+)s: '(\w+)'")
RUNNING = ("building", "checking", "training", "evaluating")
TERMINAL = ("finished", "failed", "error", "cancelled")
HOST = "127.0.0.1"


# ---------------------------------------------------------------------------------------------
# The stack


def create_database(prefix: str) -> tuple[str, Callable[[], None]]:
    """A scratch database on the local PostgreSQL, and a function that drops it."""
    import psycopg

    name = f"{prefix}_{os.getpid()}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    host = ADMIN_URL.split("@", 1)[1].split("/", 1)[0]
    return f"postgres://postgres@{host}/{name}", drop


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@dataclass
class Stack:
    """The processes of the production stack, and their logs."""

    var: Path
    env: dict[str, str]
    port: int
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def logs(self) -> dict[str, Path]:
        return {name: self.var / f"{name}.log" for name in ("web", "preflight", "gpu")}

    def start(self, *, web_workers: int, gpu_concurrency: int, preflight_concurrency: int) -> None:
        bin_dir = Path(sys.executable).parent
        node = f"bench{os.getpid()}"
        commands = {
            "web": [
                str(bin_dir / "gunicorn"), "config.wsgi:application",
                "--bind", f"{HOST}:{self.port}", "--workers", str(web_workers),
                "--timeout", "60", "--access-logfile", "-",
            ],
            "preflight": [
                str(bin_dir / "celery"), "-A", "workers", "worker", "-n", f"preflight-{node}@%h",
                "-Q", "preflight,maintenance", "--concurrency", str(preflight_concurrency),
                "-B", "--schedule", str(self.var / "celerybeat-schedule"), "--loglevel", "INFO",
            ],
            "gpu": [
                str(bin_dir / "celery"), "-A", "workers", "worker", "-n", f"gpu-{node}@%h",
                "-Q", "gpu", "--concurrency", str(gpu_concurrency),
                "--prefetch-multiplier", "1", "--loglevel", "INFO",
            ],
        }  # fmt: skip
        for name, argv in commands.items():
            handle = self.logs[name].open("wb")
            self.processes.append(
                subprocess.Popen(
                    argv,
                    cwd=ROOT,
                    env=self.env,
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )

    def wait_ready(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        waiting = {"preflight", "gpu", "web"}
        while waiting and time.monotonic() < deadline:
            self.check_alive()
            for name in list(waiting):
                if name == "web":
                    if http_get(self.port, "/api/v1/assignments/") is not None:
                        waiting.discard(name)
                elif " ready." in self.logs[name].read_text(errors="replace"):
                    waiting.discard(name)
            time.sleep(0.5)
        if waiting:
            raise RuntimeError(f"not ready within {timeout:.0f} s: {sorted(waiting)}")

    def check_alive(self) -> None:
        for name, process in zip(self.logs, self.processes, strict=False):
            if process.poll() is not None:
                tail = self.logs[name].read_text(errors="replace")[-3000:]
                raise RuntimeError(f"the {name} process exited:\n{tail}")

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def log_sizes(self) -> dict[str, int]:
        """Where each worker's log ends now: `stage_runs(since=...)` counts what follows."""
        return {name: self.logs[name].stat().st_size for name in ("preflight", "gpu")}

    def stage_runs(self, since: dict[str, int] | None = None) -> Counter[tuple[str, str]]:
        """(task, outcome) counts from the workers' logs; `skipped` means the message found
        no stage to run (handed out in fair order already)."""
        runs: Counter[tuple[str, str]] = Counter()
        for name in ("preflight", "gpu"):
            with self.logs[name].open("rb") as handle:
                handle.seek((since or {}).get(name, 0))
                text = handle.read().decode(errors="replace")
            for task, _, outcome in TASK_LINE.findall(text):
                runs[(task.removeprefix("workers."), outcome)] += 1
        return runs


def http_get(port: int, path: str) -> int | None:
    request = urllib.request.Request(
        f"http://{HOST}:{port}{path}", headers={"Host": "localhost", "X-Forwarded-Proto": "https"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


# ---------------------------------------------------------------------------------------------
# Uploads through the REST API


@dataclass
class Upload:
    student: str
    sent: float  # wall clock (time.time()), comparable with the database's timestamps
    answered: float = 0.0
    status: int = 0  # 0: no HTTP answer (connection error)
    error_code: str = ""  # the error code (`error.kind`) of a refusal
    message: str = ""
    submission_id: int | None = None

    @property
    def latency(self) -> float:
        return self.answered - self.sent


def post_file(port: int, token: str, slug: str, filename: str, data: bytes, student: str) -> Upload:
    """POST one file as `python -m assignments.client submit` does (multipart, token auth),
    through a TLS proxy's loopback hop (`X-Forwarded-Proto: https`)."""
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        f"http://{HOST}:{port}/api/v1/assignments/{slug}/submissions/",
        data=body,
        method="POST",
        headers={
            "Authorization": f"Token {token}",
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Host": "localhost",
            "X-Forwarded-Proto": "https",
            "Accept": "application/json",
        },
    )
    upload = Upload(student=student, sent=time.time())
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            upload.status, payload = response.status, response.read()
    except urllib.error.HTTPError as exc:
        upload.status, payload = exc.code, exc.read()
    except OSError as exc:
        upload.answered, upload.message = time.time(), f"{type(exc).__name__}: {exc}"
        return upload
    upload.answered = time.time()
    try:
        answer = json.loads(payload)
    except ValueError:
        upload.message = payload[:200].decode(errors="replace")
        return upload
    if upload.status == 201:
        upload.submission_id = int(answer["id"])
    else:
        error = answer.get("error") or {}
        upload.error_code, upload.message = (
            str(error.get("kind", "")),
            str(error.get("message", "")),
        )
    return upload


def smoke_module(n: int) -> bytes:
    """The smoke reference module, made unique by a comment (as a student's edit would)."""
    text = (ROOT / "tests/fixtures/models/smoke_submission.py").read_text()
    return f"{text}\n# upload {n}: {uuid.uuid4().hex}\n".encode()


def smoke_json(n: int) -> bytes:
    """The smoke reference model as JSON, made unique by its name."""
    config = json.loads((ROOT / "tests/fixtures/models/smoke_separable.json").read_text())
    config["config"]["name"] = f"upload_{n}_{uuid.uuid4().hex[:8]}"
    return json.dumps(config).encode()


# ---------------------------------------------------------------------------------------------
# Seeding (ORM: the course, the assignments, the students and their API tokens)


def seed(*, students: int, prefix: str, slug: str, rules_change: Callable[[dict], None]) -> tuple:
    import yaml
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from assignments.models import Assignment, Course, Enrollment
    from grader.presets import preset_text

    rules = yaml.safe_load(preset_text("smoke"))
    rules_change(rules)
    course, _ = Course.objects.get_or_create(slug="bench", defaults={"title": "Benchmark"})
    assignment = Assignment.objects.create(
        course=course,
        slug=slug,
        title=slug.title(),
        dataset="synthetic",
        rules_yaml=yaml.safe_dump(rules, sort_keys=False),
        time_limit_seconds=300,
        max_epochs=rules["training"]["epochs"],
    )
    users = get_user_model()
    tokens = {}
    for i in range(students):
        user = users.objects.create_user(f"{prefix}{i:03d}", password=secrets.token_hex(8))
        Enrollment.objects.create(course=course, user=user)
        tokens[user.username] = Token.objects.create(user=user).key
    return assignment, tokens


# ---------------------------------------------------------------------------------------------
# Observing the pipeline from the database


@dataclass
class Observed:
    """What polling saw that the rows do not keep: when each stage was released, and when the
    first epoch's row appeared."""

    released: dict[tuple[int, str], float] = field(default_factory=dict)
    first_epoch_seen: dict[int, float] = field(default_factory=dict)
    load: list[float] = field(default_factory=list)


def watch(
    ids: Sequence[int], stack: Stack, *, timeout: float, interval: float = 0.2
) -> tuple[Observed, bool]:
    """Poll until every submission ended (True) or `timeout` passed (False)."""
    from django.db import close_old_connections

    from assignments.models import EpochMetric, Submission

    seen = Observed()
    deadline = time.monotonic() + timeout
    next_load = 0.0
    while time.monotonic() < deadline:
        stack.check_alive()
        close_old_connections()
        now = time.time()
        open_left = 0
        rows = Submission.objects.filter(pk__in=ids).values_list(
            "pk", "status", "worker", "heartbeat_at"
        )
        for pk, status, worker, beat in rows:
            if status not in TERMINAL:
                open_left += 1
            if status in RUNNING and not worker and beat is not None:
                seen.released.setdefault((pk, status), beat.timestamp())
        for pk in EpochMetric.objects.filter(submission_id__in=ids, epoch=1).values_list(
            "submission_id", flat=True
        ):
            seen.first_epoch_seen.setdefault(pk, now)
        if time.monotonic() >= next_load:
            seen.load.append(os.getloadavg()[0])
            next_load = time.monotonic() + 5.0
        if open_left == 0:
            return seen, True
        time.sleep(interval)
    return seen, False


def mean_load(seen: Observed) -> float:
    return statistics.mean(seen.load) if seen.load else os.getloadavg()[0]


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (`q` in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


# ---------------------------------------------------------------------------------------------
# Phase 1: throughput


#: The rows of the breakdown table, in pipeline order.
COMPONENTS = [
    ("upload", "upload request, until the row exists"),
    ("wait_build", "queue wait: preflight, until the build starts"),
    ("build", "build stage (sandbox start, imports, `build_model`, serialise)"),
    ("wait_check", "queue wait: build to check"),
    ("check", "check stage (analysis and rules, on the host)"),
    ("wait_train", "queue wait: gpu, static verdict to training start"),
    ("train_startup", "train: before the first epoch (sandbox start, imports, data, model)"),
    ("compile", "train: compile (first epoch's excess over a steady epoch)"),
    ("epochs", "train: pure epochs"),
    ("train_after", "train: after the last epoch (weights saved, sandbox exit)"),
    ("wait_evaluate", "queue wait: gpu, training to evaluation"),
    ("evaluate", "evaluate stage (sandbox start, imports, test split)"),
    ("finalize", "finalize (queue wait and scoring) until the final verdict"),
]


@dataclass
class Grading:
    """One submission's timeline, in seconds."""

    parts: dict[str, float]
    to_static: float | None
    to_final: float | None
    status: str
    epochs: int


def timeline(upload: Upload, seen: Observed) -> Grading:
    from assignments.models import EpochMetric, Result, Submission

    sub = Submission.objects.get(pk=upload.submission_id)
    result = Result.objects.filter(submission=sub).first()
    epochs = list(
        EpochMetric.objects.filter(submission=sub)
        .order_by("epoch")
        .values_list("seconds", flat=True)
    )
    epochs = [float(s or 0.0) for s in epochs]

    def ts(value: Any) -> float | None:
        return value.timestamp() if value is not None else None

    created, finished = ts(sub.created_at), ts(sub.finished_at)
    starts = {
        "building": ts(sub.building_at),
        "checking": ts(sub.checking_at),
        "training": ts(sub.training_at),
        "evaluating": ts(sub.evaluating_at),
    }
    # The static verdict: the check stage writes the result row (its creation time).
    static = ts(result.created_at) if result is not None else None
    if static is not None and starts["checking"] is not None and static < starts["checking"]:
        static = None
    order = ["building", "checking", "training", "evaluating"]

    def end(stage: str) -> float | None:
        """When `stage` ended: its observed release, else the next thing that started."""
        if (sub.pk, stage) in seen.released:
            return seen.released[(sub.pk, stage)]
        if stage == "checking" and static is not None:
            return static
        later = [starts[s] for s in order[order.index(stage) + 1 :]] + [finished]
        return next((t for t in later if t is not None), None)

    parts: dict[str, float] = {}

    def span(name: str, a: float | None, b: float | None) -> None:
        if a is not None and b is not None:
            parts[name] = max(0.0, b - a)

    span("upload", upload.sent, created)
    span("wait_build", created, starts["building"])
    build_end = end("building") if starts["building"] else None
    span("build", starts["building"], build_end)
    span("wait_check", build_end, starts["checking"])
    check_end = end("checking") if starts["checking"] else None
    span("check", starts["checking"], check_end)
    span("wait_train", check_end, starts["training"])
    train_end = end("training") if starts["training"] else None
    if starts["training"] is not None and train_end is not None:
        total = max(0.0, train_end - starts["training"])
        summed = sum(epochs)
        steady = statistics.median(epochs[1:]) if len(epochs) > 1 else (epochs[0] if epochs else 0)
        compile_excess = max(0.0, epochs[0] - steady) if epochs else 0.0
        first_seen = seen.first_epoch_seen.get(sub.pk)
        startup = (
            max(0.0, first_seen - epochs[0] - starts["training"])
            if first_seen is not None and epochs
            else max(0.0, total - summed)
        )
        startup = min(startup, max(0.0, total - summed))
        parts["train_startup"] = startup
        parts["compile"] = compile_excess
        parts["epochs"] = summed - compile_excess
        parts["train_after"] = max(0.0, total - summed - startup)
    span("wait_evaluate", train_end, starts["evaluating"])
    eval_end = end("evaluating") if starts["evaluating"] else None
    span("evaluate", starts["evaluating"], eval_end)
    span("finalize", eval_end, finished if sub.status == "finished" else None)
    if static is None:
        static = check_end  # no result row from the check stage: when that stage ended
    return Grading(
        parts=parts,
        to_static=static - upload.sent if static is not None else None,
        to_final=finished - upload.sent if finished is not None else None,
        status=f"{sub.status}/{sub.reason}" if sub.reason else sub.status,
        epochs=len(epochs),
    )


def reference_costs(env: dict[str, str]) -> dict[str, float]:
    """Seconds to start an empty bubblewrap sandbox, and to run `import keras` in one (median of
    three): the reference cost each sandboxed stage pays, measured beside the run."""
    base = [
        "bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
        "--unshare-all", "--die-with-parent", "--new-session",
    ]  # fmt: skip
    python = [sys.executable, "-c"]
    env = {**env, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2"}

    def timed(argv: list[str]) -> float:
        runs = []
        for _ in range(3):
            began = time.monotonic()
            subprocess.run(argv, env=env, check=True, capture_output=True, timeout=300)
            runs.append(time.monotonic() - began)
        return statistics.median(runs)

    return {
        "sandbox": timed([*base, "true"]),
        "python": timed([*base, *python, "pass"]),
        "keras": timed([*base, *python, "import keras"]),
    }


def run_throughput(args: argparse.Namespace, stack: Stack) -> bool:
    from assignments.models import Result, Submission

    def rules(r: dict) -> None:
        if args.epochs:
            r["training"]["epochs"] = args.epochs

    assignment, tokens = seed(
        students=args.students, prefix="course", slug="smoke", rules_change=rules
    )
    print(f"\n## throughput: {args.students} students upload the smoke reference module at once")
    logs_at = stack.log_sizes()
    uploads: list[Upload] = []
    lock = threading.Lock()

    def one(n: int, student: str) -> None:
        upload = post_file(stack.port, tokens[student], assignment.slug, "model.py",
                           smoke_module(n), student)  # fmt: skip
        with lock:
            uploads.append(upload)

    threads = [threading.Thread(target=one, args=(n, s)) for n, s in enumerate(tokens)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    refused = [u for u in uploads if u.status != 201]
    for u in refused:
        print(f"upload refused: {u.status} {u.error_code} {u.message[:200]}")
    accepted = [u for u in uploads if u.status == 201]
    ids = [u.submission_id for u in accepted if u.submission_id is not None]
    seen, done = watch(ids, stack, timeout=args.timeout)
    if not done:
        print(f"TIMEOUT after {args.timeout:.0f} s")
    gradings = [timeline(u, seen) for u in accepted]
    first = min(u.sent for u in uploads)
    finished = [
        t.timestamp()
        for t in Submission.objects.filter(pk__in=ids).values_list("finished_at", flat=True)
        if t is not None
    ]
    wall = max(finished) - first if finished else float("nan")
    pure = sum(g.parts.get("epochs", 0.0) for g in gradings)
    compile_total = sum(g.parts.get("compile", 0.0) for g in gradings)
    share = pure / (args.gpu_concurrency * wall) if wall > 0 else 0.0
    statuses = Counter(g.status for g in gradings)
    static = [g.to_static for g in gradings if g.to_static is not None]
    final = [g.to_final for g in gradings if g.to_final is not None]

    print()
    print("| | |")
    print("| --- | ---: |")
    print(f"| submissions graded | {len(final)} of {len(uploads)} ({dict(statuses)}) |")
    print(f"| time to the last verdict (first upload to last final verdict) | {wall:.1f} s |")
    print(f"| sum of pure epoch time ({sum(g.epochs for g in gradings)} epochs) | {pure:.1f} s |")
    print(f"| ratio, pure epoch time / time to the last verdict | {pure / wall:.1%} |")
    print(f"| ratio, per `gpu` worker process ({args.gpu_concurrency}) | {share:.1%} |")
    print(f"| upload to static verdict, p50 / p95 | {percentile(static, 50):.1f} s / "
          f"{percentile(static, 95):.1f} s |")  # fmt: skip
    print(f"| upload to final verdict, p50 / p95 | {percentile(final, 50):.1f} s / "
          f"{percentile(final, 95):.1f} s |")  # fmt: skip
    print(f"| first-epoch compile excess, summed | {compile_total:.1f} s |")
    print(f"| load average (1 min) while grading, mean | {mean_load(seen):.1f} |")

    total = sum(sum(g.parts.values()) for g in gradings) or 1.0
    print()
    print("Where each grading's time went (upload to final verdict, summed over the gradings):")
    print()
    print("| component | mean s | p95 s | sum s | share |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for key, label in COMPONENTS:
        values = [g.parts[key] for g in gradings if key in g.parts]
        if not values:
            continue
        print(
            f"| {label} | {statistics.mean(values):.2f} | {percentile(values, 95):.2f} | "
            f"{sum(values):.1f} | {sum(values) / total:.1%} |"
        )
    print(f"| total | {total / max(1, len(gradings)):.2f} | | {total:.1f} | 100% |")
    gpu_time = args.gpu_concurrency * wall
    if gpu_time > 0:
        print()
        print(
            f"Where the `gpu` workers' time went ({args.gpu_concurrency} processes x "
            f"{wall:.1f} s, first upload to last verdict):"
        )
        print()
        print("| component | sum s | share |")
        print("| --- | ---: | ---: |")
        gpu_parts = ["epochs", "compile", "train_startup", "train_after", "evaluate"]
        labels = dict(COMPONENTS)
        for key in gpu_parts:
            used = sum(g.parts.get(key, 0.0) for g in gradings)
            print(f"| {labels[key]} | {used:.1f} | {used / gpu_time:.1%} |")
        idle = gpu_time - sum(g.parts.get(key, 0.0) for g in gradings for key in gpu_parts)
        print(f"| idle (nothing checked yet, the last trainings) or between stages | "
              f"{idle:.1f} | {idle / gpu_time:.1%} |")  # fmt: skip
        build = sum(g.parts.get("build", 0.0) for g in gradings)
        print(
            f"\nThe preflight workers ({args.preflight_concurrency} processes) ran builds for "
            f"{build:.1f} s = {build / (args.preflight_concurrency * wall):.1%} of their time."
        )
    runs = stack.stage_runs(since=logs_at)
    costs = reference_costs(stack.env)
    print(
        f"\nReference costs per sandbox on this machine (median of 3, measured now): empty "
        f"bubblewrap sandbox {costs['sandbox'] * 1000:.0f} ms; Python start-up in it "
        f"{costs['python']:.2f} s; `import keras` (TensorFlow) in it {costs['keras']:.2f} s."
    )
    print("stage tasks run (task, outcome: count): "
          + ", ".join(f"{t} {o}: {c}" for (t, o), c in sorted(runs.items())))  # fmt: skip
    ok = done and len(final) == len(uploads) and not refused
    ok = ok and Result.objects.filter(submission_id__in=ids).count() == len(ids)
    goal = "PASS" if share >= TRAINING_SHARE_GOAL else "FAIL"
    print(f"workers' time >= {TRAINING_SHARE_GOAL:.0%} training: {goal} ({share:.1%}, reported)")
    print(f"throughput phase: {'OK' if ok else 'FAILED'}")
    return ok


# ---------------------------------------------------------------------------------------------
# Phase 2: the deadline burst


def run_burst(args: argparse.Namespace, stack: Stack) -> bool:
    from django.db.models import Count

    from assignments.models import EpochMetric, Result, Submission

    def rules(r: dict) -> None:
        for rule in r["rules"]:
            if rule["id"] == "max_params":
                rule["limit"] = 1000  # the reference model (about 1.7k) fails it: no training

    assignment, tokens = seed(
        students=args.clients, prefix="burst", slug="burst", rules_change=rules
    )
    if args.max_waiting:
        assignment.max_waiting_per_student = args.max_waiting
        assignment.save(update_fields=["max_waiting_per_student"])
    print(
        f"\n## burst: {args.uploads} uploads from {args.clients} concurrent clients within "
        f"about {args.window:.0f} s (models that fail `max_params`; at most "
        f"{assignment.max_waiting_per_student} unfinished per student)"
    )
    logs_at = stack.log_sizes()
    students = list(tokens)
    per_client = [args.uploads // args.clients] * args.clients
    for i in range(args.uploads % args.clients):
        per_client[i] += 1
    uploads: list[Upload] = []
    lock = threading.Lock()
    rng = random.Random(0)
    began = time.time()
    # Each client starts at a random moment of the first half of the window and sends its
    # uploads one after the other, spread over the rest of it.
    plans = [
        (students[c], [began + rng.uniform(0, args.window / 2) + k * args.window / 2 / max(1, n)
                       for k in range(n)])
        for c, n in enumerate(per_client)
    ]  # fmt: skip
    counter = iter(range(10**9))

    def client(student: str, moments: list[float]) -> None:
        for moment in moments:
            time.sleep(max(0.0, moment - time.time()))
            with lock:
                n = next(counter)
            upload = post_file(
                stack.port, tokens[student], assignment.slug, "model.json", smoke_json(n), student
            )
            with lock:
                uploads.append(upload)

    threads = [threading.Thread(target=client, args=plan) for plan in plans]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sent_span = max(u.sent for u in uploads) - min(u.sent for u in uploads)
    answered = max(u.answered for u in uploads) - began
    accepted = [u for u in uploads if u.status == 201]
    refused = [u for u in uploads if u.status == 429]
    other = [u for u in uploads if u.status not in (201, 429)]
    unclear = [u for u in refused if u.error_code not in CLEAR_429_CODES or not u.message]
    ids = [u.submission_id for u in accepted if u.submission_id is not None]
    seen, done = watch(ids, stack, timeout=args.timeout, interval=0.5)
    last_verdict = max(
        (t.timestamp() for t in Submission.objects.filter(pk__in=ids).values_list(
            "finished_at", flat=True) if t is not None),
        default=float("nan"),
    )  # fmt: skip

    # None lost, each graded exactly once: from the database, then the workers' logs.
    rows = Submission.objects.filter(assignment=assignment)
    in_db = set(rows.values_list("pk", flat=True))
    ended = set(rows.filter(status__in=TERMINAL).values_list("pk", flat=True))
    results = Counter(
        Result.objects.filter(submission__assignment=assignment).values_list(
            "submission_id", flat=True
        )
    )
    retried = rows.filter(attempts__gt=0).count()
    epoch_rows = EpochMetric.objects.filter(submission__assignment=assignment).count()
    duplicate_ids = [pk for pk, n in Counter(ids).items() if n > 1]
    verdicts = Counter(f"{s}/{r}" if r else s for s, r in rows.values_list("status", "reason"))
    per_student = rows.values("student").annotate(n=Count("pk")).order_by("-n")[:1]
    runs = stack.stage_runs(since=logs_at)
    # Each stage task that ran a stage (not `skipped`: its message found the stage handed out
    # already) ran it once per accepted upload, whatever the pipeline's stages are.
    stage_counts: Counter[str] = Counter()
    for (task, outcome), count in runs.items():
        if outcome != "skipped" and task != "reap_stale_submissions":
            stage_counts[task] += count
    trained = stage_counts.pop("train_submission", 0)
    latencies = [u.latency for u in uploads if u.status]

    checks = {
        "every request answered 201 or 429": not other,
        "every 429 names its reason": not unclear,
        "none lost: every 201's row exists": set(ids) <= in_db and len(set(ids)) == len(ids),
        "no row without its 201": in_db == set(ids),
        "every 201 has a final verdict": set(ids) <= ended and done,
        "exactly one result row per 201": set(results) == set(ids)
        and all(n == 1 for n in results.values()),
        "no stage retried or taken over (attempts = 0)": retried == 0,
        "each stage ran once per 201 (workers' logs)": bool(stage_counts)
        and all(n == len(ids) for n in stage_counts.values()),
        "no training (static failures stop at check)": trained == 0 and epoch_rows == 0,
    }
    print()
    print("| | |")
    print("| --- | ---: |")
    print(f"| requests | {len(uploads)} from {args.clients} clients, sent within "
          f"{sent_span:.1f} s, all answered {answered:.1f} s after the first |")  # fmt: skip
    print(f"| 201 accepted | {len(accepted)} |")
    error_codes = Counter(u.error_code for u in refused)
    print(f"| 429 refused | {len(refused)} {dict(error_codes) if error_codes else ''} |")
    print(f"| other answers (5xx, connection errors, ...) | {len(other)} |")
    print(f"| upload latency p50 / p95 / max | {percentile(latencies, 50):.2f} s / "
          f"{percentile(latencies, 95):.2f} s / {max(latencies, default=0):.2f} s |")  # fmt: skip
    print(f"| first upload to last verdict | {last_verdict - began:.1f} s |")
    print(f"| load average (1 min) while grading, mean | {mean_load(seen):.1f} |")
    print(f"| verdicts | {dict(verdicts)} |")
    print(f"| most rows of one student | {per_student[0]['n'] if per_student else 0} |")
    print(f"| stages run (workers' logs) | {dict(stage_counts)} |")
    for error_code in sorted(error_codes):
        example = next(u for u in refused if u.error_code == error_code)
        print(f"a 429 `{error_code}` says: {example.message[:300]}")
    for u in other[:5]:
        print(f"unexpected answer: {u.status} {u.error_code} {u.message[:200]}")
    for u in unclear[:5]:
        print(f"unclear 429: {u.error_code!r} {u.message[:200]!r}")
    if duplicate_ids:
        print(f"the same id answered twice: {duplicate_ids[:10]}")
    print()
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}: {name}")
    return all(checks.values())


# ---------------------------------------------------------------------------------------------


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model or platform.processor()}, {os.cpu_count()} cores, {platform.platform()}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--phase", choices=("throughput", "burst", "both"), default="both")
    parser.add_argument("--students", type=int, default=20, help="throughput: N uploads at once")
    parser.add_argument("--epochs", type=int, default=0, help="throughput: epochs (0: preset)")
    parser.add_argument("--clients", type=int, default=100, help="burst: concurrent clients")
    parser.add_argument("--uploads", type=int, default=200, help="burst: uploads in all")
    parser.add_argument("--window", type=float, default=10.0, help="burst: seconds to send in")
    parser.add_argument(
        "--max-waiting",
        type=int,
        default=0,
        help="burst: the assignment's max_waiting_per_student (0: the default, 2)",
    )
    parser.add_argument("--quick", action="store_true",
                        help="2 trainings, then 20 uploads from 10 clients in 4 s")  # fmt: skip
    parser.add_argument("--gpu-concurrency", type=int, default=2)
    parser.add_argument("--preflight-concurrency", type=int, default=2)
    parser.add_argument("--web-workers", type=int, default=3, help="gunicorn processes")
    parser.add_argument("--timeout", type=float, default=3600.0, help="per phase, seconds")
    parser.add_argument("--database-prefix", default="bench_throughput")
    parser.add_argument("--broker-url", default="redis://127.0.0.1:6379/8")
    parser.add_argument("--cache-url", default="redis://127.0.0.1:6379/9")
    parser.add_argument("--keep-logs", help="copy the web and worker logs into this folder")
    args = parser.parse_args(argv)
    if args.quick:
        args.students, args.clients, args.uploads, args.window = 2, 10, 20, 4.0
        args.timeout = min(args.timeout, 600.0)

    url, drop = create_database(args.database_prefix)
    var = Path(tempfile.mkdtemp(prefix="bench-throughput-"))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(48),
        "GRADER_DATASET_KEY": secrets.token_urlsafe(48),
        "DJANGO_ALLOWED_HOSTS": "localhost,127.0.0.1",
        "GRADER_ENV_FILE": "",
        "DATABASE_URL": url,
        "CELERY_BROKER_URL": args.broker_url,
        "CACHE_URL": args.cache_url,
        "GRADER_VAR_DIR": str(var),
        "GRADER_SANDBOX": "bwrap",
        "LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }
    for name in (
        "GRADER_MEDIA_ROOT", "GRADER_DATA_DIR", "GRADER_JOBS_DIR", "GRADER_GPU_IDS",
        "GRADER_GPU_DEVICE", "CELERY_TASK_ALWAYS_EAGER",
    ):  # fmt: skip
        env.pop(name, None)
    os.environ.clear()
    os.environ.update(env)
    import django

    django.setup()
    import redis
    from django.core.management import call_command

    for redis_url in {args.broker_url, args.cache_url}:
        redis.Redis.from_url(redis_url).flushdb()
    stack = Stack(var=var, env=env, port=free_port())
    ok = False
    load_before = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    try:
        call_command("migrate", verbosity=0)
        call_command("prepare_dataset", "synthetic", verbosity=0)
        stack.start(
            web_workers=args.web_workers,
            gpu_concurrency=args.gpu_concurrency,
            preflight_concurrency=args.preflight_concurrency,
        )
        stack.wait_ready()
        print(f"# bench_throughput, {started}: {machine()}")
        print(
            f"stack: gunicorn ({args.web_workers} processes, production settings) on "
            f"{HOST}:{stack.port}; preflight worker ({args.preflight_concurrency} processes, "
            f"beat) and gpu worker ({args.gpu_concurrency} processes, CPU); bubblewrap; "
            f"PostgreSQL; Redis {args.broker_url}"
        )
        print(f"load average before: {', '.join(f'{x:.2f}' for x in load_before)}")
        ok = True
        if args.phase in ("throughput", "both"):
            ok = run_throughput(args, stack) and ok
        if args.phase in ("burst", "both"):
            ok = run_burst(args, stack) and ok
        print(f"\nload average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        stack.stop()
        if args.keep_logs:
            keep = Path(args.keep_logs)
            keep.mkdir(parents=True, exist_ok=True)
            for name, path in stack.logs.items():
                if path.exists():
                    (keep / f"{name}.log").write_bytes(path.read_bytes())
        for redis_url in {args.broker_url, args.cache_url}:
            redis.Redis.from_url(redis_url).flushdb()
        drop()
    print(f"\nbench_throughput: {'OK' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
