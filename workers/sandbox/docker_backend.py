"""The Docker backend: one hardened, throw-away container per job.

Every container gets `network_mode="none"`, a read-only root, `cap_drop=["ALL"]`,
`no-new-privileges`, user 65534:65534, `mem_limit == memswap_limit` (no swap), `pids_limit`,
`nano_cpus`, rlimits for file size, CPU time and core dumps, a `noexec` size-limited tmpfs at
`/scratch`, a sized `/dev/shm`, an init process (reaps zombies of fork bombs; the job's exit
status passes through), and no log driver: output travels only through the attach stream,
read up to `Limits.output_bytes`, so a job printing without end cannot fill the host's disk.

The container is removed in a `finally`, whatever happened; a cancelled job (`run(job,
cancel=event)`) is killed at once and removed the same way. A container outlives a worker
killed outright (the engine owns it): a job with a `name` first removes any container left
running under that name, so a resumed stage never trains beside a killed worker's leftover.
Out-of-memory verdicts come from the engine's `State.OOMKilled`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from typing import Any

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
from workers.sandbox.environment import check_job_mounts
from workers.sandbox.hostdirs import DiskWatch, prepare_writable_mounts
from workers.sandbox.images import ensure_local_image, missing_image_message

logger = logging.getLogger(__name__)

LABEL = "grader.sandbox"
DEADLINE_LABEL = "grader.sandbox.deadline"
JOB_LABEL = "grader.sandbox.job"
# Past its wall-clock limit, how long a container may still exist while its worker reads the
# result and removes it; after that it is an orphan of a dead worker.
REAP_GRACE_SECONDS = 120
#: `GRADER_SANDBOX_IMAGE` values that mean "the empty local image, with this host's Python
#: mounted" (development and CI, where the production image cannot be built).
LOCAL_IMAGE_NAMES = {"", "local"}


class DockerSandbox:
    """Runs jobs in Docker containers.

    Args:
        image: The sandbox image; default: the empty local image (`images.ensure_local_image`),
            to which the environment's mounts bring the interpreter and libraries.
        client: A `docker.DockerClient`; default: `docker.from_env(version="auto")`, which
            negotiates the API version with whatever engine answers.
        runtime: A container runtime name, e.g. "nvidia" on hosts set up that way.
        labels: Extra labels on every container (to find them, e.g. in tests).
    """

    name = "docker"

    @classmethod
    def from_settings(cls, settings: Any) -> DockerSandbox:
        """The backend for `GRADER_SANDBOX_IMAGE`: the production image it names, or the empty
        local image with this host's Python mounted when it is empty or `local`."""
        image = str(getattr(settings, "GRADER_SANDBOX_IMAGE", "") or "").strip()
        return cls(image=None if image in LOCAL_IMAGE_NAMES else image)

    def __init__(
        self,
        *,
        image: str | None = None,
        client: Any = None,
        runtime: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> None:
        import docker
        import docker.errors

        try:
            self.client = client or docker.from_env(version="auto", timeout=60)
            self.client.ping()
        except docker.errors.DockerException as exc:
            raise SandboxError(
                f"The Docker engine does not answer ({exc}). Run scripts/ensure-docker.sh."
            ) from exc
        self.image = image or ensure_local_image(self.client)
        self.runtime = runtime
        self.labels = {LABEL: "1", **(labels or {})}
        try:
            reap_expired_containers(self.client)
        except docker.errors.DockerException:
            logger.exception("could not reap expired sandbox containers")

    def run(
        self,
        job: SandboxJob,
        on_line: LineCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> SandboxResult:
        """Run `job` in a fresh container and report how it ended; the container is removed.

        Setting `cancel` kills the container; `run` returns (reason "cancelled") once it is
        removed.
        """
        import docker.errors
        import requests.exceptions

        if cancel is not None and cancel.is_set():
            return cancelled_result()
        container = None
        stream = None
        watch: DiskWatch | None = None
        cancel_watch: CancelWatch | None = None
        try:
            check_job_mounts(job.mounts)
            prepare_writable_mounts(job.mounts)
            if job.name is not None:
                self._remove_earlier(job.name)
            container = self.client.containers.create(**self._create_arguments(job))

            def kill() -> None:
                with contextlib.suppress(docker.errors.APIError):
                    container.kill()

            def kill_in_background() -> None:
                # Called by the output reader: the engine's kill returns once the container
                # has stopped, which waits for its output to be read, by that same reader.
                threading.Thread(target=kill, name="sandbox-docker-kill", daemon=True).start()

            capture = OutputCapture(
                job.limits.output_bytes, on_line=on_line, on_overflow=kill_in_background
            )
            # Attach before start so not a byte is missed: there is no log to replay.
            stream = self.client.api.attach(
                container.id, stdout=True, stderr=True, stream=True, demux=True
            )
            reader = threading.Thread(
                target=_pump, args=(stream, capture), name="sandbox-docker-output", daemon=True
            )
            reader.start()
            started = time.monotonic()
            container.start()
            watch = DiskWatch(
                [m.source for m in job.mounts if not m.read_only], job.limits.writable_bytes, kill
            ).start()
            cancel_watch = CancelWatch(cancel, kill).start()
            timed_out = False
            try:
                status = container.wait(timeout=job.limits.wall_seconds)
            except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
                if time.monotonic() - started < job.limits.wall_seconds - 1.0:
                    raise  # the engine went away before the deadline: not the job's doing
                timed_out = not capture.truncated and not watch.exceeded
                kill()
                status = container.wait(timeout=30)
            duration = time.monotonic() - started
            cancelled = cancel_watch.stop()
            disk_exceeded = watch.stop()
            reader.join(timeout=5.0)
            stdout, stderr = capture.finish()

            container.reload()
            state = container.attrs.get("State", {})
            exit_code = int(status.get("StatusCode", state.get("ExitCode", -1)))
            oom = bool(state.get("OOMKilled"))
            sig = signal_from_exit_code(exit_code)
            reason, detail = classify_reason(
                exit_code=exit_code,
                signal=sig,
                timed_out=timed_out,
                oom_killed=oom,
                output_truncated=capture.truncated,
                limits=job.limits,
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
        except docker.errors.ImageNotFound:
            # Raised by `containers.create` before anything ran: say which image and the fix.
            return infrastructure_result(missing_image_message(self.image))
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            if cancel_watch is not None and cancel_watch.stop():
                return cancelled_result()  # the engine's answers to a killed job do not matter
            logger.exception("docker sandbox failed")
            return infrastructure_result(f"The Docker engine failed to run the job: {exc}")
        except (SandboxError, OSError) as exc:
            return infrastructure_result(f"The sandbox could not be prepared: {exc}")
        finally:
            if cancel_watch is not None:
                cancel_watch.stop()
            if watch is not None:
                watch.stop()
            if stream is not None:
                with contextlib.suppress(Exception):
                    stream.close()
            if container is not None:
                self._remove(container)

    def _remove_earlier(self, name: str) -> None:
        """Remove containers an earlier attempt of the job `name` left (its worker was killed).

        `remove(force=True)` returns once the container's processes are dead, so nothing of
        the earlier attempt writes into the job's folders after this.
        """
        label = f"{JOB_LABEL}={job_label(name)}"
        for container in self.client.containers.list(all=True, filters={"label": label}):
            logger.warning(
                "removing container %s of an earlier attempt of job %s", container.id[:12], name
            )
            self._remove(container)

    def _remove(self, container: Any) -> None:
        import docker.errors

        for attempt in range(5):
            try:
                container.remove(force=True)
                return
            except docker.errors.NotFound:
                return
            except docker.errors.APIError as exc:
                # "removal already in progress" and transient engine errors settle quickly.
                logger.warning(
                    "removing container %s (try %d): %s", container.id[:12], attempt, exc
                )
                time.sleep(0.2 * (attempt + 1))
        logger.error("container %s could not be removed", container.id[:12])

    def _create_arguments(self, job: SandboxJob) -> dict[str, Any]:
        from docker.types import DeviceRequest, LogConfig, Mount, Ulimit

        limits = job.limits
        ulimits = [
            Ulimit(name="fsize", soft=limits.file_size_bytes, hard=limits.file_size_bytes),
            Ulimit(name="core", soft=0, hard=0),
        ]
        if limits.cpu_seconds is not None:
            ulimits.append(Ulimit(name="cpu", soft=limits.cpu_seconds, hard=limits.cpu_seconds + 1))
        # Typed bind mounts, not `volumes`: for a missing source the engine fails instead of
        # creating an empty root-owned directory on the host.
        mounts = []
        for mount in job.mounts:
            source = str(mount.source)
            if not os.path.exists(source):
                raise SandboxError(f"Mount source {source} does not exist.")
            mounts.append(
                Mount(target=mount.target, source=source, type="bind", read_only=mount.read_only)
            )
        arguments: dict[str, Any] = {
            "image": self.image,
            "command": list(job.argv),
            "user": f"{SANDBOX_UID}:{SANDBOX_GID}",
            "working_dir": job.workdir,
            "environment": job.full_env(),
            "hostname": "sandbox",
            "network_mode": "none",
            "read_only": True,
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
            "mem_limit": limits.memory_bytes,
            "memswap_limit": limits.memory_bytes,
            "pids_limit": limits.pids,
            "ulimits": ulimits,
            "tmpfs": {
                SCRATCH_DIR: f"rw,noexec,nosuid,nodev,size={limits.scratch_bytes},mode=1777",
                # Empty and read-only over each hidden folder; the engine mounts parents first.
                **{path: "ro,noexec,nosuid,nodev,size=4k,mode=0555" for path in job.hidden},
            },
            "shm_size": limits.shm_bytes,
            "ipc_mode": "private",
            "mounts": mounts,
            "init": True,
            "log_config": LogConfig(type=LogConfig.types.NONE),
            "labels": {
                **self.labels,
                DEADLINE_LABEL: str(int(time.time() + limits.wall_seconds + REAP_GRACE_SECONDS)),
                **({JOB_LABEL: job_label(job.name)} if job.name is not None else {}),
            },
            "detach": True,
            "stdin_open": False,
            "tty": False,
        }
        if limits.cpus is not None:
            arguments["nano_cpus"] = int(limits.cpus * 1e9)
        if job.gpu_device is not None:
            arguments["device_requests"] = [
                DeviceRequest(device_ids=[job.gpu_device], capabilities=[["gpu"]])
            ]
            arguments["environment"].setdefault("NVIDIA_VISIBLE_DEVICES", job.gpu_device)
        if self.runtime is not None:
            arguments["runtime"] = self.runtime
        return arguments


def job_label(name: str) -> str:
    """The label value of job `name`: a digest, so any name is a valid label filter value."""
    return hashlib.sha256(name.encode()).hexdigest()[:32]


def _pump(stream: Any, capture: OutputCapture) -> None:
    """Copy the demultiplexed attach stream into `capture` until EOF.

    Past the budget the stream is still drained (and dropped) until the killed container ends:
    the engine does not report a container stopped while it cannot write its output to us.
    """
    try:
        for stdout, stderr in stream:
            if stdout:
                capture.feed("stdout", stdout)
            if stderr:
                capture.feed("stderr", stderr)
    except Exception:
        logger.debug("attach stream ended", exc_info=True)


def reap_expired_containers(
    client: Any, now: float | None = None, label_filter: str = LABEL
) -> int:
    """Remove sandbox containers past their deadline: orphans of a worker that died mid-job.

    A worker removes its containers in a `finally`; a worker killed outright cannot, and its
    container would run on (a `sleep` forever). Each container carries its deadline (start +
    wall limit + `REAP_GRACE_SECONDS`) as a label; every new `DockerSandbox` removes those past it.

    Containers without a deadline label are left alone.

    Args:
        client: A `docker.DockerClient`.
        now: The time to compare deadlines with (default: now).
        label_filter: Which containers to consider (Docker label filter syntax).

    Returns:
        How many containers were removed.
    """
    import docker.errors

    now = time.time() if now is None else now
    removed = 0
    for container in client.containers.list(all=True, filters={"label": label_filter}):
        if LABEL not in container.labels:
            continue
        deadline = container.labels.get(DEADLINE_LABEL, "")
        if not deadline.isdigit() or int(deadline) > now:
            continue
        try:
            container.remove(force=True)
            removed += 1
            logger.warning("removed orphaned sandbox container %s", container.id[:12])
        except docker.errors.NotFound:
            continue
    return removed
