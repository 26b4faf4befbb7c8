"""The disk watch measures the directories a job was given, wherever they move on the host.

A claimed warm train sandbox's folder is renamed to its grading's train folder while the job
runs (`workers.pipeline.warm_train`): the watch must keep measuring it (it holds the
directories open), or a job could fill the disk past `Limits.writable_bytes` unseen.
"""

from __future__ import annotations

import os
import threading

from workers.sandbox.hostdirs import DiskWatch

MiB = 1024 * 1024


def _write(path, size: int) -> None:
    with open(path, "wb") as handle:
        handle.write(os.urandom(size))


def test_a_directory_renamed_after_the_start_is_still_measured(tmp_path) -> None:
    given = tmp_path / "warm" / "work"
    given.mkdir(parents=True)
    fired = threading.Event()
    watch = DiskWatch([given], limit=2 * MiB, on_exceeded=fired.set, interval=3600)

    moved = tmp_path / "graded" / "work"
    moved.parent.mkdir()
    os.replace(given, moved)
    (moved / "sub").mkdir()
    _write(moved / "sub" / "big.bin", 3 * MiB)

    assert watch.check() and fired.is_set()
    assert watch.stop()


def test_under_the_limit_and_links_not_followed(tmp_path) -> None:
    given = tmp_path / "work"
    given.mkdir()
    outside = tmp_path / "outside.bin"
    _write(outside, 3 * MiB)
    (given / "link").symlink_to(outside)
    (given / "dir-link").symlink_to(tmp_path)
    _write(given / "small.bin", MiB // 2)
    watch = DiskWatch([given], limit=2 * MiB, on_exceeded=lambda: None, interval=3600)

    assert not watch.check()
    assert not watch.stop()
    assert not watch.stop()  # stopping twice is harmless (the folders are closed once)
