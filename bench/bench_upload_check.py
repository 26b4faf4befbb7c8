"""Benchmark: what the web process pays to check a hostile `.py` upload, against a normal one.

The upload check (`assignments.services.submissions.validate_upload`) is timed on the shipped
reference model (`tests/fixtures/models/smoke_submission.py`) and on hostile modules: 19 MB of
short lines (refused from its line count before any parsing), and small modules within the
bounds whose parse is pathological (refused by the limited parsing child). For each it prints
the median wall time over repeats, the ratio to the normal model's check, the ratio to parsing
the normal model with `ast.parse` in process (what the check did before, for a normal file),
the answer, and how much the web process's peak memory grew. Goal: the 19 MB upload answered
in well under a second (under 100 ms here), with the process's memory unchanged.

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


def median_seconds(call: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


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

    in_process = median_seconds(lambda: ast.parse(NORMAL.decode()), 200)
    normal = median_seconds(lambda: check(NORMAL), 15)
    print(f"ast.parse of the normal model in process: {in_process * 1e3:.3f} ms")
    header = ("upload", "bytes", "server ms", "x normal", "x parse", "+RSS MiB")
    print("{:38} {:>12} {:>10} {:>9} {:>9} {:>9}".format(*header))
    failed = False
    for name, data in CASES.items():
        before = peak_rss_mib()
        answer = check(data)
        seconds = median_seconds(lambda data=data: check(data), 5)
        grown = peak_rss_mib() - before
        print(
            f"{name:38} {len(data):>12,} {seconds * 1e3:>10.1f} {seconds / normal:>9.1f} "
            f"{seconds / in_process:>9.0f} {grown:>9.1f}"
        )
        print(f"{'':38} {answer}")
        if name.startswith("19 MB") and (seconds > GOAL_SECONDS_19_MB or answer == "accepted"):
            failed = True
    verdict = "FAIL" if failed else "PASS"
    print(f"{verdict}: the 19 MB upload is refused in under {GOAL_SECONDS_19_MB * 1e3:.0f} ms")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
