"""Cancelling a running job: its whole process tree (and container or cgroup) goes at once.

The pipeline cancels a job when its worker no longer owns the submission (`run(job,
cancel=event)`); here the event is set by hand while a job and a child it started sleep.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import pytest

from tests.workers.sandbox.conftest import MARGIN_SECONDS, describe, run_benign
from tests.workers.sandbox.test_hostile import host_processes_with
from workers.sandbox import Limits, Sandbox, SandboxJob, SandboxResult
from workers.sandbox.base import MiB

pytestmark = pytest.mark.timeout(120)

# The job starts a child (a second process the kill must reach), reports, then sleeps; both
# carry the test's marker on their command line so the host can find them.
SLEEPER = """\
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", sys.argv[1] + "-child"])
print("started", flush=True)
time.sleep(600)
"""


def wait_for(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def job_cgroups(pid: int) -> list[Path]:
    """The sandbox cgroup directories process `pid` belongs to (from /proc/PID/cgroup)."""
    found = []
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "grader-sandbox" not in path:
            continue
        controller = controllers.split(",")[0]
        base = Path("/sys/fs/cgroup") / (controller if controller else "")
        found.append(base / path.lstrip("/"))
    return found


def sandbox_containers(client, source: Path) -> list[str]:
    """Ids of sandbox containers (running or not) that bind-mount `source`."""
    ids = []
    for container in client.containers.list(all=True, filters={"label": "grader.sandbox"}):
        if any(m.get("Source") == str(source) for m in container.attrs.get("Mounts", [])):
            ids.append(container.id)
    return ids


def start_sleeper(sandbox: Sandbox, pyenv, job_dirs, marker: str, cancel: threading.Event):
    script = job_dirs.inp / "sleeper.py"
    script.write_text(SLEEPER)
    script.chmod(0o644)
    job = SandboxJob(
        argv=pyenv.argv("/job/in/sleeper.py", marker),
        mounts=[*pyenv.mounts, *job_dirs.mounts()],
        limits=Limits(wall_seconds=300, memory_bytes=512 * MiB, pids=64),
        env=pyenv.env,
        workdir="/job",
    )
    started = threading.Event()
    outcome: dict[str, SandboxResult] = {}

    def on_line(line: str) -> None:
        if line == "started":
            started.set()

    thread = threading.Thread(
        target=lambda: outcome.setdefault("result", sandbox.run(job, on_line, cancel)),
        daemon=True,
    )
    thread.start()
    return thread, started, outcome


def test_cancel_kills_the_whole_job_at_once(sandbox, pyenv, job_dirs):
    marker = f"cancel-{uuid.uuid4().hex}"
    cancel = threading.Event()
    thread, started, outcome = start_sleeper(sandbox, pyenv, job_dirs, marker, cancel)
    assert started.wait(60), "the job never reported"
    assert wait_for(lambda: len(host_processes_with(marker)) >= 2, 10), "no child process"
    pids = host_processes_with(marker)
    if sandbox.name == "bwrap":
        groups = job_cgroups(pids[0])
        assert groups and all(group.is_dir() for group in groups)
    else:
        import docker

        client = docker.from_env(version="auto")
        (container_id,) = sandbox_containers(client, job_dirs.out)

    began = time.monotonic()
    cancel.set()
    thread.join(timeout=30)
    elapsed = time.monotonic() - began

    assert not thread.is_alive(), "run() did not return after the cancel"
    result = outcome["result"]
    assert result.reason == "cancelled", describe(result)
    assert not result.ok and not result.timed_out and not result.oom_killed
    # When run() returns, nothing of the job is left: processes, container, cgroup.
    assert host_processes_with(marker) == []
    if sandbox.name == "bwrap":
        assert not any(group.exists() for group in groups)
    else:
        assert sandbox_containers(client, job_dirs.out) == []
        with pytest.raises(docker.errors.NotFound):
            client.containers.get(container_id)
    assert elapsed < MARGIN_SECONDS[sandbox.name], f"{elapsed:.2f} s to stop the job"
    run_benign(sandbox, pyenv)  # the backend still runs the next job normally


def test_a_job_cancelled_before_it_starts_never_runs(sandbox, pyenv, job_dirs):
    marker = f"never-{uuid.uuid4().hex}"
    cancel = threading.Event()
    cancel.set()
    job = SandboxJob(
        argv=pyenv.argv("-c", "import time; time.sleep(600)", marker),
        mounts=pyenv.mounts,
        limits=Limits(wall_seconds=60, memory_bytes=256 * MiB, pids=64),
        env=pyenv.env,
    )
    result = sandbox.run(job, cancel=cancel)
    assert result.reason == "cancelled" and result.exit_code is None, describe(result)
    assert host_processes_with(marker) == []


def test_an_unset_cancel_event_changes_nothing(sandbox, pyenv):
    job = SandboxJob(
        argv=pyenv.argv("-c", "print('fine')"),
        mounts=pyenv.mounts,
        limits=Limits(wall_seconds=60, memory_bytes=256 * MiB, pids=64),
        env=pyenv.env,
    )
    result = sandbox.run(job, cancel=threading.Event())
    assert result.ok and result.stdout.strip() == "fine", describe(result)
