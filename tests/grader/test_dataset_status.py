"""`grader.datasets.status`: what the instructor's pages say about each dataset on a host."""

from __future__ import annotations

from pathlib import Path

from grader.datasets import prepare_dataset
from grader.datasets.status import all_dataset_statuses, dataset_status, install_command
from tests.support.dataset_key import TEST_DATASET_KEY

OTHER_KEY = "another-deployment-key-of-at-least-32-characters"


def test_a_missing_download_says_which_command_installs_it(tmp_path: Path) -> None:
    status = dataset_status("cifar10", tmp_path, key=TEST_DATASET_KEY)
    assert not status.installed and status.needs_download
    assert status.install_command == "python manage.py fetch_dataset cifar10"
    assert status.size_bytes == 0 and status.train_examples is None
    assert status.num_classes == 10 and status.class_names[0] == "airplane"
    assert str(tmp_path) in status.problem  # for operators only


def test_an_offline_dataset_is_installed_by_prepare_dataset() -> None:
    assert install_command("digits") == "python manage.py prepare_dataset digits"


def test_a_prepared_dataset_is_installed_with_its_size_and_counts(tmp_path: Path) -> None:
    prepare_dataset("synthetic", tmp_path, key=TEST_DATASET_KEY)
    status = dataset_status("synthetic", tmp_path, key=TEST_DATASET_KEY)
    assert status.installed and status.problem == ""
    # registry.py: 2,048 training images, 10 % of them held out; 512 test images.
    assert (status.train_examples, status.test_examples) == (2048 - 205, 512)
    root = tmp_path / "prepared" / "synthetic"
    splits = [root / name for name in ("train", "train-part", "held-out", "test")]
    assert status.size_bytes == sum(f.stat().st_size for s in splits for f in s.iterdir())


def test_a_copy_prepared_with_another_key_is_not_installed(tmp_path: Path) -> None:
    prepare_dataset("synthetic", tmp_path, key=OTHER_KEY)
    assert not dataset_status("synthetic", tmp_path, key=TEST_DATASET_KEY).installed


def test_every_registered_dataset_is_listed(tmp_path: Path) -> None:
    names = [s.name for s in all_dataset_statuses(tmp_path, key=TEST_DATASET_KEY)]
    assert names == ["cifar10", "digits", "fashion_mnist", "mnist", "synthetic"]
