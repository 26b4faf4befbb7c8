"""Trained weights as plain arrays: written by the trainer, read back by the evaluation.

The weights a train stage leaves may have been written by student code (custom training runs
in that process), and the evaluate sandbox that reads them also holds the hidden test split.
Parsing them must therefore never reach a large native parser: HDF5 (Keras' `.weights.h5`) is a
C library with a long history of memory-safety bugs, and a crafted file that ran code there
could read the test labels and forge the accuracy. So the file is a NumPy `.npz`: a zip of
stored (uncompressed) `.npy` members, one per weight in the order of `model.weights`, read with
Python's own zip reader and NumPy's header parser with pickles refused. Before any array is
read, the archive's directory must name exactly the members the architecture needs, with
exactly the sizes its weights have: nothing else is ever decoded.

TensorFlow and Keras are never imported here; the model passed in is already built.
"""

from __future__ import annotations

import math
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from grader.errors import InvalidModelConfig

WEIGHTS_FILENAME = "weights.npz"
#: What an `.npy` header may add to an array's bytes (NumPy pads headers to 64 bytes; a version
#: 2/3 header of a 64-axis array stays far below this).
MAX_NPY_HEADER_BYTES = 4096


def member_name(index: int) -> str:
    """The archive member holding weight number `index` (`model.weights` order)."""
    return f"w{index:04d}.npy"


def save_weights(model: Any, path: Path) -> Path:
    """Write `model`'s weights to `path` (an `.npz`), atomically.

    Args:
        model: a built `keras.Model`.
        path: the destination; a temporary sibling is renamed over it once complete.

    Returns:
        `path`.
    """
    path = Path(path)
    temporary = path.with_name(f"tmp-{path.name}")
    # Written member by member, stored (not deflated): sizes are checkable up front.
    with zipfile.ZipFile(temporary, "w", zipfile.ZIP_STORED) as archive:
        for index, value in enumerate(model.get_weights()):
            with archive.open(member_name(index), "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asarray(value), allow_pickle=False)
    os.replace(temporary, path)
    return path


def _expected(model: Any) -> list[tuple[tuple[int, ...], np.dtype]]:
    return [
        (tuple(int(d) for d in weight.shape), np.dtype(str(weight.dtype)))
        for weight in model.weights
    ]


def _refuse(path: Path, what: str) -> InvalidModelConfig:
    return InvalidModelConfig(
        f"Weights `{path.name}` do not fit the architecture: {what}. Expected the weights the "
        "grader's trainer saves for this model."
    )


def load_weights(model: Any, path: Path) -> Any:
    """Set `model`'s weights from an `.npz` written by `save_weights`, checked before reading.

    Args:
        model: the built `keras.Model` of the analysed architecture.
        path: the weights file (untrusted: student code may have written it).

    Returns:
        `model`, its weights set.

    Raises:
        InvalidModelConfig: the file is not such an archive, or its members, shapes or dtypes
            are not exactly the architecture's.
    """
    path = Path(path)
    expected = _expected(model)
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise _refuse(path, f"not a NumPy .npz archive ({exc})") from exc
    with archive:
        members = archive.infolist()
        names = [member.filename for member in members]
        wanted = [member_name(index) for index in range(len(expected))]
        if sorted(names) != wanted:
            shown = ", ".join(names[:5])
            if len(names) > 5:
                shown += f", ... ({len(names):,} in all)"
            raise _refuse(
                path, f"the archive holds [{shown}], not the {len(expected):,} weights it needs"
            )
        by_name = {member.filename: member for member in members}
        arrays = []
        for name, (shape, dtype) in zip(wanted, expected, strict=True):
            member = by_name[name]
            data_bytes = math.prod(shape) * dtype.itemsize
            if member.compress_type != zipfile.ZIP_STORED or not (
                data_bytes <= member.file_size <= data_bytes + MAX_NPY_HEADER_BYTES
            ):
                raise _refuse(
                    path, f"`{name}` is not a stored array of {data_bytes:,} bytes ({shape})"
                )
            with archive.open(member) as handle:
                try:
                    array = np.lib.format.read_array(handle, allow_pickle=False)
                except (ValueError, OSError, EOFError) as exc:
                    raise _refuse(path, f"`{name}` is not a readable array ({exc})") from exc
            if array.shape != shape or array.dtype != dtype:
                raise _refuse(
                    path,
                    f"`{name}` has shape {array.shape} and dtype {array.dtype}, the architecture "
                    f"needs {shape} and {dtype}",
                )
            arrays.append(array)
    model.set_weights(arrays)
    return model
