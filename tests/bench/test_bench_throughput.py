"""`bench/bench_throughput.py` runs: its deadline burst, at a tiny size, on the real stack.

gunicorn with the production settings, a preflight and a gpu Celery worker, PostgreSQL and
Redis, all on loopback; the uploads fail a static rule, so no TensorFlow runs. Each of the 4
students may hold one unfinished submission: a second upload sent before the first one's verdict
is refused (429, `too_many_waiting`). The script's own checks (201 or a clear 429, no 5xx, none
lost, each graded exactly once) decide its exit code.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.services, pytest.mark.e2e]


def test_burst_answers_every_upload_and_grades_each_once(
    postgres_url: str, redis_url: str, bwrap_available: None
) -> None:
    argv = [
        sys.executable, str(ROOT / "bench/bench_throughput.py"), "--phase", "burst",
        "--clients", "4", "--uploads", "8", "--window", "2", "--max-waiting", "1",
        "--web-workers", "2",
        "--gpu-concurrency", "1", "--preflight-concurrency", "1", "--timeout", "120",
        "--database-prefix", "test_bench_throughput",
        "--broker-url", redis_url, "--cache-url", redis_url,
    ]  # fmt: skip
    out = subprocess.run(
        argv,
        env={**os.environ, "BENCH_ADMIN_URL": postgres_url},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = out.stdout + out.stderr
    assert out.returncode == 0, report[-4000:]
    accepted = int(re.search(r"\| 201 accepted \| (\d+) \|", report).group(1))
    refused = int(re.search(r"\| 429 refused \| (\d+) ", report).group(1))
    assert accepted >= 4 and accepted + refused == 8, report[-4000:]
    assert re.search(r"upload latency p50 / p95 / max \| [0-9.]+ s / [0-9.]+ s", report)
    assert "FAIL" not in report
    assert report.count("PASS: ") == 9
