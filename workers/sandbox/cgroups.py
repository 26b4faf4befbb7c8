"""A control group per bubblewrap job: memory, process-count and CPU limits the kernel enforces.

bubblewrap sets no resource limits itself. Running as root, the worker creates a child group of
its own group for each job (so limits set above the worker still apply), moves the job into it
before `bwrap` starts, and reads the kernel's OOM-kill counter afterwards: an exact out-of-memory
verdict, not a guess from the exit status.

Both hierarchies are handled: cgroup v1 (one directory per controller: `memory`, `pids`, `cpu`)
and cgroup v2 (one unified directory). When neither is writable, or a group would not enforce the
memory limit, `JobCgroup.create` answers None and the backend falls back to rlimits; a group
without the pids controller is reported (`enforces`) so the backend adds RLIMIT_NPROC.

cgroup v2 forbids a group that holds processes to hand controllers to its children ("no internal
processes"). A worker started as a systemd service, or in a container with its own cgroup
namespace, sits in exactly such a group: enabling `memory` for the job groups fails with EBUSY,
and a job group created anyway has no `memory.max` at all. So, as systemd asks of a service with
`Delegate=yes`, the worker first moves its group's processes into a leaf, `grader-workers`, and
creates the job groups beside it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from workers.sandbox.base import Limits

logger = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
V1_CONTROLLERS = ("memory", "pids", "cpu")
V2_CONTROLLERS = ("memory", "pids", "cpu")
CFS_PERIOD_US = 100_000
# cgroup v2: the leaf the worker's own processes move into so their group may delegate.
WORKERS_LEAF = "grader-workers"


def _own_group(controller: str) -> str | None:
    """This process' group path in `controller` ("" for v2's unified line), from /proc."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, names, path = line.split(":", 2)
        if controller in names.split(","):
            return path
    return None


def _is_v2() -> bool:
    return (CGROUP_ROOT / "cgroup.controllers").is_file()


def _v2_base() -> Path:
    """The v2 group the job groups go in: this process' own, or the one above its leaf."""
    own = CGROUP_ROOT / (_own_group("") or "/").lstrip("/")
    return own.parent if own.name == WORKERS_LEAF else own


def _v2_delegate(base: Path, wanted: list[str]) -> set[str]:
    """Enable `wanted` controllers for `base`'s children; returns those enabled afterwards.

    On EBUSY (`base` holds processes and is not the root), moves them into `base/grader-workers`
    first. Retried a few times: a process forked into `base` meanwhile makes the write fail again.
    """
    control = base / "cgroup.subtree_control"
    for _ in range(5):
        enabled = set(control.read_text().split())
        missing = [c for c in wanted if c not in enabled]
        if not missing:
            return enabled
        try:
            control.write_text(" ".join(f"+{c}" for c in missing))
            continue
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                logger.warning("cannot enable cgroup controllers %s in %s: %s", missing, base, exc)
                return enabled
        leaf = base / WORKERS_LEAF
        leaf.mkdir(exist_ok=True)
        for pid in (base / "cgroup.procs").read_text().split():
            try:
                (leaf / "cgroup.procs").write_text(pid)
            except ProcessLookupError:
                continue  # exited meanwhile
        logger.info("moved the worker processes of %s into %s to delegate", base, leaf)
    return set(control.read_text().split())


@dataclass
class JobCgroup:
    """One job's group(s). `procs_files` are what the job's first process writes its pid into."""

    version: int
    directories: dict[str, Path]
    # The limits the kernel enforces through this group ("memory", "pids", "cpu").
    enforces: frozenset[str] = frozenset()

    @classmethod
    def create(
        cls, limits: Limits, *, prefix: str = "grader-sandbox", job_id: str | None = None
    ) -> JobCgroup | None:
        """Make and configure the job's group `PREFIX-JOBID`, or None when cgroups cannot be
        used here."""
        name = f"{prefix}-{job_id or uuid.uuid4().hex[:12]}"
        try:
            group = cls._create_v2(name) if _is_v2() else cls._create_v1(name)
        except OSError as exc:
            logger.info("cgroups unavailable for sandbox jobs (%s); using rlimits only", exc)
            return None
        if group is None:
            return None
        try:
            group._configure(limits)
        except OSError as exc:
            group.remove()
            logger.warning("could not configure sandbox cgroup %s: %s", name, exc)
            return None
        if "memory" not in group.enforces:
            group.remove()
            logger.warning("sandbox cgroup %s has no memory limit; using rlimits only", name)
            return None
        expected = {"pids"} | ({"cpu"} if limits.cpus is not None else set())
        for controller in sorted(expected - group.enforces):
            logger.warning("sandbox cgroup %s has no %s controller", name, controller)
        return group

    @classmethod
    def _create_v1(cls, name: str) -> JobCgroup | None:
        directories: dict[str, Path] = {}
        for controller in V1_CONTROLLERS:
            own = _own_group(controller)
            base = CGROUP_ROOT / controller
            if own is None or not (base / "cgroup.procs").exists():
                continue
            directory = base / own.lstrip("/") / name
            directory.mkdir()
            directories[controller] = directory
        if "memory" not in directories:
            for directory in directories.values():
                directory.rmdir()
            return None
        return cls(version=1, directories=directories)

    @classmethod
    def _create_v2(cls, name: str) -> JobCgroup | None:
        base = _v2_base()
        available = (base / "cgroup.controllers").read_text().split()
        wanted = [c for c in V2_CONTROLLERS if c in available]
        if "memory" not in wanted:
            logger.warning("cgroup %s offers no memory controller to delegate", base)
            return None
        if "memory" not in _v2_delegate(base, wanted):
            return None
        directory = base / name
        directory.mkdir()
        return cls(version=2, directories={"unified": directory})

    def _write(self, controller: str, filename: str, value: str) -> bool:
        directory = self.directories.get(controller)
        if directory is None or not (directory / filename).exists():
            return False
        (directory / filename).write_text(value)
        return True

    def _configure(self, limits: Limits) -> None:
        """Write the limits; `enforces` records which ones the kernel took (a controller that is
        not delegated has no file to write, which must not pass for a limit)."""
        memory = str(limits.memory_bytes)
        enforces: set[str] = set()
        quota = int(limits.cpus * CFS_PERIOD_US) if limits.cpus is not None else None
        if self.version == 1:
            if self._write("memory", "memory.limit_in_bytes", memory):
                enforces.add("memory")
            # Swap accounting: memory+swap equal to memory means no swap at all, as docker's
            # mem_limit == memswap_limit. Absent when the kernel does not account swap.
            self._write("memory", "memory.memsw.limit_in_bytes", memory)
            if self._write("pids", "pids.max", str(limits.pids)):
                enforces.add("pids")
            if quota is not None and self._write("cpu", "cpu.cfs_period_us", str(CFS_PERIOD_US)):
                self._write("cpu", "cpu.cfs_quota_us", str(quota))
                enforces.add("cpu")
        else:
            if self._write("unified", "memory.max", memory):
                enforces.add("memory")
            self._write("unified", "memory.swap.max", "0")
            if self._write("unified", "pids.max", str(limits.pids)):
                enforces.add("pids")
            if quota is not None and self._write("unified", "cpu.max", f"{quota} {CFS_PERIOD_US}"):
                enforces.add("cpu")
        self.enforces = frozenset(enforces)

    @property
    def procs_files(self) -> list[Path]:
        """The `cgroup.procs` files a process joins the job's group(s) through."""
        return [directory / "cgroup.procs" for directory in self.directories.values()]

    def pids(self) -> set[int]:
        """Processes still in the job's group(s)."""
        found: set[int] = set()
        for procs in self.procs_files:
            with contextlib.suppress(OSError):
                found.update(int(p) for p in procs.read_text().split())
        return found

    def oom_killed(self) -> bool:
        """Whether the kernel's OOM killer killed a process of this job."""
        if self.version == 1:
            path = self.directories["memory"] / "memory.oom_control"
        else:
            path = self.directories["unified"] / "memory.events"
        try:
            fields = dict(line.split() for line in path.read_text().splitlines() if line.strip())
        except (OSError, ValueError):
            return False
        return int(fields.get("oom_kill", "0")) > 0

    def peak_memory_bytes(self) -> int | None:
        """The most memory the job's processes held at once, when the kernel reports it."""
        if self.version == 1:
            path = self.directories["memory"] / "memory.max_usage_in_bytes"
        else:
            path = self.directories["unified"] / "memory.peak"
        try:
            return int(path.read_text())
        except (OSError, ValueError):
            return None

    def kill_all(self, timeout: float = 5.0) -> bool:
        """SIGKILL every process of the job, repeating while a fork races the kill.

        Returns True when the group is empty afterwards.
        """
        if self.version == 2:
            with contextlib.suppress(OSError):
                (self.directories["unified"] / "cgroup.kill").write_text("1")
        deadline = time.monotonic() + timeout
        while True:
            pids = self.pids()
            if not pids:
                return True
            if time.monotonic() > deadline:
                logger.error("sandbox cgroup still holds processes %s after kill", sorted(pids))
                return False
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)

    def remove(self) -> None:
        """Delete the group(s); a group still holding processes is killed first."""
        for directory in self.directories.values():
            for _ in range(50):
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY:
                        logger.warning("could not remove cgroup %s: %s", directory, exc)
                        break
                    self.kill_all(timeout=1.0)
                    time.sleep(0.02)


def job_groups(prefix: str) -> list[Path]:
    """Every group directory named `PREFIX-*` below this process' own groups (all controllers)."""
    found: list[Path] = []
    if _is_v2():
        parents = [_v2_base()]
    else:
        parents = [
            CGROUP_ROOT / controller / own.lstrip("/")
            for controller in V1_CONTROLLERS
            if (own := _own_group(controller)) is not None
        ]
    for parent in parents:
        with contextlib.suppress(OSError):
            found.extend(p for p in parent.glob(f"{prefix}-*") if p.is_dir())
    return found


def group_is_live(directory: Path, min_age_seconds: float) -> bool:
    """A group holds processes, or is too young to judge (its job may not have joined yet)."""
    try:
        if (directory / "cgroup.procs").read_text().split():
            return True
        return time.time() - directory.stat().st_mtime < min_age_seconds
    except OSError:
        return False


def reap_stale_groups(prefix: str, min_age_seconds: float = 60.0) -> int:
    """Remove empty job groups older than `min_age_seconds`, left by a worker that died.

    Returns:
        How many group directories were removed.
    """
    removed = 0
    for directory in job_groups(prefix):
        if group_is_live(directory, min_age_seconds):
            continue
        try:
            directory.rmdir()
            removed += 1
        except OSError as exc:
            logger.info("stale sandbox cgroup %s not removed: %s", directory, exc)
    return removed
