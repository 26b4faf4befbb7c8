"""A bwrap job's control group: the limits are in the kernel's files, not only asked for.

Runs on this host's hierarchy (cgroup v1 here) and, through `test_cgroup_v2_vm.py`, inside a
virtual machine with cgroup v2, where `GRADER_TEST_CGROUP_VERSION` says which to expect.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import service_missing
from workers.sandbox import Limits
from workers.sandbox.base import MiB
from workers.sandbox.cgroups import JobCgroup, job_groups

pytestmark = pytest.mark.bwrap

LIMITS = Limits(wall_seconds=5.0, memory_bytes=192 * MiB, pids=37, cpus=0.5)


@pytest.fixture
def group(bwrap_available: None):
    if os.geteuid() != 0:
        service_missing("root, which sandbox cgroups need")
    created = JobCgroup.create(LIMITS, prefix="grader-test-limits")
    if created is None:
        service_missing("a writable cgroup hierarchy with the memory controller")
    yield created
    created.remove()


def _read(directory: Path, name: str) -> str:
    return (directory / name).read_text().strip()


def test_job_group_holds_memory_pids_and_cpu_limits(group: JobCgroup):
    expected_version = os.environ.get("GRADER_TEST_CGROUP_VERSION")
    if expected_version:
        assert group.version == int(expected_version)
    assert group.enforces == {"memory", "pids", "cpu"}
    if group.version == 2:
        unified = group.directories["unified"]
        assert _read(unified, "memory.max") == str(LIMITS.memory_bytes)
        assert _read(unified, "memory.swap.max") == "0"
        assert _read(unified, "pids.max") == "37"
        assert _read(unified, "cpu.max") == "50000 100000"
    else:
        assert _read(group.directories["memory"], "memory.limit_in_bytes") == str(
            LIMITS.memory_bytes
        )
        assert _read(group.directories["pids"], "pids.max") == "37"
        assert _read(group.directories["cpu"], "cpu.cfs_quota_us") == "50000"
        assert _read(group.directories["cpu"], "cpu.cfs_period_us") == "100000"
    assert all(d in job_groups("grader-test-limits") for d in group.directories.values())
