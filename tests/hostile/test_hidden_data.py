"""Hidden data stays hidden: student code cannot rebuild the held-out or the test examples.

Attack: the grader's own code (`grader`, the runner) and its virtual environment are mounted
read-only into every sandbox, student code included. Before the dataset key, that code could
regenerate the `synthetic` dataset (a seed in `registry.py`), cut the held-out validation part
(`split_indices(n, 0.1, 0)`) and split `digits` (another seed), and scikit-learn's package
bundles all 1,797 labelled digits: a `build_model` could train on the test split and ship the
weights in its config's initializers, a custom `train()` could train on the examples it is
measured on.

The thief below does everything it can find, in the real pipeline stages that run student code
(`run_build`, and `run_train` with custom training) inside real sandboxes: it imports
`grader.datasets` and prepares every dataset with and without guessed keys, cuts every split
it gets with the public seeds, regenerates `make_synthetic` with the seeds in the code, calls
`sklearn.datasets.load_digits`, looks for dataset files on every mounted path and next to the
host folders `/proc/self/mountinfo` names, and reads its environment and every process's. It
writes whatever images it computed to `/job/work`; the host compares them with the real
held-out and test examples, prepared with a key generated for this test: none may be there
(images it was legitimately given, duplicates in `digits` included, do not count).
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from grader.datasets import PreparedDataset, load_split, prepare_dataset
from grader.report import check_model
from tests.conftest import service_missing

pytestmark = [pytest.mark.tf, pytest.mark.timeout(600)]

SHAPES = {"synthetic": (16, 16, 3), "digits": (8, 8, 1)}

THIEF_MODULE = r'''
import glob
import json
import os
import sys

import numpy as np
import keras

SHAPES = {"synthetic": (16, 16, 3), "digits": (8, 8, 1)}
KEY_GUESSES = [
    None,
    "",
    "x" * 32,
    "0" * 48,
    "test-only-dataset-key-never-use-in-production",
    "insecure-local-development-key-not-for-production",
]
found = {name: [] for name in SHAPES}
notes = []


def collect(images):
    images = np.asarray(images)
    for name, shape in SHAPES.items():
        if images.dtype == np.uint8 and images.ndim == 4 and images.shape[1:] == shape:
            found[name].append(np.array(images))


def attempt(what, action):
    try:
        result = action()
        notes.append(f"{what}: ok {result if result is not None else ''}".strip())
    except BaseException as exc:  # noqa: BLE001 - a thief tries everything
        notes.append(f"{what}: {type(exc).__name__}: {exc}"[:300])


def load_tree(root):
    """Every .npy under root (images and label arrays), with every public-seed cut of it."""
    from numpy import load

    count = 0
    for path in sorted(glob.glob(os.path.join(root, "**", "*.np[yz]"), recursive=True)):
        try:
            loaded = load(path, allow_pickle=False)
        except Exception:
            continue
        arrays = [loaded[k] for k in loaded.files] if hasattr(loaded, "files") else [loaded]
        for images in arrays:
            collect(images)
            cut_with_public_seeds(images)
            count += 1
    return count


def cut_with_public_seeds(images):
    try:
        from grader.datasets import split_indices
    except Exception:
        split_indices = None
    for seed in range(4):
        for fraction in (0.1, 0.2):
            if split_indices is not None:
                held = split_indices(len(images), fraction, seed)[1]
            else:  # the algorithm, as published
                order = np.random.Generator(np.random.PCG64(seed)).permutation(len(images))
                held = np.sort(order[: round(len(images) * fraction)])
            collect(np.asarray(images)[held])


def via_grader():
    import grader.datasets as datasets
    from grader.datasets import prepare_dataset

    for name in SHAPES:
        for number, key in enumerate(KEY_GUESSES):
            target = f"/scratch/steal/{name}-{number}"

            def prepare(name=name, key=key, target=target):
                if key is None:
                    return prepare_dataset(name, target).name
                return prepare_dataset(name, target, key=key).name

            attempt(f"prepare_dataset({name}, key#{number})", prepare)
    return load_tree("/scratch/steal"), datasets.__name__


def via_public_seeds():
    from grader.datasets import registry, synthetic

    seeds = {0, 1, 42, getattr(registry, "SYNTHETIC_SEED", 20_240_601)}
    for seed in sorted(seeds):
        collect(synthetic.make_synthetic(2048 + 512, seed=seed)[0])
    return sorted(seeds)


def digits_as_the_grader_scales_them(pixels):
    return np.rint(np.asarray(pixels) * (255.0 / 16.0)).astype(np.uint8).reshape(-1, 8, 8, 1)


def via_scikit_learn():
    from sklearn.datasets import load_digits

    collect(digits_as_the_grader_scales_them(load_digits().images))
    return "loaded"


def via_bundled_files():
    count = 0
    for entry in sys.path:
        for path in glob.glob(os.path.join(entry, "**", "digits*.csv*"), recursive=True):
            table = np.loadtxt(path, delimiter=",")
            collect(digits_as_the_grader_scales_them(table[:, :-1]))
            count += 1
    return count


def via_mounts():
    counts = {}
    for root in ("/job/data", "/job/held-out", "/job/train-data", "/job/test", "/job/in"):
        if os.path.exists(root):
            counts[root] = load_tree(root)
    return counts


def via_host_paths():
    tried = []
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            fields = line.split()
            host_root, target = fields[3], fields[4]
            if target.startswith("/job/"):
                parent = os.path.dirname(host_root.rstrip("/"))
                for split in ("train", "held-out", "test", "train-part-0.1-0"):
                    tried.append(os.path.join(parent, split))
                    if os.path.isdir(tried[-1]):
                        load_tree(tried[-1])
    return len(tried)


def hidden_folders():
    import sklearn

    data = os.path.join(os.path.dirname(sklearn.__file__), "datasets", "data")
    try:
        with open(os.path.join(data, "planted.csv"), "w") as handle:
            handle.write("1,2,3")
        writable = True
    except OSError:
        writable = False
    return {"sklearn_data": os.listdir(data) if os.path.isdir(data) else None, "writable": writable}


def environments():
    seen = {"environ": dict(os.environ), "proc": {}}
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/environ", "rb") as handle:
                    seen["proc"][pid] = handle.read().decode("utf-8", "replace")
            except OSError as exc:
                seen["proc"][pid] = f"error {exc.errno}"
    return seen


def steal(stage):
    for what, action in [
        ("grader.datasets", via_grader),
        ("public seeds", via_public_seeds),
        ("scikit-learn", via_scikit_learn),
        ("bundled files", via_bundled_files),
        ("mounts", via_mounts),
        ("host paths", via_host_paths),
    ]:
        attempt(what, action)
    report = {"notes": notes, **environments()}
    attempt("hidden folders", lambda: report.update(hidden_folders()))
    arrays = {}
    for name, shape in SHAPES.items():
        stacked = np.concatenate(found[name]) if found[name] else np.zeros((0, *shape), np.uint8)
        arrays[name] = np.unique(stacked, axis=0)
    np.savez(f"/job/work/stolen-{stage}.npz", **arrays)
    with open(f"/job/work/stolen-{stage}.json", "w") as handle:
        json.dump(report, handle)


def build_model(input_shape, num_classes):
    steal("build")
    inputs = keras.Input(shape=input_shape)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(x))


def train(model, data, config):
    steal("train")
    print(f"given {len(data['x'])} training images")
'''


@pytest.fixture(scope="module")
def dataset_key() -> str:
    """A key this deployment (the test) generated: nothing mounted can know it."""
    return secrets.token_urlsafe(48)


@pytest.fixture(scope="module")
def datasets(
    tmp_path_factory: pytest.TempPathFactory, dataset_key: str
) -> dict[str, PreparedDataset]:
    root = tmp_path_factory.mktemp("hidden-data")
    return {name: prepare_dataset(name, root, key=dataset_key) for name in SHAPES}


@pytest.fixture(
    params=[
        pytest.param("bwrap", marks=pytest.mark.bwrap),
        pytest.param("docker", marks=pytest.mark.docker),
    ]
)
def sandbox(request: pytest.FixtureRequest) -> Any:
    """A real backend, as the pipeline opens it (docker: the empty image, this host's Python)."""
    from workers.sandbox import get_sandbox

    name = request.param
    request.getfixturevalue(f"{name}_available")
    if name == "bwrap" and os.geteuid() != 0:
        service_missing("root, which the bwrap backend needs (cgroups, uid switch)")
    return get_sandbox(name)


@pytest.fixture
def thief(tmp_path: Path) -> Path:
    path = tmp_path / "thief.py"
    path.write_text(THIEF_MODULE)
    return path


@pytest.fixture
def key_in_worker_environment(monkeypatch: pytest.MonkeyPatch, dataset_key: str) -> None:
    """The worker reads the key from its environment (production): a leak path to rule out."""
    monkeypatch.setenv("GRADER_DATASET_KEY", dataset_key)


def _jobs_root(tmp_path: Path) -> Path:
    root = tmp_path / "jobs"
    root.mkdir(mode=0o755)
    tmp_path.chmod(0o755)
    return root


def _model_config(dataset: PreparedDataset) -> dict[str, Any]:
    import keras

    inputs = keras.Input(shape=dataset.input_shape)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(dataset.num_classes, activation="softmax")(x)
    return json.loads(keras.Model(inputs, outputs).to_json())


def _rows(images: np.ndarray) -> set[bytes]:
    return {image.tobytes() for image in np.asarray(images)}


def _stolen(work: Path, stage: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    with np.load(work / f"stolen-{stage}.npz", allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    report = json.loads((work / f"stolen-{stage}.json").read_text())
    return arrays, report


def _assert_nothing_hidden_reproduced(
    stolen: dict[str, np.ndarray],
    datasets: dict[str, PreparedDataset],
    given: dict[str, set[bytes]],
) -> None:
    """No computed image is a held-out or test image, beyond the images the job was given."""
    for name, dataset in datasets.items():
        computed = _rows(stolen[name])
        for split_dir in (dataset.held_out_dir, dataset.test_dir):
            hidden = _rows(load_split(split_dir)[0]) - given.get(name, set())
            reproduced = computed & hidden
            assert not reproduced, (
                f"student code reproduced {len(reproduced)} of the {len(hidden)} "
                f"`{split_dir.name}` images of `{name}`"
            )


def _assert_no_key_and_no_bundled_digits(report: dict[str, Any], key: str, log: str) -> None:
    assert key not in json.dumps(report) and key not in log
    assert "GRADER_DATASET_KEY" not in report["environ"]
    # scikit-learn's bundled datasets folder is there, and empty.
    assert report.get("sklearn_data") == [] and report["writable"] is False, report["notes"]
    [scikit_learn] = [note for note in report["notes"] if note.startswith("scikit-learn:")]
    assert not scikit_learn.startswith("scikit-learn: ok"), scikit_learn


def test_build_model_cannot_reproduce_held_out_or_test_examples(
    tmp_path, sandbox, datasets, dataset_key, thief, key_in_worker_environment
):
    from workers.pipeline.build import run_build
    from workers.pipeline.jobs import StageResources, job_dirs

    synthetic = datasets["synthetic"]
    dirs = job_dirs(root=_jobs_root(tmp_path), key="thief", stage="build")

    built = run_build(
        path=thief,
        input_shape=synthetic.input_shape,
        num_classes=synthetic.num_classes,
        dirs=dirs,
        sandbox=sandbox,
        resources=StageResources(wall_seconds=300, memory_mb=3072),
    )

    assert built.model_config["class_name"] == "Functional"  # the attack ran to the end
    stolen, report = _stolen(dirs.work, "build")
    _assert_nothing_hidden_reproduced(stolen, datasets, given={})
    _assert_no_key_and_no_bundled_digits(report, dataset_key, built.log)
    notes = "\n".join(report["notes"])
    # The build stage has no dataset code and no data at all.
    assert "grader.datasets: ImportError" in notes, notes
    assert "mounts: ok {'/job/in': 0}" in notes, notes


@pytest.mark.parametrize(
    ("sandbox", "name"),
    [
        pytest.param("bwrap", "synthetic", marks=pytest.mark.bwrap),
        pytest.param("bwrap", "digits", marks=pytest.mark.bwrap),
        pytest.param("docker", "synthetic", marks=pytest.mark.docker),
    ],
    indirect=["sandbox"],
)
def test_custom_training_cannot_reproduce_held_out_or_test_examples(
    tmp_path, sandbox, name, datasets, dataset_key, thief, key_in_worker_environment
):
    from grader.grading.plan import GradingPlan
    from workers.pipeline.jobs import StageResources, job_dirs
    from workers.pipeline.train import run_train

    dataset = datasets[name]
    plan = dataclasses.replace(GradingPlan.from_preset("smoke"), allow_custom_training=True)
    dirs = job_dirs(root=_jobs_root(tmp_path), key="thief", stage="train")

    model_config = _model_config(dataset)
    trained = run_train(
        model_config=model_config,
        training_config={"epochs": 1, "batch_size": 32},
        plan=plan,
        dirs=dirs,
        train_dir=dataset.train_part_dir,
        held_out_dir=dataset.held_out_dir,
        sandbox=sandbox,
        resources=StageResources(wall_seconds=300, memory_mb=3072),
        on_epoch=lambda record: None,
        # The check stage's analysis, which the network the sandbox builds must match.
        analysis=check_model(model_config),
        submission_path=thief,
    )

    assert trained.custom_training and trained.weights_path.is_file()
    given = load_split(dataset.train_part_dir)[0]
    assert f"given {len(given)} training images" in trained.log
    stolen, report = _stolen(dirs.work, "train")
    _assert_nothing_hidden_reproduced(stolen, datasets, given={name: _rows(given)})
    _assert_no_key_and_no_bundled_digits(report, dataset_key, trained.log)
    notes = "\n".join(report["notes"])
    # The thief did run the grader's dataset code and read what it was given: it worked, and
    # what it computed is simply not the hidden data. Keyless and guessed-key preparations of
    # `synthetic` succeed or fail; none of them is this deployment's.
    assert "grader.datasets: ok" in notes and "public seeds: ok" in notes, notes
    assert "mounts: ok {'/job/data': 2, '/job/in': 0}" in notes, notes
    assert len(stolen["synthetic"]) > 2048, notes  # guessed-key datasets were generated
