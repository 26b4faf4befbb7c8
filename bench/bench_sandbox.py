"""Sandbox overhead: the same job as a bare subprocess and in each sandbox backend.

Prints two figures per backend, each against a bare-subprocess baseline run in the same process:

- start-up: median wall time of a trivial job (`python -c pass`) over `--repeat` runs, and the
  overhead in seconds over the bare median;
- CPU-bound: a pure-Python loop calibrated to take about `--seconds` bare, run in turn bare and
  in each sandbox (interleaved, `--rounds` times); the ratio of sandboxed to bare time, measured
  inside the job (the goal: within 5 %) and outside it (start-up included), and the ratio of
  the CPU time the loop used (steadier than wall time on a shared, busy host).

    .venv/bin/python bench/bench_sandbox.py --seconds 5          # quick, during development
    .venv/bin/python bench/bench_sandbox.py                       # the 30-second figure
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workers.sandbox import Limits, SandboxJob, get_sandbox
from workers.sandbox.environment import python_environment

CPU_JOB = """
import json, sys, time
n = int(sys.argv[1])
start, cpu = time.perf_counter(), time.process_time()
total = 0
for i in range(n):
    total += i * i % 7
print(json.dumps({"seconds": time.perf_counter() - start, "cpu": time.process_time() - cpu,
                  "total": total}))
"""


def run_bare(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    completed = subprocess.run(argv, capture_output=True, text=True, env=env, check=True)
    return time.perf_counter() - start, completed.stdout


def run_sandboxed(sandbox, job: SandboxJob) -> tuple[float, str]:
    start = time.perf_counter()
    result = sandbox.run(job)
    elapsed = time.perf_counter() - start
    if result.reason is not None:
        raise SystemExit(f"{sandbox.name}: {result.reason}: {result.detail}\n{result.stderr}")
    return elapsed, result.stdout


def calibrate(python: str, env: dict[str, str], seconds: float) -> int:
    """Iterations of the CPU loop that take about `seconds` as a bare subprocess."""
    n = 2_000_000
    while True:
        _, out = run_bare([python, "-c", CPU_JOB, str(n)], env)
        took = json.loads(out)["seconds"]
        if took > 0.5:
            return int(n * seconds / took)
        n *= 4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="CPU job length, bare")
    parser.add_argument("--repeat", type=int, default=10, help="trivial jobs per backend")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved CPU-job rounds")
    parser.add_argument("--backends", default="docker,bwrap")
    args = parser.parse_args()

    environment = python_environment()
    env = environment.env
    python = environment.python
    backends = [get_sandbox(name) for name in args.backends.split(",") if name]
    limits = Limits(wall_seconds=max(120.0, args.seconds * 4), pids=64)

    def job(*argv: str) -> SandboxJob:
        return SandboxJob(
            argv=environment.argv(*argv), mounts=environment.mounts, env=env, limits=limits
        )

    print(f"start-up, trivial job `python -c pass`, median of {args.repeat}:")
    bare = statistics.median(run_bare([python, "-c", "pass"], env)[0] for _ in range(args.repeat))
    print(f"  bare      {bare:7.3f} s")
    for sandbox in backends:
        run_sandboxed(sandbox, job("-c", "pass"))  # warm caches (image, page cache)
        times = [run_sandboxed(sandbox, job("-c", "pass"))[0] for _ in range(args.repeat)]
        median = statistics.median(times)
        print(f"  {sandbox.name:9} {median:7.3f} s   overhead {median - bare:+.3f} s")

    iterations = calibrate(python, env, args.seconds)
    print(
        f"\nCPU-bound job, {iterations:,} iterations (~{args.seconds:g} s bare), "
        f"{args.rounds} interleaved round(s):"
    )
    names = ["bare"] + [sandbox.name for sandbox in backends]
    inside: dict[str, list[float]] = {name: [] for name in names}
    outside: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}

    def record(name: str, wall: float, out: str) -> None:
        report = json.loads(out)
        inside[name].append(report["seconds"])
        cpu[name].append(report["cpu"])
        outside[name].append(wall)

    for _ in range(args.rounds):
        record("bare", *run_bare([python, "-c", CPU_JOB, str(iterations)], env))
        for sandbox in backends:
            record(sandbox.name, *run_sandboxed(sandbox, job("-c", CPU_JOB, str(iterations))))
    median = {
        name: (
            statistics.median(inside[name]),
            statistics.median(outside[name]),
            statistics.median(cpu[name]),
        )
        for name in names
    }
    base_in, base_out, base_cpu = median["bare"]
    print(
        f"  bare      inside {base_in:7.2f} s   outside {base_out:7.2f} s   cpu {base_cpu:7.2f} s"
    )
    for sandbox in backends:
        t_in, t_out, t_cpu = median[sandbox.name]
        print(
            f"  {sandbox.name:9} inside {t_in:7.2f} s   outside {t_out:7.2f} s   cpu {t_cpu:7.2f} s"
            f"   ratio inside {t_in / base_in:.3f}   outside {t_out / base_out:.3f}"
            f"   cpu {t_cpu / base_cpu:.3f}"
        )


if __name__ == "__main__":
    main()
