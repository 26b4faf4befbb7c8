"""A worker killed mid-job: its sandboxed processes die with it, and what it leaves is reaped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from tests.workers.sandbox.test_hostile import host_processes_with
from workers.sandbox.environment import PROJECT_ROOT

pytestmark = pytest.mark.timeout(120)

WORKER = """
import sys
from workers.sandbox import Limits, SandboxJob, get_sandbox
from workers.sandbox.environment import python_environment

backend, marker, option = sys.argv[1], sys.argv[2], sys.argv[3]
name = sys.argv[4] if len(sys.argv) > 4 else None
options = {"labels": {"grader.test": option}} if backend == "docker" else {"prefix": option}
environment = python_environment()
sandbox = get_sandbox(backend, **options)
print("worker ready", flush=True)
sandbox.run(SandboxJob(
    argv=environment.argv("-c", "import time; time.sleep(600)", marker + "-job"),
    mounts=environment.mounts, env=environment.env, limits=Limits(wall_seconds=600), name=name,
))
"""


def start_worker(
    backend: str, marker: str, option: str, name: str | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, backend, marker, option, *([name] if name else [])],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )


def wait_for(condition, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.bwrap
def test_bwrap_job_dies_with_its_worker_and_leftovers_are_reaped(bwrap_sandbox):
    from workers.sandbox.bwrap_backend import reap_stale
    from workers.sandbox.cgroups import group_is_live, job_groups

    marker, prefix = f"orphan-{uuid.uuid4().hex}", f"grader-test-{uuid.uuid4().hex[:8]}"
    worker = start_worker("bwrap", marker, prefix)
    try:
        job = f"{marker}-job"  # the worker's own command line holds only `marker`
        assert wait_for(lambda: host_processes_with(job)), "the job never started"
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        # --die-with-parent: bwrap, and with it the job's whole pid namespace, goes too.
        assert wait_for(lambda: not host_processes_with(job), timeout=10)
        scratch = list(Path(tempfile.gettempdir()).glob(f"{prefix}-scratch-*"))
        assert len(scratch) == 1 and os.path.ismount(scratch[0])
        assert job_groups(prefix)  # the dead worker could not clean up
        # The kernel lists a dying process in its cgroup until it is reaped, a moment after it
        # left the process table; a group still listing one is (rightly) not reaped yet.
        assert wait_for(
            lambda: not any(group_is_live(g, min_age_seconds=0) for g in job_groups(prefix)),
            timeout=10,
        )
        assert reap_stale(prefix, min_age_seconds=0) >= 2
        assert not scratch[0].exists()
        assert job_groups(prefix) == []
    finally:
        if worker.poll() is None:
            worker.kill()


@pytest.mark.docker
def test_docker_container_of_a_dead_worker_is_reaped(docker_available):
    import docker

    from workers.sandbox.docker_backend import reap_expired_containers

    marker, tag = f"orphan-{uuid.uuid4().hex}", uuid.uuid4().hex
    client = docker.from_env(version="auto")
    mine = {"label": f"grader.test={tag}"}
    worker = start_worker("docker", marker, tag)
    try:
        assert wait_for(lambda: host_processes_with(f"{marker}-job")), "the job never started"
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        time.sleep(1.0)
        assert client.containers.list(filters=mine), "a container outlives its killed worker"
        # Before its deadline (wall limit + grace) the container is left alone...
        assert reap_expired_containers(client, label_filter=f"grader.test={tag}") == 0
        # ...after it, it is an orphan and goes.
        later = time.time() + 600 + 121
        assert reap_expired_containers(client, now=later, label_filter=f"grader.test={tag}") == 1
        assert client.containers.list(all=True, filters=mine) == []
        assert wait_for(lambda: not host_processes_with(f"{marker}-job"), timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
        for container in client.containers.list(all=True, filters=mine):
            container.remove(force=True)


@pytest.mark.docker
def test_docker_job_of_the_same_name_removes_a_dead_workers_container_first(docker_available):
    """A resumed stage must not train beside the container its killed worker left running."""
    import docker

    from workers.sandbox import SandboxJob, get_sandbox
    from workers.sandbox.environment import python_environment

    marker, tag = f"orphan-{uuid.uuid4().hex}", uuid.uuid4().hex
    name = f"/jobs/{tag}/train"
    client = docker.from_env(version="auto")
    mine = {"label": f"grader.test={tag}"}
    worker = start_worker("docker", marker, tag, name)
    try:
        assert wait_for(lambda: host_processes_with(f"{marker}-job")), "the job never started"
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        time.sleep(1.0)
        assert len(client.containers.list(filters=mine)) == 1
        environment = python_environment()
        sandbox = get_sandbox("docker", labels={"grader.test": tag})
        # Another job's name leaves the leftover alone...
        other = sandbox.run(
            SandboxJob(
                argv=environment.argv("-c", "print('other')"),
                mounts=environment.mounts,
                env=environment.env,
                name=f"/jobs/{tag}/evaluate",
            )
        )
        assert other.ok, other.detail
        assert len(client.containers.list(filters=mine)) == 1
        # ...the same name removes it (and its processes) before its own container starts.
        result = sandbox.run(
            SandboxJob(
                argv=environment.argv("-c", "print('resumed')"),
                mounts=environment.mounts,
                env=environment.env,
                name=name,
            )
        )
        assert result.ok and "resumed" in result.stdout, result.detail
        assert client.containers.list(all=True, filters=mine) == []
        assert wait_for(lambda: not host_processes_with(f"{marker}-job"), timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
        for container in client.containers.list(all=True, filters=mine):
            container.remove(force=True)
