"""`workers.sandbox.output_files`: a file a job left is checked through the descriptor the host
then reads, so links, FIFOs, sparse and oversized files are refused before any byte is copied."""

from __future__ import annotations

import os
import socket

import pytest

from workers.sandbox.hostdirs import disk_usage
from workers.sandbox.output_files import (
    SPARSE_SLACK_BYTES,
    OutputRejected,
    OutputTooLarge,
    check_output_file,
    check_output_tree,
    copy_output_file,
)

MiB = 1024 * 1024


def sparse(path, size: int) -> None:
    with open(path, "wb") as handle:
        handle.truncate(size)


def test_copies_a_plain_file_exactly(tmp_path):
    data = os.urandom(3 * MiB + 17)
    (tmp_path / "weights.h5").write_bytes(data)

    assert copy_output_file(tmp_path / "weights.h5", tmp_path / "copy.h5", max_bytes=4 * MiB) == (
        len(data)
    )
    assert (tmp_path / "copy.h5").read_bytes() == data


def test_a_sparse_file_is_refused_and_never_expanded_on_the_host(tmp_path):
    source = tmp_path / "weights.h5"
    sparse(source, 300 * MiB)
    before = disk_usage([tmp_path])

    with pytest.raises(OutputRejected) as info:
        copy_output_file(source, tmp_path / "copy.h5", max_bytes=512 * MiB)

    assert not isinstance(info.value, OutputTooLarge)
    assert str(info.value) == (
        f"`weights.h5` is a sparse file: {300 * MiB:,} bytes long with only 0 bytes stored. "
        "Expected a file written in full."
    )
    assert not (tmp_path / "copy.h5").exists()
    assert disk_usage([tmp_path]) - before < MiB


def test_a_file_with_a_small_hole_is_not_called_sparse(tmp_path):
    # Block rounding and small holes are ordinary; only a large unstored part is refused.
    path = tmp_path / "weights.h5"
    with open(path, "wb") as handle:
        handle.write(b"x" * (2 * MiB))
        handle.truncate(2 * MiB + SPARSE_SLACK_BYTES // 2)
    check_output_file(tmp_path, "weights.h5", max_bytes=8 * MiB)


def test_an_apparent_size_past_the_limit_is_refused_before_reading(tmp_path):
    sparse(tmp_path / "weights.h5", 1000 * MiB)

    with pytest.raises(OutputTooLarge) as info:
        check_output_file(tmp_path, "weights.h5", max_bytes=512 * MiB)

    assert str(info.value) == (
        f"`weights.h5` is {1000 * MiB:,} bytes. Expected at most {512 * MiB:,} bytes."
    )


def test_a_symbolic_link_is_refused_and_its_target_never_copied(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("canary")
    work = tmp_path / "work"
    work.mkdir()
    (work / "weights.h5").symlink_to(secret)

    with pytest.raises(OutputRejected, match=r"^`weights\.h5` is a symbolic link\."):
        copy_output_file(work / "weights.h5", tmp_path / "copy.h5", max_bytes=MiB)
    assert not (tmp_path / "copy.h5").exists()


def test_a_fifo_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "weights.h5")  # no writer: a plain open for reading would hang

    with pytest.raises(OutputRejected, match=r"is a FIFO \(named pipe\), not a regular file"):
        copy_output_file(tmp_path / "weights.h5", tmp_path / "copy.h5", max_bytes=MiB)


def test_a_directory_a_hard_link_and_a_socket_are_refused(tmp_path):
    (tmp_path / "dir.h5").mkdir()
    (tmp_path / "outside").write_bytes(b"x")
    os.link(tmp_path / "outside", tmp_path / "linked.h5")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tmp_path / "sock.h5"))
    try:
        for name, words in [
            ("dir.h5", "is a directory, not a regular file"),
            ("linked.h5", "has 2 hard links"),
            ("sock.h5", "cannot be opened"),
        ]:
            with pytest.raises(OutputRejected, match=words):
                check_output_file(tmp_path, name, max_bytes=MiB)
    finally:
        server.close()


def test_a_missing_file_is_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        check_output_file(tmp_path, "weights.h5", max_bytes=MiB)


@pytest.mark.parametrize("name", ["", ".", "..", "a/b"])
def test_only_a_plain_name_inside_the_folder_is_opened(tmp_path, name):
    with pytest.raises(OutputRejected, match="is not a file name"):
        check_output_file(tmp_path, name, max_bytes=MiB)


def test_a_folder_with_too_many_entries_is_refused(tmp_path):
    many = tmp_path / "many"
    many.mkdir()
    for index in range(30):
        (many / f"f{index}").touch()

    check_output_tree(tmp_path, max_entries=31, max_depth=8)
    with pytest.raises(OutputTooLarge, match="holds more than 30 files and folders"):
        check_output_tree(tmp_path, max_entries=30, max_depth=8)


def test_a_folder_nesting_too_deep_is_refused_and_links_are_not_followed(tmp_path):
    deep = tmp_path.joinpath(*["d"] * 4)
    deep.mkdir(parents=True)
    (tmp_path / "loop").symlink_to(tmp_path)  # followed, it would never end

    check_output_tree(tmp_path, max_entries=100, max_depth=4)
    with pytest.raises(OutputTooLarge, match="nests deeper than 3 levels at `d/d/d/d`"):
        check_output_tree(tmp_path, max_entries=100, max_depth=3)


def test_a_name_that_is_not_utf8_is_shown_escaped(tmp_path):
    os.mkfifo(os.path.join(os.fsencode(tmp_path), b"w\xff.h5"))
    name = os.fsdecode(b"w\xff.h5")

    with pytest.raises(OutputRejected) as info:
        check_output_file(tmp_path, name, max_bytes=MiB)

    assert str(info.value).startswith("`w\\udcff.h5` is a FIFO")
    str(info.value).encode("utf-8")  # storable: no lone surrogate left
