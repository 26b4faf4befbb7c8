"""Files a sandboxed job left in its writable folders, checked before the host copies them.

The trained weights stay in the train job's `/job/work`, and the host copies them into the
evaluation's inputs. Student code (a custom `train()`, which can also write `result.json` itself
and exit) controls that folder, so the weights file may be anything:

- a sparse file: 1000 MiB long with nothing stored costs no disk in the sandbox (the disk watch
  counts allocated blocks), but a plain copy writes all of it to the host's disk;
- a symbolic link named like the weights: a copy that follows it hands a host file to the next
  job; a FIFO blocks whoever opens it for reading; a hard link aliases another file;
- one of 100,000 files, each of which costs the host a step of every walk of the folder.

`open_output_file` opens a file by name relative to its directory with `O_NOFOLLOW | O_NONBLOCK`
and checks the opened file, never the name: a regular file with one link, its apparent size
within the caller's limit, and its allocated blocks consistent with that size (Keras writes
weights in full, never sparse). `copy_output_file` copies through that descriptor, at most the
limit. `check_output_tree` bounds the entries and depth of a folder. Refusals raise
`OutputRejected` (`OutputTooLarge` for sizes and counts): the submission's failure, never an
infrastructure retry.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from workers.sandbox.base import MiB

#: The largest trained-weights file the host copies: the largest `.keras` a student may upload
#: (`grader.loading.MAX_ARCHIVE_BYTES`); a course model's weights are a few megabytes.
WEIGHTS_MAX_BYTES = 512 * MiB
#: Entries and depth of a training's work folder: the trainer keeps one checkpoint and its
#: state (a handful of files); a custom training may add its own, not thousands.
WORK_MAX_ENTRIES = 1_000
WORK_MAX_DEPTH = 8
#: A file is sparse when fewer than half its bytes are stored and the gap passes this. Block
#: rounding and small files kept inline never come near it.
SPARSE_SLACK_BYTES = 1 * MiB

_CHUNK_BYTES = 1 * MiB


class OutputRejected(Exception):
    """A job left something in its folders that the host refuses to read."""


class OutputTooLarge(OutputRejected):
    """A job's output passes a size or count limit (a verdict of `output_limit`)."""


def _shown(name: str) -> str:
    """A name as messages show it: bytes that are not UTF-8 (kept by Python as lone surrogates,
    which the database refuses to store) written as escapes."""
    return name.encode("utf-8", "backslashreplace").decode("utf-8")


def _kind(mode: int) -> str:
    """What a file of `mode` is, for a message: `a FIFO (named pipe)`."""
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return name
    return f"a file of mode {stat.filemode(mode)}"


def check_plain_file(info: os.stat_result, name: str, *, max_bytes: int) -> None:
    """Refuse what `info` (of an opened file) shows is no plain file within `max_bytes`.

    Raises:
        OutputTooLarge: the apparent size passes `max_bytes`.
        OutputRejected: not a regular file, more than one link, or sparse.
    """
    name = _shown(name)
    if not stat.S_ISREG(info.st_mode):
        raise OutputRejected(
            f"`{name}` is {_kind(info.st_mode)}, not a regular file. Expected a regular file."
        )
    if info.st_nlink != 1:
        raise OutputRejected(
            f"`{name}` has {info.st_nlink} hard links. Expected a file of its own."
        )
    if info.st_size > max_bytes:
        raise OutputTooLarge(
            f"`{name}` is {info.st_size:,} bytes. Expected at most {max_bytes:,} bytes."
        )
    stored = info.st_blocks * 512
    if info.st_size - stored > SPARSE_SLACK_BYTES and stored * 2 < info.st_size:
        raise OutputRejected(
            f"`{name}` is a sparse file: {info.st_size:,} bytes long with only {stored:,} bytes "
            "stored. Expected a file written in full."
        )


@contextlib.contextmanager
def open_output_file(directory: Path, name: str, *, max_bytes: int) -> Iterator[BinaryIO]:
    """Open `directory/name` for reading, without following links or blocking, once checked.

    Args:
        directory: a folder the host created (a job's `work` folder).
        name: a single path component inside it.
        max_bytes: the largest apparent size accepted.

    Raises:
        FileNotFoundError: there is no such entry.
        OutputTooLarge, OutputRejected: see `check_plain_file`; also a symbolic link, or an
            entry that cannot be opened (a socket).
    """
    if not name or "/" in name or name in {".", ".."}:
        raise OutputRejected(f"`{name}` is not a file name. Expected one inside the folder.")
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        try:
            fd = os.open(
                name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd
            )
        except FileNotFoundError:
            raise
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise OutputRejected(
                    f"`{name}` is a symbolic link. Expected a regular file."
                ) from None
            raise OutputRejected(f"`{name}` cannot be opened ({exc.strerror}).") from None
    finally:
        os.close(dir_fd)
    try:
        check_plain_file(os.fstat(fd), name, max_bytes=max_bytes)
        # Reads block again: the file is regular, and a later swap of the name cannot reach it.
        os.set_blocking(fd, True)
        handle = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with handle:
        yield handle


def check_output_file(directory: Path, name: str, *, max_bytes: int) -> None:
    """Check `directory/name` as `open_output_file` does, without reading it."""
    with open_output_file(directory, name, max_bytes=max_bytes):
        pass


def copy_output_file(source: Path, destination: Path, *, max_bytes: int) -> int:
    """Copy a job's file to `destination` through a checked descriptor; at most `max_bytes`.

    Returns:
        The bytes copied.

    Raises:
        FileNotFoundError, OutputTooLarge, OutputRejected: as `open_output_file`; also a file
            that grows past `max_bytes` while copied. No partial copy is left behind.
    """
    source = Path(source)
    copied = 0
    try:
        with (
            open_output_file(source.parent, source.name, max_bytes=max_bytes) as handle,
            open(destination, "wb") as out,
        ):
            while chunk := handle.read(_CHUNK_BYTES):
                copied += len(chunk)
                if copied > max_bytes:
                    raise OutputTooLarge(
                        f"`{source.name}` grew past {max_bytes:,} bytes while it was copied."
                    )
                out.write(chunk)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(destination)
        raise
    return copied


def check_output_tree(root: Path, *, max_entries: int, max_depth: int) -> None:
    """Refuse a folder holding more than `max_entries` entries or nesting past `max_depth`.

    Symbolic links are counted, never followed; counting stops at the first entry too many.

    Raises:
        OutputTooLarge: naming the limit passed.
    """
    entries = 0
    pending: list[tuple[str, int]] = [(os.fspath(root), 0)]
    while pending:
        directory, depth = pending.pop()
        with os.scandir(directory) as listing:
            for entry in listing:
                entries += 1
                if entries > max_entries:
                    raise OutputTooLarge(
                        f"the folder holds more than {max_entries:,} files and folders. "
                        f"Expected at most {max_entries:,}."
                    )
                if entry.is_dir(follow_symlinks=False):
                    if depth + 1 > max_depth:
                        raise OutputTooLarge(
                            f"the folder nests deeper than {max_depth:,} levels at "
                            f"`{_shown(os.path.relpath(entry.path, root))}`. Expected at most "
                            f"{max_depth:,}."
                        )
                    pending.append((entry.path, depth + 1))
