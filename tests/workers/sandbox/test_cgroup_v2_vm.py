"""The bwrap backend on cgroup v2, the hierarchy of current systemd hosts, in a virtual machine.

This host mounts cgroup v1, so the rest of the suite exercises the backend's v1 path. Here a QEMU
guest boots Debian's kernel (scripts/ensure-cgroup2-vm.sh) over this machine's root filesystem,
read-only, through virtme-ng; the guest mounts only cgroup v2. It runs the sandbox tests that
depend on the kernel's limits, with cgroups required (no fallback to rlimits), for two places
of the worker:

- `root`: in the root group, as a worker started by hand as root outside any service;
- `service`: with a sibling process in `/grader-worker.service`, as systemd starts a service.
  Before `cgroups.py` moved the worker's processes into a leaf, jobs in this placement got no
  memory or pids limit at all (a memory bomb met the guest's own OOM killer; a fork bomb made
  7,813 processes).

The guest has no network device at all. It runs under software emulation unless
`GRADER_TEST_VM_KVM=1` (nested KVM starts no guest on this CI host), so each boot and run takes
minutes.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.conftest import service_missing
from workers.sandbox.environment import PROJECT_ROOT

pytestmark = [pytest.mark.vm, pytest.mark.bwrap, pytest.mark.timeout(1500)]

VM_DIR = PROJECT_ROOT / "var" / "cgroup2-vm"
VIRTME_RUN = PROJECT_ROOT / ".venv" / "bin" / "virtme-run"
SANDBOX_TESTS = "tests/workers/sandbox"
# The tests that exercise the job's cgroup: limits, kills, cleanup, the reaper. The loopback test
# needs PostgreSQL and Redis, which the guest does not run.
GUEST_TESTS = [
    f"{SANDBOX_TESTS}/test_cgroups.py",
    f"{SANDBOX_TESTS}/test_hostile.py",
    f"{SANDBOX_TESTS}/test_limits.py",
    f"{SANDBOX_TESTS}/test_cancel.py",
    f"{SANDBOX_TESTS}/test_cleanup.py",
    f"{SANDBOX_TESTS}/test_worker_death.py",
]
# Not about cgroups, and wrong for this guest: it has no interface but `lo` (the test needs one
# to mean something), and under emulation a whole-filesystem search outruns its deadline.
DESELECT = "not loopback_services and not only_loopback_interface and not hidden_test_split"
# The root placement worked before the leaf fix too; it runs only the tests that meet the
# group's limits and kills, to spend fewer emulated minutes. The service placement runs all.
ROOT_FOCUS = "fork or memory or cpu or daemon or cancel or cgroups or dies"
# Python starts several times slower under emulation: deadlines and margins are scaled.
TIME_SCALE = "4"
SERVICE_GROUP = "/sys/fs/cgroup/grader-worker.service"


@pytest.fixture(scope="module")
def guest_kernel() -> Path:
    kernels = sorted(VM_DIR.glob("boot/vmlinuz-*"))
    if not kernels or not VIRTME_RUN.exists():
        service_missing("the cgroup v2 guest (scripts/ensure-cgroup2-vm.sh: QEMU, a kernel)")
    if os.geteuid() != 0:
        service_missing("root, which the guest's sandbox tests need")
    return kernels[-1]


def guest_script(placement: str) -> str:
    """The shell the guest runs: place the worker, then pytest on the shared checkout."""
    tests = list(GUEST_TESTS)
    selection = DESELECT if placement == "service" else f"{DESELECT} and ({ROOT_FOCUS})"
    lines = [
        "set -e",
        f"cd {shlex.quote(str(PROJECT_ROOT))}",
        "grep -q ' /sys/fs/cgroup cgroup2 ' /proc/mounts",  # v2 only, or the run proves nothing
    ]
    if placement == "service":
        lines += [
            # What systemd does for a unit with Delegate=yes: the controllers reach its group.
            "echo '+memory +pids +cpu' > /sys/fs/cgroup/cgroup.subtree_control",
            f"mkdir {SERVICE_GROUP}",
            f"echo $$ > {SERVICE_GROUP}/cgroup.procs",
            "sleep 100000 &",  # a sibling in the service's group, as a Celery pool process
        ]
        tests.append(f"{SANDBOX_TESTS}/cgroup_v2_guest.py")
    env = {
        "CI": "true",  # a missing piece in the guest fails instead of skipping
        "GRADER_TEST_REQUIRE_CGROUPS": "1",
        "GRADER_TEST_CGROUP_VERSION": "2",
        "GRADER_TEST_TIME_SCALE": TIME_SCALE,
        # The guest's /tmp is the host's, read-only (and may hold this checkout: no tmpfs over
        # it); virtme-ng gives the guest a tmpfs at /var/tmp.
        "HOME": "/var/tmp",
        "TMPDIR": "/var/tmp",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    }
    pytest_argv = [
        ".venv/bin/python",
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-m",
        "bwrap",
        "-k",
        selection,
        "--timeout=300",
        *tests,
    ]
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    lines.append(f"env -i {exports} {shlex.join(pytest_argv)}")
    return "\n".join(lines)


def run_guest(kernel: Path, script: str) -> subprocess.CompletedProcess[str]:
    argv = [
        str(VIRTME_RUN),
        "--kimg",
        str(kernel),
        "--mods",
        "auto",
        "--memory",
        "3G",
        "--cpus",
        "2",
        "--script-sh",
        script,
    ]
    if os.environ.get("GRADER_TEST_VM_KVM") != "1":
        argv.append("--disable-kvm")
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=1400, stdin=subprocess.DEVNULL
    )


@pytest.mark.parametrize("placement", ["root", "service"])
def test_sandbox_limits_hold_on_cgroup_v2(guest_kernel: Path, placement: str):
    done = run_guest(guest_kernel, guest_script(placement))
    output = done.stdout + done.stderr
    summary = re.search(r"^=*\s*(\d+ passed.*?)\s*=*$", done.stdout, re.MULTILINE)
    assert done.returncode == 0, f"guest exited {done.returncode}:\n{output[-8000:]}"
    assert summary is not None, output[-8000:]
    counts = dict(
        (kind, int(number)) for number, kind in re.findall(r"(\d+) (\w+)", summary.group(1))
    )
    assert counts.get("failed", 0) == 0 and counts.get("error", 0) == 0, output[-8000:]
    assert counts.get("skipped", 0) == 0, f"a guest test skipped:\n{output[-8000:]}"
    assert counts["passed"] >= (39 if placement == "service" else 13), summary.group(1)
