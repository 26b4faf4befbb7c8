"""What every sandbox backend takes and returns, and the rules shared by all of them.

A backend runs one `SandboxJob` (an argv, read-only and writable mounts, resource limits, an
explicit environment) with no network, a read-only root, a size-limited noexec tmpfs at
`/scratch`, no capabilities, no-new-privileges and uid 65534, and answers a `SandboxResult`.
Why a job ended is summarised in `SandboxResult.reason`, decided once here (`classify_reason`) so
that both backends agree.

A job can be stopped from outside: `run(job, cancel=event)` kills the whole job (container, or
process group and cgroup) as soon as `event` is set, and reports `reason="cancelled"`. The
pipeline sets it when a stage's worker no longer owns its submission (cancelled, regraded, or
re-queued by the reaper), so an abandoned training does not hold a GPU until its deadline.
"""

from __future__ import annotations

import logging
import signal as signal_module
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal, Protocol, runtime_checkable

logger = logging.getLogger(__name__)

Reason = Literal[
    "timeout", "out_of_memory", "crashed", "output_limit", "infrastructure", "cancelled"
]

SANDBOX_UID = 65534
SANDBOX_GID = 65534
SCRATCH_DIR = "/scratch"

MiB = 1024 * 1024
GiB = 1024 * MiB


class SandboxError(Exception):
    """The sandbox itself could not run a job (engine down, bad configuration): never a verdict."""


@dataclass(frozen=True)
class Mount:
    """A host path made visible inside the sandbox; read-only unless said otherwise."""

    source: Path | str
    target: str
    read_only: bool = True

    def __post_init__(self) -> None:
        if not str(self.target).startswith("/"):
            raise ValueError(
                f"Mount target {self.target!r} is relative. Expected an absolute path."
            )


@dataclass(frozen=True)
class Limits:
    """Resource limits of one job. Sizes are in bytes, times in seconds.

    Attributes:
        wall_seconds: Wall-clock deadline; past it the whole process tree is killed.
        memory_bytes: Resident memory of all processes together (swap included where the
            kernel accounts it).
        pids: Processes and threads at once (TensorFlow alone starts dozens of threads).
        cpu_seconds: CPU time of each process (RLIMIT_CPU); `None` leaves it to `wall_seconds`.
        output_bytes: Captured stdout and stderr together; past it the job is killed.
        scratch_bytes: Size of the `/scratch` tmpfs (HOME and TMPDIR).
        file_size_bytes: Largest file a process may write (RLIMIT_FSIZE).
        shm_bytes: Size of `/dev/shm`.
        cpus: CPU cores the job may use at once (a CFS quota), e.g. 1.5.
        writable_bytes: Disk space the job may fill in its writable mounts (`/job/out`,
            `/job/work`) together; they live on the host's disk, so a watchdog measures them
            while the job runs and kills it past this (or past 20,000 files and directories,
            `hostdirs.MAX_WRITABLE_ENTRIES`).
    """

    wall_seconds: float = 3600.0
    memory_bytes: int = 4 * GiB
    pids: int = 512
    cpu_seconds: int | None = None
    output_bytes: int = 1 * MiB
    scratch_bytes: int = 256 * MiB
    file_size_bytes: int = 1 * GiB
    shm_bytes: int = 64 * MiB
    cpus: float | None = None
    writable_bytes: int = 2 * GiB

    def __post_init__(self) -> None:
        for name in ("wall_seconds", "memory_bytes", "pids", "output_bytes", "scratch_bytes"):
            value = getattr(self, name)
            if value <= 0:
                raise ValueError(f"Limits.{name} is {value}. Expected a positive number.")
        for name in ("file_size_bytes", "shm_bytes", "writable_bytes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"Limits.{name} is {getattr(self, name)}. Expected positive.")
        if self.cpu_seconds is not None and self.cpu_seconds <= 0:
            raise ValueError(f"Limits.cpu_seconds is {self.cpu_seconds}. Expected positive.")
        if self.cpus is not None and self.cpus <= 0:
            raise ValueError(f"Limits.cpus is {self.cpus}. Expected a positive core count.")


@dataclass(frozen=True)
class SandboxJob:
    """One command to run in a sandbox.

    Attributes:
        argv: The command, with paths as seen inside the sandbox.
        mounts: Host paths to show inside; everything else of the host is invisible.
        limits: Resource limits.
        env: The job's whole environment. The worker's own environment never leaks in; the
            backend only adds HOME and TMPDIR (both `/scratch`) when absent.
        workdir: Working directory inside the sandbox.
        gpu_device: A GPU index or UUID to expose (e.g. "0"), or None for none.
        name: A name the job keeps across attempts (a grading's stage), or None. A backend
            whose jobs can outlive the worker that started them (docker: the engine owns the
            container) ends an earlier job of the same name before starting this one, so a
            resumed stage never shares its checkpoint folder with a killed worker's leftover.
        hidden: Existing folders inside the mounts that the job sees empty and read-only (a
            dataset a library bundles, code the stage must not have): the backend mounts an
            empty read-only filesystem over each, after the mounts.
    """

    argv: Sequence[str]
    mounts: Sequence[Mount] = ()
    limits: Limits = field(default_factory=Limits)
    env: Mapping[str, str] = field(default_factory=dict)
    workdir: str = "/"
    gpu_device: str | None = None
    name: str | None = None
    hidden: Sequence[str] = ()

    def __post_init__(self) -> None:
        if not self.argv:
            raise ValueError("SandboxJob.argv is empty. Expected a command to run.")
        targets = [m.target.rstrip("/") or "/" for m in self.mounts]
        duplicates = sorted({t for t in targets if targets.count(t) > 1})
        if duplicates:
            raise ValueError(f"SandboxJob mounts {duplicates} more than once. Expected each once.")
        if SCRATCH_DIR in targets:
            raise ValueError(f"SandboxJob mounts {SCRATCH_DIR}: the backend owns that tmpfs.")
        for path in self.hidden:
            normal = str(path).rstrip("/")
            if not normal.startswith("/") or normal in targets or ".." in normal.split("/"):
                raise ValueError(
                    f"SandboxJob hides {path!r}. Expected an absolute folder inside a mount, "
                    "not a mount point itself."
                )

    def full_env(self) -> dict[str, str]:
        """The environment the job sees: its own `env` plus HOME and TMPDIR on the scratch."""
        env = {"HOME": SCRATCH_DIR, "TMPDIR": SCRATCH_DIR}
        env.update({str(k): str(v) for k, v in self.env.items()})
        return env


@dataclass(frozen=True)
class SandboxResult:
    """How a job ended.

    Attributes:
        exit_code: The process' exit status; None when it never started.
        signal: The signal that ended it, when one did (backends report 128+N exit codes
            as signal N, the shell convention, so `exit(139)` reads as SIGSEGV).
        timed_out: Killed at the wall-clock deadline (or by the CPU-time limit).
        oom_killed: The kernel killed a process of the job for memory.
        output_truncated: stdout/stderr passed `Limits.output_bytes` and the job was killed.
        stdout: Captured standard output (decoded as UTF-8, bad bytes replaced).
        stderr: Captured standard error.
        duration_seconds: From start to end of the job.
        reason: None on success, else why it failed (see `Reason`); "cancelled" when the
            caller's `cancel` event stopped it (never a verdict on the job).
        detail: A sentence a person can read explaining `reason`.
    """

    exit_code: int | None
    signal: int | None
    timed_out: bool
    oom_killed: bool
    output_truncated: bool
    stdout: str
    stderr: str
    duration_seconds: float
    reason: Reason | None
    detail: str = ""

    @property
    def ok(self) -> bool:
        """True when the job exited 0 within every limit."""
        return self.reason is None


LineCallback = Callable[[str], None]

#: How often a running job's cancel watcher looks at the caller's event (seconds).
CANCEL_POLL_SECONDS = 0.1
CANCELLED_DETAIL = "The job was stopped because its caller cancelled it."


def _unrun_result(reason: str, detail: str, duration_seconds: float) -> SandboxResult:
    """A job that produced no exit status or output: `reason` says why."""
    return SandboxResult(
        exit_code=None,
        signal=None,
        timed_out=False,
        oom_killed=False,
        output_truncated=False,
        stdout="",
        stderr="",
        duration_seconds=duration_seconds,
        reason=reason,
        detail=detail,
    )


def infrastructure_result(detail: str, duration_seconds: float = 0.0) -> SandboxResult:
    """The result of a job the sandbox could not run: a retryable failure, never a verdict."""
    return _unrun_result("infrastructure", detail, duration_seconds)


def cancelled_result(duration_seconds: float = 0.0) -> SandboxResult:
    """The result of a job stopped (or never started) because the caller cancelled it."""
    return _unrun_result("cancelled", CANCELLED_DETAIL, duration_seconds)


@runtime_checkable
class Sandbox(Protocol):
    """A backend: runs a job, streaming each stdout line to `on_line` as it arrives.

    `on_line` is called from a reader thread, in order; while it runs, the job's output waits
    in the pipe, so a slow callback slows the job rather than losing lines. Setting `cancel`
    (from any thread) kills the whole job within a fraction of a second; `run` then returns a
    result with `reason="cancelled"` once the job's processes are gone.
    """

    name: str

    def run(
        self,
        job: SandboxJob,
        on_line: LineCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> SandboxResult:
        """Run `job` to completion (or to a limit, or until `cancel` is set) and report how it
        ended."""
        ...


class CancelWatch:
    """Calls `kill` once when the caller's `cancel` event is set, until `stop()`.

    A daemon thread looks at the event every `CANCEL_POLL_SECONDS`; without an event it does
    nothing. `fired` says whether it killed the job.
    """

    def __init__(self, cancel: threading.Event | None, kill: Callable[[], None]) -> None:
        self.cancel = cancel
        self.kill = kill
        self.fired = False
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> CancelWatch:
        """Begin watching (call once the job runs)."""
        if self.cancel is not None:
            self._thread = threading.Thread(target=self._watch, name="sandbox-cancel", daemon=True)
            self._thread.start()
        return self

    def _watch(self) -> None:
        assert self.cancel is not None
        while not self._done.is_set():
            if self.cancel.wait(CANCEL_POLL_SECONDS):
                if not self._done.is_set():
                    self.fired = True
                    try:
                        self.kill()
                    except Exception:  # the job ends at its deadline if the kill failed
                        logger.exception("could not kill a cancelled sandbox job")
                return

    def stop(self) -> bool:
        """Stop watching (waiting for a kill in progress); True when the job was cancelled."""
        self._done.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=60)
        return self.fired


def signal_from_exit_code(exit_code: int | None) -> int | None:
    """The signal encoded in a 128+N exit status (docker, bwrap and shells all use it)."""
    if exit_code is None:
        return None
    if exit_code < 0:  # subprocess' convention for a direct child killed by a signal
        return -exit_code
    if 128 < exit_code <= 128 + 64:
        return exit_code - 128
    return None


def signal_name(number: int) -> str:
    """SIGSEGV for 11, or "signal 99" for numbers without a name."""
    try:
        return signal_module.Signals(number).name
    except ValueError:
        return f"signal {number}"


def classify_reason(
    *,
    exit_code: int | None,
    signal: int | None,
    timed_out: bool,
    oom_killed: bool,
    output_truncated: bool,
    limits: Limits,
    disk_exceeded: bool = False,
    cancelled: bool = False,
) -> tuple[Reason | None, str]:
    """Decide why a job ended, with a sentence explaining it.

    Kills the host decided (the caller's cancel, output cap, deadline) come first because they
    cause the exit status that follows; then the kernel's verdicts (out of memory, CPU time);
    then any other non-zero status is a crash.
    """
    if cancelled:
        return "cancelled", CANCELLED_DETAIL
    if disk_exceeded:
        return "output_limit", (
            f"The job wrote more than {limits.writable_bytes:,} bytes (Limits.writable_bytes) "
            f"or 20,000 files to its output and work directories and was stopped."
        )
    if output_truncated:
        return "output_limit", (
            f"The job wrote more than {limits.output_bytes:,} bytes to stdout and stderr "
            f"(Limits.output_bytes) and was stopped."
        )
    if timed_out:
        return (
            "timeout",
            f"The job ran past its deadline of {limits.wall_seconds:g} s and was killed.",
        )
    if signal == signal_module.SIGXCPU:
        return "timeout", (
            f"The job used more than {limits.cpu_seconds} s of CPU time "
            f"(Limits.cpu_seconds) and was killed."
        )
    if oom_killed and exit_code != 0:
        return "out_of_memory", (
            f"The job needed more than {limits.memory_bytes:,} bytes of memory "
            f"(Limits.memory_bytes) and was killed."
        )
    if exit_code is None:
        return "infrastructure", "The job never started."
    if exit_code != 0:
        if signal is not None:
            return (
                "crashed",
                f"The job was killed by {signal_name(signal)} (exit status {exit_code}).",
            )
        return "crashed", f"The job exited with status {exit_code}."
    return None, ""


class OutputCapture:
    """Reads a job's stdout and stderr in threads, splitting stdout into lines for `on_line`.

    Both streams share one budget of `limit` bytes. Past it the capture stops reading, sets
    `truncated` and fires `on_overflow` (which kills the job), so a job printing without end
    neither fills the worker's memory nor blocks on a full pipe forever.
    """

    def __init__(
        self,
        limit: int,
        on_line: LineCallback | None = None,
        on_overflow: Callable[[], None] | None = None,
    ) -> None:
        self.limit = limit
        self.on_line = on_line
        self.on_overflow = on_overflow
        self.truncated = False
        self._lock = threading.Lock()
        self._used = 0
        self._chunks: dict[str, list[bytes]] = {"stdout": [], "stderr": []}
        self._pending_line = b""
        self._threads: list[threading.Thread] = []
        self._overflow_fired = False

    def feed(self, stream: str, data: bytes) -> bool:
        """Take a chunk of `stream` ("stdout" or "stderr"); False once the budget is spent."""
        with self._lock:
            if self.truncated:
                return False
            room = self.limit - self._used
            if len(data) > room:
                data = data[:room]
                self.truncated = True
            self._used += len(data)
            self._chunks[stream].append(data)
            lines: list[bytes] = []
            if stream == "stdout" and self.on_line is not None:
                buffered = self._pending_line + data
                *lines, self._pending_line = buffered.split(b"\n")
            overflow = self.truncated and not self._overflow_fired
            if overflow:
                self._overflow_fired = True
        for line in lines:
            self._emit(line)
        if overflow and self.on_overflow is not None:
            self.on_overflow()
        return not self.truncated

    def _emit(self, line: bytes) -> None:
        if self.on_line is None:
            return
        text = line.decode("utf-8", errors="replace").rstrip("\r")
        try:
            self.on_line(text)
        except Exception:  # a broken progress callback must not lose the job's output
            logger.exception("on_line callback failed on %r", text[:200])

    def read_pipe(self, stream: str, pipe: IO[bytes]) -> None:
        """Start a thread copying `pipe` into the capture until EOF or the budget is spent."""

        def pump() -> None:
            try:
                while True:
                    data = pipe.read1(65536) if hasattr(pipe, "read1") else pipe.read(65536)
                    if not data or not self.feed(stream, data):
                        break
            except (OSError, ValueError):
                pass  # the pipe was closed under us while killing the job

        thread = threading.Thread(target=pump, name=f"sandbox-{stream}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def join(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for the reading threads to reach EOF."""
        for thread in self._threads:
            thread.join(timeout)

    def finish(self) -> tuple[str, str]:
        """Flush an unterminated last stdout line and return (stdout, stderr) as text."""
        with self._lock:
            pending, self._pending_line = self._pending_line, b""
            stdout = b"".join(self._chunks["stdout"]).decode("utf-8", errors="replace")
            stderr = b"".join(self._chunks["stderr"]).decode("utf-8", errors="replace")
        if pending and not self.truncated:
            self._emit(pending)
        return stdout, stderr
