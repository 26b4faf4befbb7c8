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
