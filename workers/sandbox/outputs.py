"""Reading what a sandboxed job left in its output directory, without trusting any of it.

The job controls every name in `/job/out`: it can plant a symlink named `result.json` pointing at
`/etc/shadow` or the hidden test split, a FIFO that blocks a reader forever, a hard link, or a
file of many gigabytes. `collect_output` opens each entry relative to its directory's file
descriptor with `O_NOFOLLOW | O_NONBLOCK`, checks the opened file (not the name) is a regular
file with a single link, and reads at most `max_bytes` in all.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from grader.strict_json import loads_strict
from workers.sandbox.output_files import OutputRejected, check_plain_file

__all__ = ["OutputRejected", "collect_output", "parse_untrusted_json", "read_result"]

RESULT_FILE = "result.json"
RESULT_MAX_BYTES = 4 * 1024 * 1024
MAX_FILES = 1000
MAX_DEPTH = 8


def collect_output(out_dir: Path | str, max_bytes: int) -> dict[str, bytes]:
    """Read every regular file under `out_dir`, refusing links, devices and oversize output.

    Args:
        out_dir: The host directory that was mounted at `/job/out`.
        max_bytes: The most bytes to read, all files together.

    Returns:
        Relative POSIX paths (e.g. "result.json", "plots/loss.png") mapped to contents.

    Raises:
        OutputRejected: A symlink, hard link, FIFO, socket or device is present, there are more
            than `MAX_FILES` files or `MAX_DEPTH` levels, or the files pass `max_bytes`.
    """
    files: dict[str, bytes] = {}
    budget = [max_bytes]
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
    try:
        root_fd = os.open(out_dir, flags)
    except OSError as exc:
        raise OutputRejected(
            f"Output directory {out_dir} cannot be opened as a directory: {exc}"
        ) from exc
    try:
        _collect(root_fd, "", files, budget, depth=0)
    finally:
        os.close(root_fd)
    return files


def _collect(
    dir_fd: int, prefix: str, files: dict[str, bytes], budget: list[int], depth: int
) -> None:
    if depth > MAX_DEPTH:
        raise OutputRejected(f"Output nests deeper than {MAX_DEPTH} directories at `{prefix}`.")
    for name in sorted(os.listdir(dir_fd)):
        relative = f"{prefix}{name}"
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISLNK(info.st_mode):
            raise OutputRejected(
                f"Output `{relative}` is a symbolic link. Expected regular files only."
            )
        if stat.S_ISDIR(info.st_mode):
            sub_fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
            try:
                _collect(sub_fd, f"{relative}/", files, budget, depth + 1)
            finally:
                os.close(sub_fd)
            continue
        if not stat.S_ISREG(info.st_mode):
            raise OutputRejected(
                f"Output `{relative}` is not a regular file (mode {stat.filemode(info.st_mode)}). "
                f"Expected regular files only."
            )
        if len(files) >= MAX_FILES:
            raise OutputRejected(f"Output holds more than {MAX_FILES} files. Expected fewer.")
        files[relative] = _read_regular(dir_fd, name, relative, budget)


def _read_regular(dir_fd: int, name: str, relative: str, budget: list[int]) -> bytes:
    # O_NOFOLLOW closes the race where the name is swapped for a link after the stat above;
    # O_NONBLOCK keeps a FIFO swapped in from blocking the open.
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    try:
        info = os.fstat(fd)
        if info.st_size > budget[0]:
            raise OutputRejected(
                f"Output `{relative}` is {info.st_size:,} bytes; only {budget[0]:,} bytes of "
                f"output remain. Expected smaller files."
            )
        # The opened file, not the name: a regular file of its own, not sparse.
        check_plain_file(info, relative, max_bytes=budget[0])
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read(budget[0] + 1)  # the file may have grown since the fstat
        if len(data) > budget[0]:
            raise OutputRejected(f"Output `{relative}` grew past the output limit while read.")
        budget[0] -= len(data)
        return data
    finally:
        os.close(fd)


def parse_untrusted_json(data: bytes | str) -> Any:
    """Parse JSON a sandboxed job wrote (student code may have written it instead of the runner).

    Strict where Python's `json` is lenient or fragile: `NaN`, `Infinity` and numbers too large
    for a float are refused (the runner writes none; the database refuses them), and so are an
    integer past Python's 4,300-digit limit (a plain `ValueError`) and nesting deeper than the
    interpreter's stack (`RecursionError`), which `json.loads` would otherwise raise past any
    `JSONDecodeError` handler.

    Raises:
        OutputRejected: not UTF-8, not JSON, or one of the above; the message says which.
    """
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        return loads_strict(text)
    except RecursionError as exc:
        raise OutputRejected("nested too deeply") from exc
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError included
        raise OutputRejected(str(exc)) from exc


def read_result(out_dir: Path | str, max_bytes: int = RESULT_MAX_BYTES) -> dict[str, Any]:
    """Load `result.json` from a job's output directory through `collect_output`.

    Raises:
        OutputRejected: The output is unsafe (see `collect_output`), `result.json` is missing,
            or it is not a JSON object.
    """
    files = collect_output(out_dir, max_bytes)
    if RESULT_FILE not in files:
        raise OutputRejected(f"The job wrote no `{RESULT_FILE}` in its output directory.")
    try:
        value = parse_untrusted_json(files[RESULT_FILE])
    except OutputRejected as exc:
        raise OutputRejected(f"`{RESULT_FILE}` is not valid UTF-8 JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise OutputRejected(
            f"`{RESULT_FILE}` holds a {type(value).__name__}. Expected a JSON object."
        )
    return value
