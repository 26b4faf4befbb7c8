"""Host-side preparation of a job's directories: ownership of writable mounts, private tmpfs.

The job runs as uid 65534, so its writable directories (`/job/out`, `/job/work`) must belong to
that uid on the host. Ownership is changed without following symbolic links: a previous attempt
may have planted a link to `/etc/shadow` in `/job/work`, and `chown` through it would hand that
file to the sandbox user.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from workers.sandbox.base import SANDBOX_GID, SANDBOX_UID, Mount, SandboxError

logger = logging.getLogger(__name__)


def prepare_writable_mounts(mounts: Iterable[Mount]) -> None:
    """Create every writable mount's source and hand it (and what it holds) to uid 65534.

    Raises:
        SandboxError: A writable source exists but is not a directory, or is a symlink.
    """
    for mount in mounts:
        if mount.read_only:
            continue
        source = Path(mount.source)
        if source.is_symlink():
            raise SandboxError(
                f"Writable mount source {source} is a symlink. Expected a directory."
            )
        source.mkdir(parents=True, exist_ok=True)
        if not source.is_dir():
            raise SandboxError(f"Writable mount source {source} is not a directory.")
        _hand_over(source)


def _hand_over(root: Path) -> None:
    if os.geteuid() != 0:
        # An unprivileged worker cannot chown; world-writable is the only way to share.
        os.chmod(root, 0o777)  # noqa: S103
        return
    os.chown(root, SANDBOX_UID, SANDBOX_GID, follow_symlinks=False)
    os.chmod(root, 0o770)  # noqa: S103 - owner is 65534, group root
    for directory, subdirs, files in os.walk(root):  # never descends into symlinked dirs
        for name in (*subdirs, *files):
            with contextlib.suppress(FileNotFoundError):
                os.chown(
                    os.path.join(directory, name), SANDBOX_UID, SANDBOX_GID, follow_symlinks=False
                )


class PrivateTmpfs:
    """A size-limited `noexec,nosuid,nodev` tmpfs on a fresh host directory, owned by 65534.

    bubblewrap's own `--tmpfs` cannot set `noexec`, so the scratch area is mounted on the host
    (as root) and bound in. `mounted` is False when mounting is not permitted; the caller then
    falls back to bubblewrap's tmpfs.
    """

    def __init__(
        self, size_bytes: int, *, prefix: str = "grader-scratch-", directory: Path | None = None
    ) -> None:
        self.size_bytes = size_bytes
        if directory is None:
            self.path = Path(tempfile.mkdtemp(prefix=prefix))
        else:
            directory.mkdir(mode=0o700)
            self.path = directory
        self.mounted = False
        if os.geteuid() != 0:
            return
        options = (
            f"size={size_bytes},mode=0700,uid={SANDBOX_UID},gid={SANDBOX_GID},noexec,nosuid,nodev"
        )
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "grader-scratch", str(self.path)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode == 0:
            self.mounted = True
        else:
            logger.info(
                "private tmpfs unavailable (%s); using bwrap --tmpfs", result.stderr.strip()
            )

    @classmethod
    def adopt(cls, path: Path) -> PrivateTmpfs:
        """An existing scratch directory (mounted or not), to close one a dead job left."""
        tmpfs = cls.__new__(cls)
        tmpfs.size_bytes = 0
        tmpfs.path = path
        tmpfs.mounted = os.path.ismount(path)
        return tmpfs

    def close(self) -> None:
        """Unmount (lazily, should a process still hold it) and remove the directory."""
        if self.mounted:
            result = subprocess.run(
                ["umount", "--lazy", str(self.path)], capture_output=True, text=True, check=False
            )
            if result.returncode != 0:
                logger.error("could not unmount %s: %s", self.path, result.stderr.strip())
                return
            self.mounted = False
        with contextlib.suppress(OSError):
            self.path.rmdir()

    def __enter__(self) -> PrivateTmpfs:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# Entries (files, directories, links) a job may leave in its writable mounts: each costs an
# inode and a watchdog measurement, so millions of empty files are an attack of their own.
MAX_WRITABLE_ENTRIES = 20_000


def disk_usage(directories: Sequence[Path | str]) -> int:
    """Bytes of disk the files under `directories` occupy (allocated blocks, links not followed).

    Allocated blocks, not apparent sizes: a sparse file of a terabyte costs nothing. A missing
    directory holds nothing.
    """
    folders = []
    try:
        for directory in directories:
            with contextlib.suppress(FileNotFoundError):
                folders.append(os.open(directory, os.O_RDONLY | os.O_DIRECTORY))
        return _measure(folders, stop_after=None)[0]
    finally:
        for folder in folders:
            os.close(folder)


def _measure(folders: Sequence[int], stop_after: int | None) -> tuple[int, int]:
    """(bytes, entries) under the directories held open as `folders` (file descriptors);
    stops counting after `stop_after` entries. Held open, a folder renamed on the host while
    its job runs (a claimed warm sandbox's, `workers.pipeline.warm_train`) is still the one
    measured."""
    total = entries = 0
    for folder in folders:
        walk = os.fwalk(".", dir_fd=folder)  # never follows symbolic links
        for _directory, subdirs, files, directory_fd in walk:
            entries += len(subdirs) + len(files)
            if stop_after is not None and entries > stop_after:
                walk.close()
                return total, entries
            for name in files:
                with contextlib.suppress(OSError):
                    info = os.stat(name, dir_fd=directory_fd, follow_symlinks=False)
                    if stat.S_ISREG(info.st_mode):
                        total += info.st_blocks * 512
    return total, entries


class DiskWatch:
    """Measures a job's writable host directories while it runs; fires `on_exceeded` past `limit`.

    Bind mounts of host directories have no size limit of their own (unlike the tmpfs
    scratch), so without this a job could fill the worker's disk.
    """

    def __init__(
        self,
        directories: Sequence[Path | str],
        limit: int,
        on_exceeded: Callable[[], None],
        interval: float = 0.25,
        max_entries: int = MAX_WRITABLE_ENTRIES,
    ) -> None:
        self.directories = list(directories)
        # Held open from the start: the directories the job was given, wherever they move.
        self._folders = [os.open(d, os.O_RDONLY | os.O_DIRECTORY) for d in self.directories]
        self.limit = limit
        self.max_entries = max_entries
        self.on_exceeded = on_exceeded
        self.interval = interval
        self.exceeded = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="sandbox-disk-watch", daemon=True)

    def start(self) -> DiskWatch:
        """Begin watching (no thread when there is nothing writable)."""
        if self.directories:
            self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            if self.check():
                return

    def check(self) -> bool:
        """Measure now; on the first excess, record it and fire `on_exceeded`."""
        if self.exceeded:
            return True
        if self._over():
            self.exceeded = True
            self.on_exceeded()
        return self.exceeded

    def _over(self) -> bool:
        size, entries = _measure(self._folders, stop_after=self.max_entries)
        return size > self.limit or entries > self.max_entries

    def stop(self) -> bool:
        """Stop watching, measure a last time, and say whether the limit was passed."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)
        if self.directories and not self.exceeded and self._over():
            self.exceeded = True
        for folder in self._folders:
            os.close(folder)
        self._folders = []
        return self.exceeded
