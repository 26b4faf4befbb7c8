"""Download a registered dataset's upstream files into Keras' cache layout (host side only)."""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path

from grader.datasets.registry import Download, get_source
from grader.errors import DatasetUnavailable

_CHUNK = 1 << 20

#: `progress(done_bytes, total_bytes or None)`, called as a download advances.
Progress = Callable[[int, int | None], None]


class DownloadUnreachable(DatasetUnavailable):
    """The download's server could not be reached at all (no internet access, name not
    resolved, connection refused or timed out before any byte arrived)."""

    error_code = "dataset_unreachable"


def _download(url: str, target: Path, *, timeout: float, progress: Progress | None = None) -> str:
    """Stream `url` into `target` atomically; returns the SHA-256 of what was written.

    Raises:
        DownloadUnreachable: no connection could be opened.
        OSError: the transfer failed after it started.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    try:
        # Only the registry's fixed https URLs reach here (file:// in tests), never user input.
        response = urllib.request.urlopen(url, timeout=timeout)  # noqa: S310
    except OSError as exc:
        raise DownloadUnreachable(f"`{url}` cannot be reached: {exc}") from exc
    handle, partial = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as out, response as resp:
            length = resp.headers.get("Content-Length") if resp.headers else None
            total = int(length) if length and length.isdigit() else None
            done = 0
            for chunk in iter(lambda: resp.read(_CHUNK), b""):
                digest.update(chunk)
                out.write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return digest.hexdigest()


def _extract(archive: Path, destination: Path) -> None:
    # The "data" filter refuses absolute paths, `..`, links out of the tree and device files.
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(destination, filter="data")


def fetch_dataset(
    name: str,
    data_dir: Path | str,
    *,
    timeout: float = 60.0,
    log: Callable[[str], None] = lambda _message: None,
    url_override: Callable[[Download], str] | None = None,
    progress: Progress | None = None,
) -> list[Path]:
    """Download dataset `name`'s files into `data_dir`, checking SHA-256 digests Keras publishes.

    Files already present are kept. Archives are unpacked next to them with tarfile's ``data``
    filter (no absolute paths, no links out of the tree).

    Args:
        name: a registered dataset; offline ones (``synthetic``, ``digits``) need nothing.
        data_dir: the data directory (Keras' ``~/.keras/datasets`` layout).
        timeout: socket timeout per request, in seconds.
        log: receives one line per file.
        url_override: maps a download to another URL (tests serve files from disk).
        progress: receives `(bytes done, total bytes or None)` as each file downloads.

    Returns:
        The paths of the files now present.

    Raises:
        DownloadUnreachable: the server could not be reached (no internet access).
        DatasetUnavailable: unknown name, a failed download, or a digest mismatch.
    """
    source = get_source(name)
    data_dir = Path(data_dir)
    present = []
    for item in source.downloads:
        target = data_dir / item.filename
        if target.is_file():
            log(f"{target} already present")
        else:
            url = url_override(item) if url_override else item.url
            log(f"downloading {url}")
            try:
                digest = _download(url, target, timeout=timeout, progress=progress)
            except OSError as exc:
                raise DatasetUnavailable(f"Downloading `{url}` failed: {exc}") from exc
            if item.sha256 is not None and digest != item.sha256:
                target.unlink()
                raise DatasetUnavailable(
                    f"`{url}` has SHA-256 {digest}. Expected {item.sha256}; the download is "
                    "corrupted or the upstream file changed."
                )
        if item.extract_to is not None:
            destination = data_dir / item.extract_to
            log(f"extracting {target} into {destination}")
            _extract(target, destination)
        present.append(target)
    return present


def remove_prepared(name: str, data_dir: Path | str) -> None:
    """Delete a prepared copy so the next `prepare_dataset` rebuilds it from the raw files."""
    from grader.datasets.prepared import PREPARED_DIRNAME

    shutil.rmtree(Path(data_dir) / PREPARED_DIRNAME / get_source(name).name, ignore_errors=True)
