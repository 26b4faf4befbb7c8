"""Nothing of a job outlives it: containers, cgroups, scratch mounts, processes."""

from __future__ import annotations

import tempfile
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from tests.workers.sandbox.conftest import ATTACK_LIMITS, describe
from workers.sandbox import Limits, SandboxJob, get_sandbox

pytestmark = [pytest.mark.timeout(120)]

ENDINGS = {
    "normal": "print('done')",
    "timeout": "import time; time.sleep(60)",
    "out_of_memory": "x = [b'1' * 2**24 for _ in range(10**4)]",
    "crashed": "import ctypes; ctypes.string_at(0)",
}


def _job(pyenv, source: str) -> SandboxJob:
    # A short deadline only where the deadline is the point: on a loaded host the memory bomb
    # may need more than 3 s to reach its limit.
    wall = 3.0 if source == ENDINGS["timeout"] else 60.0
    return SandboxJob(
        argv=pyenv.argv("-c", source),
        mounts=pyenv.mounts,
        env=pyenv.env,
        limits=replace(ATTACK_LIMITS, wall_seconds=wall),
    )


@pytest.mark.docker
def test_docker_removes_the_container_however_the_job_ends(docker_available, pyenv):
    tag = uuid.uuid4().hex
    backend = get_sandbox("docker", labels={"grader.test": tag})
    for ending, source in ENDINGS.items():
        result = backend.run(_job(pyenv, source))
        assert result.reason == (None if ending == "normal" else ending), describe(result)
        left = backend.client.containers.list(all=True, filters={"label": f"grader.test={tag}"})
        assert left == [], ending


@pytest.mark.docker
def test_docker_engine_failure_is_an_infrastructure_result(docker_available, pyenv):
    backend = get_sandbox("docker", image=f"grader-no-such-image:{uuid.uuid4().hex[:8]}")
    result = backend.run(_job(pyenv, "print(1)"))
    assert result.reason == "infrastructure"
    assert "Docker engine" in result.detail


def _cgroups_named(prefix: str) -> list[Path]:
    return [p for p in Path("/sys/fs/cgroup").rglob(f"{prefix}*") if p.is_dir()]


def _mounts_named(prefix: str) -> list[str]:
    return [line for line in Path("/proc/self/mounts").read_text().splitlines() if prefix in line]


@pytest.mark.bwrap
def test_bwrap_removes_cgroups_and_scratch_however_the_job_ends(bwrap_sandbox, pyenv):
    prefix = f"grader-test-{uuid.uuid4().hex[:8]}"
    backend = get_sandbox("bwrap", prefix=prefix)
    for ending, source in ENDINGS.items():
        result = backend.run(_job(pyenv, source))
        assert result.reason == (None if ending == "normal" else ending), describe(result)
        assert _cgroups_named(prefix) == [], ending
        assert _mounts_named(prefix) == [], ending
        assert list(Path(tempfile.gettempdir()).glob(f"{prefix}*")) == [], ending


@pytest.mark.bwrap
def test_bwrap_out_of_memory_without_cgroups_uses_rlimits(bwrap_sandbox, pyenv):
    """The fallback for hosts without a writable cgroup tree: RLIMIT_AS refuses the allocation."""
    backend = get_sandbox("bwrap", use_cgroups=False)
    source = "x = [b'1' * 2**26 for _ in range(10**4)]"  # 64 MiB blocks, far past 2 GB
    result = backend.run(
        SandboxJob(
            argv=pyenv.argv("-c", source),
            mounts=pyenv.mounts,
            env=pyenv.env,
            limits=Limits(wall_seconds=30.0, memory_bytes=256 * 2**20, pids=64),
        )
    )
    assert result.reason == "out_of_memory", describe(result)
    assert "MemoryError" in result.stderr
