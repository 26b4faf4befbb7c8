"""The dataset management commands, through Django's call_command."""

from __future__ import annotations

import hashlib
import json
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from grader.datasets import load_split


def test_prepare_dataset_prints_the_split_directories(tmp_path: Path) -> None:
    out = StringIO()
    call_command("prepare_dataset", "synthetic", "--data-dir", str(tmp_path), "--json", stdout=out)
    summary = json.loads(out.getvalue())
    assert summary["num_classes"] == 4 and summary["input_shape"] == [16, 16, 3]
    x, _ = load_split(Path(summary["test_dir"]))
    assert x.shape == (512, 16, 16, 3)


def test_prepare_dataset_without_raw_files_says_how_to_fetch(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="fetch_dataset mnist") as info:
        call_command("prepare_dataset", "mnist", "--data-dir", str(tmp_path))
    assert info.value.returncode == 2


def test_fetch_dataset_of_an_offline_dataset_only_prepares(tmp_path: Path) -> None:
    out = StringIO()
    call_command("fetch_dataset", "digits", "--data-dir", str(tmp_path), stdout=out)
    assert "digits: train" in out.getvalue()
    x, y = load_split(tmp_path / "prepared" / "digits" / "train")
    assert x.shape[1:] == (8, 8, 1) and set(np.unique(y)) == set(range(10))


def test_fetch_dataset_keeps_files_already_present(tmp_path: Path) -> None:
    # An mnist.npz copied in by hand is used as is: no network, no digest check against it.
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "mnist.npz",
        x_train=rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
        y_train=np.arange(6, dtype=np.uint8),
        x_test=rng.integers(0, 256, (2, 28, 28), dtype=np.uint8),
        y_test=np.arange(2, dtype=np.uint8),
    )
    before = hashlib.sha256((tmp_path / "mnist.npz").read_bytes()).hexdigest()
    out = StringIO()
    call_command("fetch_dataset", "mnist", "--data-dir", str(tmp_path), stdout=out)
    assert "already present" in out.getvalue()
    assert hashlib.sha256((tmp_path / "mnist.npz").read_bytes()).hexdigest() == before
    assert load_split(tmp_path / "prepared" / "mnist" / "train")[0].shape == (6, 28, 28, 1)


def _cifar_at(monkeypatch: pytest.MonkeyPatch, url: str, sha256: str | None = None) -> None:
    """Point the registry's CIFAR-10 download at `url` (loopback or file://)."""
    import dataclasses

    from grader.datasets import DATASETS

    source = DATASETS["cifar10"]
    item = dataclasses.replace(source.downloads[0], url=url, sha256=sha256)
    monkeypatch.setitem(DATASETS, "cifar10", dataclasses.replace(source, downloads=(item,)))


def _unused_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_fetch_dataset_if_online_says_so_in_one_line_when_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nothing listens there: the connection is refused, as on a machine without internet.
    _cifar_at(monkeypatch, f"http://127.0.0.1:{_unused_port()}/cifar-10-python.tar.gz")
    out = StringIO()
    call_command("fetch_dataset", "cifar10", "--data-dir", str(tmp_path), "--if-online", stdout=out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("cifar10: not downloaded, this machine has no internet access")
    assert "fetch_dataset cifar10" in lines[0]
    assert not (tmp_path / "prepared").exists()


def test_fetch_dataset_without_if_online_fails_when_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _cifar_at(monkeypatch, f"http://127.0.0.1:{_unused_port()}/cifar-10-python.tar.gz")
    with pytest.raises(CommandError, match="cannot be reached") as info:
        call_command("fetch_dataset", "cifar10", "--data-dir", str(tmp_path))
    assert info.value.returncode == 2


def test_fetch_dataset_downloads_once_with_a_progress_bar(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io
    import tarfile

    from tests.grader.test_datasets import _write_cifar

    upstream = tmp_path / "upstream"
    _write_cifar(upstream / "cifar-10-batches-py")
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        tar.add(upstream / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    (upstream / "cifar.tar.gz").write_bytes(archive.getvalue())
    digest = hashlib.sha256(archive.getvalue()).hexdigest()
    _cifar_at(monkeypatch, (upstream / "cifar.tar.gz").as_uri(), sha256=digest)
    data = tmp_path / "data"

    call_command("fetch_dataset", "cifar10", "--data-dir", str(data), stdout=StringIO())

    bar = capsys.readouterr().err  # not a terminal: one line per tenth, the last one full
    assert bar.splitlines()[-1].startswith("cifar10: [" + "#" * 30 + "] 100.0%")
    assert load_split(data / "prepared" / "cifar10" / "test")[0].shape[1:] == (32, 32, 3)
    # Once installed, a second run downloads nothing, even with the upstream file gone.
    (upstream / "cifar.tar.gz").unlink()
    (data / "cifar-10-python.tar.gz").unlink()
    out = StringIO()
    call_command("fetch_dataset", "cifar10", "--data-dir", str(data), stdout=out)
    assert "already installed" in out.getvalue()
    assert capsys.readouterr().err == ""


def test_progress_bar_redraws_in_place_on_a_terminal() -> None:
    from workers.management.commands.fetch_dataset import ProgressBar

    class Terminal(StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    bar = ProgressBar(screen, "cifar10:")
    bar(1 << 20, 4 << 20)
    bar(4 << 20, 4 << 20)
    frames = screen.getvalue().split("\r")[1:]
    assert frames[0].startswith("cifar10: [" + "#" * 8 + "-" * 22 + "]  25.0% 1.0 of 4.0 MiB")
    assert frames[1] == "cifar10: [" + "#" * 30 + "] 100.0% 4.0 of 4.0 MiB\n"
