"""The bubblewrap backend: namespaces, a cgroup and rlimits around one process tree.

How each guarantee is made:

- Network: `--unshare-net` gives a namespace holding only `lo`, where nothing listens.
- Filesystem: the root is an empty tmpfs made read-only (`--remount-ro /`); only the job's
  mounts appear. `/scratch` is a host tmpfs mounted `noexec,nosuid,nodev` with a size limit.
- User: bwrap keeps only CAP_SETUID/CAP_SETGID for `setpriv`, which becomes uid/gid 65534 on
  the host, clears supplementary groups, empties the bounding and inheritable capability sets
  and sets no-new-privileges before executing the job. No user namespace: 65534 inside is
  65534 outside, so rlimits and file ownership mean what they say.
- Processes: `--unshare-pid` makes bwrap pid 1 of the job's namespace; when it exits or is
  killed, the kernel kills every process left in the namespace, daemons included.
  `--die-with-parent` ties it to the bwrap we started, and the job's cgroup is emptied by
  SIGKILL afterwards as a second line. A deadline, the output cap, the disk watch and the
  caller's `cancel` event all kill the same way: SIGKILL to bwrap's process group.
- Limits: cgroup memory (memory+swap), pids and CPU quota (see `cgroups.py`); RLIMIT_CPU,
  RLIMIT_FSIZE and RLIMIT_CORE=0 through `prlimit`. Without a writable cgroup hierarchy,
  RLIMIT_AS replaces the memory limit and RLIMIT_NPROC the pids limit (RLIMIT_AS counts
  address space, not memory: CUDA reserves far more than it uses, so GPU hosts need cgroups);
  a group without the pids controller gets RLIMIT_NPROC too. On cgroup v2 the worker moves its
  own processes into a leaf group first (see `cgroups.py`): without that, a worker run as a
  systemd service could not give its jobs any memory or pids limit.
- System calls: a seccomp filter (`seccomp.py`) refuses namespaces, mounts, keyrings, BPF,
  io_uring, ptrace and foreign ABIs, as Docker's default profile does for containers.

Out-of-memory verdicts: with a cgroup, the kernel's `oom_kill` counter (exact). With rlimits only,
a job is called out of memory when it exits non-zero and its stderr ends in a `MemoryError` or
`std::bad_alloc` (an allocation refused by RLIMIT_AS), or it died of SIGKILL that neither the
deadline nor the output cap sent (the kernel's global OOM killer).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

from workers.sandbox.base import (
    SANDBOX_GID,
    SANDBOX_UID,
    SCRATCH_DIR,
    CancelWatch,
    LineCallback,
    OutputCapture,
    SandboxError,
    SandboxJob,
    SandboxResult,
    cancelled_result,
    classify_reason,
    infrastructure_result,
    signal_from_exit_code,
)
from workers.sandbox.cgroups import JobCgroup, group_is_live, job_groups, reap_stale_groups
from workers.sandbox.environment import check_job_mounts
from workers.sandbox.hostdirs import DiskWatch, PrivateTmpfs, prepare_writable_mounts
from workers.sandbox.seccomp import filter_fd

logger = logging.getLogger(__name__)

# Run between `fork` and `bwrap`: join the job's cgroup(s) so every later process is inside.
# Positional arguments: the cgroup.procs files, "--", then the command to exec.
_ENTER_CGROUPS = (
    'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"'
)
# Without cgroups, RLIMIT_AS must still let TensorFlow map its address space: a floor that
# imports TensorFlow (FIELD-NOTES: 2 GB works) whatever the memory limit asked.
RLIMIT_AS_FLOOR = 2_000_000_000


class BwrapSandbox:
    """Runs jobs under bubblewrap. Needs root for cgroups and the noexec scratch mount.

    Args:
        bwrap: Path or name of the bubblewrap executable.
        use_cgroups: Force cgroups on or off; None uses them when they are writable.
        prefix: Name prefix of each job's cgroup and scratch directory.
        use_seccomp: Apply the system-call filter of `seccomp.py` (x86-64 only).
    """

    name = "bwrap"

    def __init__(
        self,
        *,
        bwrap: str = "bwrap",
        use_cgroups: bool | None = None,
        prefix: str = "grader-sandbox",
        use_seccomp: bool = True,
    ) -> None:
        path = shutil.which(bwrap)
        if path is None:
            raise SandboxError(
                f"bubblewrap (`{bwrap}`) is not installed. Run scripts/ensure-bwrap.sh."
            )
        self.bwrap = path
        prlimit, setpriv = shutil.which("prlimit"), shutil.which("setpriv")
        if prlimit is None or setpriv is None:
            raise SandboxError(
                "`prlimit` and `setpriv` (util-linux) are needed by the bwrap backend."
            )
        self.prlimit: str = prlimit
        self.setpriv: str = setpriv
        if os.geteuid() != 0:
            raise SandboxError(
                "The bwrap backend runs as root: it switches the job to uid 65534 itself."
            )
        self.use_cgroups = use_cgroups
        self.prefix = prefix
        self.use_seccomp = use_seccomp
        try:
            reap_stale(prefix)
        except OSError:
            logger.exception("could not reap stale bwrap sandboxes")

    def run(
        self,
        job: SandboxJob,
        on_line: LineCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> SandboxResult:
        """Run `job` and report how it ended; a sandbox failure is an "infrastructure" result.

        Setting `cancel` kills the job's process group and cgroup; `run` returns (reason
        "cancelled") once every process of the job is gone.
        """
        if cancel is not None and cancel.is_set():
            return cancelled_result()
        try:
            return self._run(job, on_line, cancel)
        except (SandboxError, OSError) as exc:
            if cancel is not None and cancel.is_set():
                return cancelled_result()
            logger.exception("bwrap sandbox failed")
            return infrastructure_result(f"The bwrap sandbox could not run the job: {exc}")

    def _run(
        self, job: SandboxJob, on_line: LineCallback | None, cancel: threading.Event | None
    ) -> SandboxResult:
        limits = job.limits
        check_job_mounts(job.mounts)
        for mount in job.mounts:
            if not os.path.exists(mount.source):
                raise SandboxError(f"Mount source {mount.source} does not exist.")
        job_id = uuid.uuid4().hex[:12]
        cgroup = (
            JobCgroup.create(limits, prefix=self.prefix, job_id=job_id)
            if self.use_cgroups is not False
            else None
        )
        if self.use_cgroups and cgroup is None:
            raise SandboxError("cgroups were required but no writable hierarchy was found.")
        # The scratch directory carries the cgroup's id, so `reap_stale` can tell a dead job's
        # scratch (no live group) from a running one; without a group it is never reaped.
        scratch_name = f"{self.prefix}-scratch-{job_id if cgroup else 'nocg-' + job_id}"
        scratch = PrivateTmpfs(
            limits.scratch_bytes, directory=Path(tempfile.gettempdir()) / scratch_name
        )
        process: subprocess.Popen[bytes] | None = None
        killed_by_us = threading.Event()
        seccomp = filter_fd() if self.use_seccomp else None
        # The sandbox writes one byte here once bwrap has set everything up, just before the
        # job's own code starts: a non-zero exit without it is bwrap's failure, not the job's.
        started_read, started_write = os.pipe()
        watch: DiskWatch | None = None
        cancel_watch: CancelWatch | None = None
        try:
            prepare_writable_mounts(job.mounts)
            argv = self._command(job, scratch, cgroup, seccomp)

            def kill() -> None:
                killed_by_us.set()
                if process is not None:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(process.pid, signal.SIGKILL)

            capture = OutputCapture(limits.output_bytes, on_line=on_line, on_overflow=kill)
            started = time.monotonic()
            process = subprocess.Popen(
                argv,
                stdin=started_write,  # becomes /dev/null once the sandbox reported in
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env={},  # bwrap's own environment is visible to the job as /proc/1/environ
                start_new_session=True,  # one process group to kill: prelude, prlimit, bwrap
                close_fds=True,
                pass_fds=() if seccomp is None else (seccomp,),
            )
            os.close(started_write)
            started_write = -1
            assert process.stdout is not None and process.stderr is not None
            capture.read_pipe("stdout", process.stdout)
            capture.read_pipe("stderr", process.stderr)
            watch = DiskWatch(
                [m.source for m in job.mounts if not m.read_only], limits.writable_bytes, kill
            ).start()
            cancel_watch = CancelWatch(cancel, kill).start()

            timed_out = False
            exit_code = _wait(process, limits.wall_seconds)
            if exit_code is None:
                timed_out = not capture.truncated and not watch.exceeded
                kill()
                exit_code = process.wait()
            duration = time.monotonic() - started
            cancelled = cancel_watch.stop()
            disk_exceeded = watch.stop()

            # bwrap's pid 1 has died, so the kernel is tearing the namespace down; the cgroup
            # sweep catches anything that slipped out of the namespace (it cannot, but cheap).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            if cgroup is not None:
                cgroup.kill_all()
            capture.join(timeout=5.0)
            stdout, stderr = capture.finish()

            if not cancelled and not _job_started(started_read):
                raise SandboxError(
                    f"bubblewrap could not start the job (exit status {exit_code}): "
                    f"{stderr.strip()[-500:] or 'no message'}"
                )

            sig = signal_from_exit_code(exit_code)
            oom = self._oom_killed(cgroup, exit_code, sig, stderr, killed_by_us.is_set())
            reason, detail = classify_reason(
                exit_code=exit_code,
                signal=sig,
                timed_out=timed_out,
                oom_killed=oom,
                output_truncated=capture.truncated,
                limits=limits,
                disk_exceeded=disk_exceeded,
                cancelled=cancelled,
            )
            return SandboxResult(
                exit_code=exit_code,
                signal=sig,
                timed_out=timed_out,
                oom_killed=oom,
                output_truncated=capture.truncated,
                stdout=stdout,
                stderr=stderr,
                duration_seconds=duration,
                reason=reason,
                detail=detail,
            )
        finally:
            if cancel_watch is not None:
                cancel_watch.stop()
            if watch is not None:
                watch.stop()
            if process is not None and process.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            if process is not None:
                for pipe in (process.stdout, process.stderr):
                    if pipe is not None:
                        with contextlib.suppress(OSError):
                            pipe.close()
            if cgroup is not None:
                cgroup.remove()
            scratch.close()
            if seccomp is not None:
                os.close(seccomp)
            for fd in (started_read, started_write):
                if fd >= 0:
                    os.close(fd)

    @staticmethod
    def _oom_killed(
        cgroup: JobCgroup | None, exit_code: int, sig: int | None, stderr: str, killed: bool
    ) -> bool:
        if cgroup is not None:
            return cgroup.oom_killed()
        if exit_code == 0:
            return False
        tail = stderr[-2000:]
        if "MemoryError" in tail or "std::bad_alloc" in tail:
            return True
        return sig == signal.SIGKILL and not killed

    def _command(
        self,
        job: SandboxJob,
        scratch: PrivateTmpfs,
        cgroup: JobCgroup | None,
        seccomp: int | None,
    ) -> list[str]:
        limits = job.limits
        rlimits = [f"--fsize={limits.file_size_bytes}", "--core=0"]
        if limits.cpu_seconds is not None:
            # Soft limit sends SIGXCPU (reported as a timeout); the hard one a second later
            # SIGKILLs a job that ignores SIGXCPU.
            rlimits.append(f"--cpu={limits.cpu_seconds}:{limits.cpu_seconds + 1}")
        if cgroup is None:
            rlimits.append(f"--as={max(limits.memory_bytes, RLIMIT_AS_FLOOR)}")
        if cgroup is None or "pids" not in cgroup.enforces:
            rlimits.append(f"--nproc={limits.pids}")

        bwrap = [
            self.bwrap,
            "--unshare-ipc",
            "--unshare-pid",
            "--unshare-net",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--die-with-parent",
            "--new-session",
            "--hostname",
            "sandbox",
            "--clearenv",
        ]
        env = job.full_env()
        if job.gpu_device is not None:
            # Only /dev/nvidia<N> is bound, but the driver still lists every GPU through
            # /dev/nvidiactl: select N, numbered in PCI order like the device nodes.
            env.setdefault("CUDA_VISIBLE_DEVICES", job.gpu_device)
            env.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
        for key, value in sorted(env.items()):
            bwrap += ["--setenv", key, value]
        bwrap += ["--proc", "/proc", "--dev", "/dev"]
        bwrap += ["--size", str(limits.shm_bytes), "--perms", "1777", "--tmpfs", "/dev/shm"]  # noqa: S108
        if job.gpu_device is not None:
            bwrap += _gpu_device_binds(job.gpu_device)

        # bwrap would create missing parents (e.g. /root for the Python installation) with the
        # host's mode, 0700 for /root, which uid 65534 cannot traverse: create them 0755 first.
        bwrap += _parent_directories([m.target for m in job.mounts] + [SCRATCH_DIR], job.workdir)
        # Parents before children: a bind onto /a/b after /a/b's parent is mounted stays visible.
        for mount in sorted(job.mounts, key=lambda m: m.target.count("/")):
            source = str(mount.source)
            if not os.path.exists(source):
                raise SandboxError(f"Mount source {source} does not exist.")
            bwrap += ["--ro-bind" if mount.read_only else "--bind", source, mount.target]
        # After the binds they lie in: an empty tmpfs, made read-only, over each hidden folder.
        for path in sorted(job.hidden, key=lambda p: p.count("/")):
            bwrap += ["--perms", "0555", "--tmpfs", path, "--remount-ro", path]
        if scratch.mounted:
            bwrap += ["--bind", str(scratch.path), SCRATCH_DIR]
        else:
            bwrap += [
                "--size",
                str(limits.scratch_bytes),
                "--perms",
                "1777",
                "--tmpfs",
                SCRATCH_DIR,
            ]
        bwrap += ["--remount-ro", "/", "--chdir", job.workdir]
        if seccomp is not None:
            bwrap += ["--seccomp", str(seccomp)]
        bwrap += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--"]
        # Inside, before the job: report "set up" on stdin (the pipe, a low fd every shell can
        # name) and replace it with /dev/null, so no process of the job holds the pipe.
        announce = 'printf 1 >&0 && exec 0</dev/null && exec "$@"'
        bwrap += ["/bin/sh", "-c", announce, "sandbox-start"]
        setpriv = [
            self.setpriv,
            f"--reuid={SANDBOX_UID}",
            f"--regid={SANDBOX_GID}",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
            "--",
        ]
        command = [self.prlimit, *rlimits, "--", *bwrap, *setpriv, *job.argv]
        if cgroup is None:
            return command
        return (
            ["/bin/sh", "-c", _ENTER_CGROUPS, "sandbox-enter"]
            + [str(p) for p in cgroup.procs_files]
            + ["--", *command]
        )


def reap_stale(prefix: str = "grader-sandbox", min_age_seconds: float = 60.0) -> int:
    """Unmount the scratch areas and remove the cgroups of jobs whose worker died mid-run.

    A killed worker takes its jobs with it (`--die-with-parent`), but cannot clean up after
    them. A job is dead when its cgroup holds no process and is older than `min_age_seconds`
    (younger ones may be starting). Called by every new `BwrapSandbox`.

    Returns:
        How many scratch areas and cgroups were removed.
    """
    live = {
        group.name.removeprefix(f"{prefix}-")
        for group in job_groups(prefix)
        if group_is_live(group, min_age_seconds)
    }
    removed = 0
    for scratch in Path(tempfile.gettempdir()).glob(f"{prefix}-scratch-*"):
        job_id = scratch.name.removeprefix(f"{prefix}-scratch-")
        if job_id.startswith("nocg-") or job_id in live:
            continue
        if time.time() - scratch.stat().st_mtime < min_age_seconds:
            continue
        stale = PrivateTmpfs.adopt(scratch)
        stale.close()
        removed += 1
    return removed + reap_stale_groups(prefix, min_age_seconds)


def _job_started(started_read: int) -> bool:
    """Whether the sandbox reported that set-up finished (a byte waits in the pipe)."""
    os.set_blocking(started_read, False)
    try:
        return os.read(started_read, 1) == b"1"
    except BlockingIOError:
        return False


def _wait(process: subprocess.Popen[bytes], timeout: float) -> int | None:
    """The exit status, or None after `timeout` seconds.

    Waits on a pidfd, which wakes the moment the process ends; `Popen.wait(timeout)` polls with
    sleeps growing to 50 ms, a delay every short job would pay.
    """
    try:
        pidfd = os.pidfd_open(process.pid)
    except (AttributeError, OSError):
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        if not poller.poll(max(0, int(timeout * 1000))):
            return None
    finally:
        os.close(pidfd)
    return process.wait()


def _parent_directories(mount_targets: list[str], workdir: str) -> list[str]:
    """`--perms 0755 --dir` arguments for every ancestor of the mount targets and for the
    working directory, shallowest first (mount points themselves are made by their binds)."""
    needed: set[str] = {workdir.rstrip("/")} if workdir.rstrip("/") else set()
    for target in mount_targets:
        needed.update(str(p) for p in Path(target).parents if str(p) != "/")
    mounted = {t.rstrip("/") for t in mount_targets}
    arguments: list[str] = []
    for directory in sorted(needed - mounted, key=lambda p: (p.count("/"), p)):
        arguments += ["--perms", "0755", "--dir", directory]
    return arguments


def _gpu_device_binds(device: str) -> list[str]:
    """Device nodes for one NVIDIA GPU (by index) and the shared control nodes."""
    if not device.isdigit():
        raise SandboxError(
            f"gpu_device {device!r} is not a GPU index. The bwrap backend expects e.g. '0'."
        )
    nodes = [f"/dev/nvidia{device}", "/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools"]
    if not Path(nodes[0]).exists():
        raise SandboxError(f"GPU {device} requested but {nodes[0]} does not exist on this host.")
    binds: list[str] = []
    for node in nodes:
        if Path(node).exists():
            binds += ["--dev-bind", node, node]
    return binds
