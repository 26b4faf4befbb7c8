"""Benchmark: what the web process pays to check a hostile `.py` upload, against a normal one.

The upload check (`assignments.services.submissions.validate_upload`) is timed on the shipped
reference model (`tests/fixtures/models/smoke_submission.py`) and on hostile modules: 19 MB of
short lines (refused from its line count before any parsing), and small modules within the
bounds whose parse is pathological (refused by the limited parsing child). For each it prints
the median wall time over repeats, the ratio to the normal model's check, the ratio to parsing
the normal model with `ast.parse` in process (what the check did before, for a normal file),
the CPU time spent (the web process and its parsing child together: the server's work, which a
loaded machine does not inflate as it does wall time), the answer, and how much the web
process's peak memory grew. Goal: the 19 MB upload answered in well under a second (under
100 ms of CPU), with the process's memory unchanged.

Run: ``.venv/bin/python bench/bench_upload_check.py`` (about half a minute on 2 shared cores).
"""

from __future__ import annotations

import ast
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")

GOAL_SECONDS_19_MB = 0.1
NORMAL = (ROOT / "tests" / "fixtures" / "models" / "smoke_submission.py").read_bytes()
BUILD = b"def build_model(input_shape, num_classes): ...\n"
CASES = {
    "normal model (smoke_submission.py)": NORMAL,
    "19 MB of short lines": b"a\n" * 9_500_000 + BUILD,
    "510 kB of dense statements": b"\n".join([b"a;" * 25] * 10_000) + b"\n" + BUILD,
    "unary chain (100 kB)": b"x = " + b"-" * 100_000 + b"1\n" + BUILD,
    "sum chain (400 kB)": b"x = " + b"+".join([b"a"] * 200_000) + b"\n" + BUILD,
    "nested parentheses (100 kB)": b"(" * 100_000 + b"\n" + BUILD,
}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    """CPU time of this process and its waited-for children (the parsing child) so far."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def median_seconds(call: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of `call` over `repeats` runs."""
    walls, cpus = [], []
    for _ in range(repeats):
        started, cpu = time.perf_counter(), cpu_seconds()
        call()
        walls.append(time.perf_counter() - started)
        cpus.append(cpu_seconds() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def main() -> int:
    import django

    django.setup()
    from assignments.services.submissions import InvalidUpload, validate_upload

    def check(data: bytes) -> str:
        try:
            validate_upload(filename="model.py", data=data)
        except InvalidUpload as exc:
            return "400: " + exc.message[:70] + ("..." if len(exc.message) > 70 else "")
        return "accepted"

    in_process, _ = median_seconds(lambda: ast.parse(NORMAL.decode()), 200)
    normal, _ = median_seconds(lambda: check(NORMAL), 15)
    print(f"ast.parse of the normal model in process: {in_process * 1e3:.3f} ms")
    header = ("upload", "bytes", "wall ms", "x normal", "x parse", "CPU ms", "+RSS MiB")
    print("{:38} {:>12} {:>9} {:>9} {:>9} {:>8} {:>9}".format(*header))
    failed = False
    for name, data in CASES.items():
        before = peak_rss_mib()
        answer = check(data)
        wall, cpu = median_seconds(lambda data=data: check(data), 5)
        grown = peak_rss_mib() - before
        print(
            f"{name:38} {len(data):>12,} {wall * 1e3:>9.1f} {wall / normal:>9.1f} "
            f"{wall / in_process:>9.0f} {cpu * 1e3:>8.1f} {grown:>9.1f}"
        )
        print(f"{'':38} {answer}")
        if name.startswith("19 MB") and (cpu > GOAL_SECONDS_19_MB or answer == "accepted"):
            failed = True
    verdict = "FAIL" if failed else "PASS"
    goal = f"{GOAL_SECONDS_19_MB * 1e3:.0f} ms of CPU"
    print(f"{verdict}: the 19 MB upload is refused in under {goal}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
