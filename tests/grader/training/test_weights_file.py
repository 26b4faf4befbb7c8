"""`grader.training.weights_file`: trained weights as checked arrays, never an HDF5 parse.

The evaluate sandbox holds the test split and reads weights that student code may have written
(custom training). Each refusal below is a file such code could leave; the round trip is checked
against Keras' own `get_weights()`.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from grader.errors import InvalidModelConfig
from grader.training.weights_file import load_weights, member_name, save_weights

pytestmark = pytest.mark.tf

keras = pytest.importorskip("keras")


def _model(seed: int = 0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(4, 3),
            keras.layers.BatchNormalization(),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(2),
        ]
    )


def _npz(path: Path, arrays: dict[str, np.ndarray], *, compress: bool = False) -> Path:
    with path.open("wb") as handle:
        (np.savez_compressed if compress else np.savez)(handle, **arrays)
    return path


def _members(model) -> dict[str, np.ndarray]:
    return {member_name(i)[:-4]: w for i, w in enumerate(model.get_weights())}


def test_weights_round_trip_exactly(tmp_path):
    trained = _model(seed=1)
    path = save_weights(trained, tmp_path / "weights.npz")

    fresh = load_weights(_model(seed=2), path)

    for got, want in zip(fresh.get_weights(), trained.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
    assert sorted(zipfile.ZipFile(path).namelist()) == [member_name(i) for i in range(8)]


def test_loading_never_opens_an_hdf5_file(tmp_path, monkeypatch):
    import h5py

    def refuse(*args, **kwargs):
        raise AssertionError("an HDF5 file was opened")

    path = save_weights(_model(seed=1), tmp_path / "weights.npz")
    monkeypatch.setattr(h5py, "File", refuse)

    load_weights(_model(), path)


def test_an_hdf5_weights_file_is_refused_unread(tmp_path):
    # What Keras' own save_weights writes: exactly what the evaluation must never parse.
    path = tmp_path / "weights.npz"
    _model().save_weights(tmp_path / "keras.weights.h5")
    path.write_bytes((tmp_path / "keras.weights.h5").read_bytes())

    with pytest.raises(InvalidModelConfig, match=r"`weights.npz`.*not a NumPy .npz archive"):
        load_weights(_model(), path)


def _altered(model, **changes):
    arrays = _members(model)
    arrays.update(changes)
    return {k: v for k, v in arrays.items() if v is not None}


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"w0000": None}, "(7 in all)], not the 8 weights it needs"),
        ({"extra": np.zeros(1, np.float32)}, "(9 in all)], not the 8 weights it needs"),
        ({"w0006": np.zeros((2000, 2), np.float32)}, "is not a stored array of 32 bytes"),
        ({"w0000": np.zeros((3, 3, 3, 5), np.float32)}, "has shape (3, 3, 3, 5) and dtype"),
        ({"w0001": np.zeros(4, np.float64)}, "has shape (4,) and dtype float64"),
        ({"w0001": np.zeros((2, 2), np.float32)}, "has shape (2, 2) and dtype float32"),
        ({"w0001": np.zeros(4, np.int32)}, "has shape (4,) and dtype int32"),
    ],
)
def test_an_archive_off_the_architecture_is_refused(tmp_path, change, words):
    model = _model()
    path = _npz(tmp_path / "weights.npz", _altered(model, **change))

    with pytest.raises(InvalidModelConfig) as info:
        load_weights(model, path)

    assert words in info.value.message
    assert info.value.message.startswith("Weights `weights.npz` do not fit the architecture")


def test_a_compressed_member_is_refused_before_it_is_inflated(tmp_path):
    # A deflated member could inflate to any size: only stored members, of the exact size.
    model = _model()
    path = _npz(tmp_path / "weights.npz", _members(model), compress=True)

    with pytest.raises(InvalidModelConfig, match="is not a stored array"):
        load_weights(model, path)


def test_a_pickled_object_array_is_refused(tmp_path):
    model = _model()
    arrays = _members(model)
    buffer = io.BytesIO()
    np.save(buffer, np.array([object()] * 4, dtype=object), allow_pickle=True)
    path = tmp_path / "weights.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            if name == "w0001":
                archive.writestr(f"{name}.npy", buffer.getvalue())
                continue
            member = io.BytesIO()
            np.save(member, array)
            archive.writestr(f"{name}.npy", member.getvalue())

    with pytest.raises(InvalidModelConfig, match=r"w0001\.npy"):
        load_weights(model, path)
