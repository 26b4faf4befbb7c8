"""Fixtures for sandbox tests: one real backend instance per kind, and a way to run a script.

`sandbox` is parametrized over both backends; each parameter carries its marker (`docker`,
`bwrap`) and asks for `docker_available` / `bwrap_available`, so a missing engine skips locally
and fails in CI.
"""

from __future__ import annotations

import os
import textwrap
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import service_missing
from workers.sandbox import Limits, Mount, Sandbox, SandboxJob, SandboxResult, get_sandbox
from workers.sandbox.base import MiB
from workers.sandbox.environment import PythonEnvironment, python_environment

# Deadlines and margins are multiplied by this where Python itself starts slowly: the cgroup v2
# guest of test_cgroup_v2_vm.py runs under software emulation.
TIME_SCALE = float(os.environ.get("GRADER_TEST_TIME_SCALE", "1"))
# Small limits for attacks, so the whole hostile suite stays within a few minutes.
ATTACK_LIMITS = Limits(
    wall_seconds=5.0 * TIME_SCALE,
    memory_bytes=256 * MiB,
    pids=64,
    output_bytes=1 * MiB,
    scratch_bytes=16 * MiB,
    file_size_bytes=64 * MiB,
    shm_bytes=8 * MiB,
)
# What a finished job may take beyond its limit: killing, reaping and removing a container.
MARGIN_SECONDS = {"bwrap": 2.0 * TIME_SCALE, "docker": 6.0 * TIME_SCALE}


@pytest.fixture(scope="session")
def docker_sandbox(docker_available: None) -> Sandbox:
    """One Docker backend for the whole session (image created once)."""
    return get_sandbox("docker")


@pytest.fixture(scope="session")
def bwrap_sandbox(bwrap_available: None) -> Sandbox:
    """One bubblewrap backend for the whole session."""
    if os.geteuid() != 0:
        service_missing("root, which the bwrap backend needs (cgroups, uid switch)")
    # The cgroup v2 guest (test_cgroup_v2_vm.py) sets this: a job without its cgroup must fail
    # there, not pass on the rlimit fallback.
    if os.environ.get("GRADER_TEST_REQUIRE_CGROUPS") == "1":
        return get_sandbox("bwrap", use_cgroups=True)
    return get_sandbox("bwrap")


@pytest.fixture(
    scope="session",
    params=[
        pytest.param("docker", marks=pytest.mark.docker),
        pytest.param("bwrap", marks=pytest.mark.bwrap),
    ],
)
def sandbox(request: pytest.FixtureRequest) -> Sandbox:
    """Each real backend in turn."""
    return request.getfixturevalue(f"{request.param}_sandbox")


@pytest.fixture(scope="session")
def pyenv() -> PythonEnvironment:
    """The project's interpreter and code, as the sandbox mounts them."""
    return python_environment()


@dataclass
class JobDirs:
    """A job's host directories: `inp` (read-only at /job/in), `out` (read-write at /job/out)."""

    inp: Path
    out: Path

    def mounts(self) -> list[Mount]:
        return [Mount(self.inp, "/job/in"), Mount(self.out, "/job/out", read_only=False)]


@pytest.fixture
def job_dirs(tmp_path: Path) -> JobDirs:
    """Fresh input and output directories for one job."""
    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    out.mkdir()
    inp.chmod(0o755)
    tmp_path.chmod(0o755)
    return JobDirs(inp, out)


@pytest.fixture
def run_script(sandbox: Sandbox, pyenv: PythonEnvironment, job_dirs: JobDirs):
    """Run Python `source` in the sandbox as /job/in/script.py; returns the SandboxResult."""

    def run(
        source: str,
        *,
        limits: Limits = ATTACK_LIMITS,
        env: dict[str, str] | None = None,
        on_line=None,
        args: tuple[str, ...] = (),
    ) -> SandboxResult:
        script = job_dirs.inp / "script.py"
        script.write_text(textwrap.dedent(source))
        script.chmod(0o644)
        job = SandboxJob(
            argv=pyenv.argv("/job/in/script.py", *args),
            mounts=[*pyenv.mounts, *job_dirs.mounts()],
            limits=limits,
            env={**pyenv.env, **(env or {})},
            workdir="/job",
        )
        return sandbox.run(job, on_line=on_line)

    return run


def run_benign(sandbox: Sandbox, pyenv: PythonEnvironment) -> SandboxResult:
    """A normal job: what must still work right after an attack on the same backend."""
    token = uuid.uuid4().hex
    job = SandboxJob(
        argv=pyenv.argv("-c", f"import sys; print('benign', {token!r}, sys.version_info[0])"),
        mounts=pyenv.mounts,
        limits=Limits(wall_seconds=30.0, memory_bytes=256 * MiB, pids=64),
        env=pyenv.env,
    )
    result = sandbox.run(job)
    assert result.reason is None, (result.detail, result.stderr)
    assert result.stdout.split() == ["benign", token, "3"]
    return result


def describe(result: SandboxResult) -> str:
    """A compact account of a result for assertion messages."""
    return (
        f"reason={result.reason} exit={result.exit_code} signal={result.signal} "
        f"oom={result.oom_killed} timed_out={result.timed_out} "
        f"seconds={result.duration_seconds:.2f} detail={result.detail!r}\n"
        f"stdout={result.stdout[-1500:]!r}\nstderr={result.stderr[-1500:]!r}"
    )
