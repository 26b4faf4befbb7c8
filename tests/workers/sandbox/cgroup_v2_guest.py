"""Checks that only mean something inside the cgroup v2 guest of `test_cgroup_v2_vm.py`.

Not collected on the host (the file name does not start with `test_`); the guest names it. There
the worker (this pytest) and a sibling process were started in `/grader-worker.service`, as
systemd starts a service, before any job ran.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.workers.sandbox.test_cgroups import LIMITS, _read
from workers.sandbox.cgroups import CGROUP_ROOT, WORKERS_LEAF, JobCgroup

pytestmark = pytest.mark.bwrap


def test_worker_group_with_processes_delegates_through_a_leaf():
    group = JobCgroup.create(LIMITS, prefix="grader-test-guest")
    assert group is not None, "no job group: the memory controller could not be delegated"
    try:
        own = Path("/proc/self/cgroup").read_text().strip().split(":", 2)[2]
        assert own == f"/grader-worker.service/{WORKERS_LEAF}"
        leaf = CGROUP_ROOT / own.lstrip("/")
        base = leaf.parent
        assert group.directories["unified"].parent == base
        assert _read(base, "cgroup.procs") == ""  # every process left, the sibling included
        assert len(_read(leaf, "cgroup.procs").split()) >= 2
        assert {"memory", "pids", "cpu"} <= set(_read(base, "cgroup.subtree_control").split())
        assert _read(group.directories["unified"], "memory.max") == str(LIMITS.memory_bytes)
    finally:
        group.remove()
