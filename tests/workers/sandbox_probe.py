"""Finding a grading's running sandbox from the host, and telling when it is gone.

A stage's sandbox mounts the grading's job folders (`GRADER_JOBS_DIR/<id>/g<generation>/...`):
bwrap names them on its command line, Docker in the container's mounts. That is how a test
finds the sandbox of one submission without any help from the code under test.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks) of a live process, or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # exited, waiting to be reaped: dead for our purpose
        return None
    return int(fields[1]), int(fields[19])


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


@dataclass
class SandboxProbe:
    """What one grading's sandbox consists of on this host, captured while it runs."""

    backend: str
    processes: dict[int, int] = field(default_factory=dict)  # pid -> start time
    cgroups: list[Path] = field(default_factory=list)
    containers: list[str] = field(default_factory=list)

    def alive(self) -> list[str]:
        """What of the captured sandbox still exists (empty once it is all gone)."""
        left = [
            f"process {pid}"
            for pid, started in self.processes.items()
            if (_stat(pid) or (0, None))[1] == started
        ]
        left += [f"cgroup {group}" for group in self.cgroups if group.exists()]
        if self.containers:
            import docker

            client = docker.from_env(version="auto")
            for container_id in self.containers:
                try:
                    client.containers.get(container_id)
                except docker.errors.NotFound:
                    continue
                left.append(f"container {container_id[:12]}")
        return left


def find_sandbox(backend: str, job_root: Path) -> SandboxProbe | None:
    """The running sandbox whose mounts lie under `job_root`, or None when there is none.

    bwrap: the bwrap processes naming `job_root`, every descendant (the job's whole tree, in
    its pid namespace) and their sandbox cgroups. Docker: the sandbox containers mounting it.
    """
    needle = str(job_root).encode()
    if backend == "docker":
        import docker

        client = docker.from_env(version="auto")
        ids = [
            container.id
            for container in client.containers.list(filters={"label": "grader.sandbox"})
            if any(
                str(m.get("Source", "")).startswith(str(job_root))
                for m in container.attrs.get("Mounts", [])
            )
        ]
        return SandboxProbe(backend, containers=ids) if ids else None
    parents: dict[int, int] = {}
    starts: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (info := _stat(int(entry))) is not None:
            parents[int(entry)], starts[int(entry)] = info
    roots = [pid for pid in parents if b"bwrap" in _cmdline(pid) and needle in _cmdline(pid)]
    if not roots:
        return None
    tree, frontier = set(roots), list(roots)
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier.extend(children)
    groups: set[Path] = set()
    for pid in tree:
        try:
            lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            _, controllers, path = line.split(":", 2)
            if "grader-sandbox" in path:
                controller = controllers.split(",")[0]
                groups.add(Path("/sys/fs/cgroup", controller, path.lstrip("/")))
    return SandboxProbe(
        backend, processes={pid: starts[pid] for pid in tree}, cgroups=sorted(groups)
    )


def wait_for_sandbox(
    backend: str, job_root: Path, *, timeout: float, min_processes: int = 1
) -> SandboxProbe:
    """Wait until the grading's sandbox runs (with at least `min_processes` for bwrap)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        probe = find_sandbox(backend, job_root)
        if probe is not None and (backend == "docker" or len(probe.processes) >= min_processes):
            return probe
        time.sleep(0.1)
    raise AssertionError(f"No {backend} sandbox under {job_root} after {timeout:.0f} s.")


def seconds_until_gone(probe: SandboxProbe, *, since: float, timeout: float) -> float:
    """Seconds from `since` (a `time.monotonic()` value) until nothing of `probe` is left."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not probe.alive():
            return time.monotonic() - since
        time.sleep(0.05)
    raise AssertionError(f"Still there {timeout:.0f} s later: {probe.alive()}")
