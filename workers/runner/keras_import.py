"""Importing Keras inside the sandbox: only what a stage uses, on the backend it was given.

Costs that a stage does not need are avoided here, before any other code imports Keras:

- ``keras.wrappers`` imports scikit-learn when it is installed (about 0.9 s on the 2-core CI
  machine) for its scikit-learn wrappers, which no stage uses. Keras is imported once with
  scikit-learn hidden from that import only; student code that imports scikit-learn later
  gets it as before (only Keras' wrapper classes keep their stand-in base classes).
- On TensorFlow, ``import tensorflow`` imports JAX when it is installed (about 0.2 to 0.6 s
  here; TFLite's converter keeps ``jax.jit`` for converting JAX functions, and takes None
  without it). JAX is hidden from that import too; later code imports it as before.
- The build stage may run on a light backend (``jax``, or ``numpy``, which needs JAX): Keras 3
  builds and serialises a model there without TensorFlow, whose import is most of a build's
  time. Keras' own optional uses of TensorFlow (``to_json`` asks whether an object is a
  ``tf.TensorShape``) are told TensorFlow is absent, and any other import of TensorFlow (the
  student's ``import tensorflow``, ``tf.keras``) is refused and remembered: the build stage
  then reports `NEEDS_TENSORFLOW` and the host builds the module again, in a fresh sandbox,
  on TensorFlow (`workers.pipeline.build`). A config built on a light backend is the one
  TensorFlow builds: same layers, names, dtype policies and initializers
  (`tests/workers/runner/test_build_backend.py`).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
from collections.abc import Sequence
from types import ModuleType

#: Backends the build stage may use instead of TensorFlow (both need JAX installed).
LIGHT_BACKENDS = ("jax", "numpy")
#: The error code of a light-backend build that found the module needs TensorFlow.
NEEDS_TENSORFLOW = "needs_tensorflow"
#: The error code of a light-backend build whose sandbox cannot import Keras on that backend.
BACKEND_UNAVAILABLE = "backend_unavailable"
#: Top-level modules that mean "this code uses TensorFlow itself".
TENSORFLOW_MODULES = frozenset({"tensorflow", "tf_keras", "tensorflow_io", "tensorflow_estimator"})


def backend_for(stage: str, requested: str | None) -> str:
    """The Keras backend a stage runs on: a light one only for `build`, when asked."""
    if stage == "build" and requested in LIGHT_BACKENDS:
        return str(requested)
    return "tensorflow"


class _Refuse(importlib.abc.MetaPathFinder):
    """A meta path finder that refuses some top-level modules and remembers who asked."""

    def __init__(self, names: frozenset[str], message: str) -> None:
        self.names = names
        self.message = message
        self.requested: list[str] = []

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.partition(".")[0] in self.names:
            self.requested.append(fullname)
            raise ModuleNotFoundError(self.message.format(name=fullname), name=fullname)
        return None


_tensorflow_guard: _Refuse | None = None

_SKLEARN = frozenset({"sklearn"})
#: What Keras' own import does without, per backend (see the module docstring).
HIDDEN_FROM_IMPORT = {"tensorflow": _SKLEARN | {"jax", "jaxlib"}}

#: Keras' numpy backend imports its JAX backend's whole package (JAX's sparse module, SciPy's
#: sparse matrices, TPU attention kernels: about a third of the numpy backend's import) for two
#: FFT functions (`keras.src.backend.numpy.math`); a build never calls them.
_JAX_MATH = "keras.src.backend.jax.math"


def _real_jax_math() -> ModuleType:
    if getattr(sys.modules.get(_JAX_MATH), "_grader_stand_in", False):
        del sys.modules[_JAX_MATH]
    return importlib.import_module(_JAX_MATH)


def _jax_fft(x: object) -> object:
    return _real_jax_math().fft(x)


def _jax_fft2(x: object) -> object:
    return _real_jax_math().fft2(x)


def _stand_in_for_jax_math() -> None:
    """Put a stand-in for `keras.src.backend.jax.math` that imports the real one when called."""
    if _JAX_MATH in sys.modules:
        return
    stand_in = ModuleType(_JAX_MATH, "Imports Keras' JAX math module on first use.")
    stand_in.fft = _jax_fft  # type: ignore[attr-defined]
    stand_in.fft2 = _jax_fft2  # type: ignore[attr-defined]
    stand_in._grader_stand_in = True  # type: ignore[attr-defined]
    sys.modules[_JAX_MATH] = stand_in


def import_keras(backend: str) -> ModuleType:
    """Import Keras on `backend` without scikit-learn (nor JAX on TensorFlow); on a light
    backend, refuse TensorFlow.

    Call once, first thing in the sandbox, before any other code imports Keras.

    Raises:
        ImportError: Keras cannot be imported on `backend` (JAX missing for a light one).
    """
    global _tensorflow_guard
    os.environ["KERAS_BACKEND"] = backend
    if backend in LIGHT_BACKENDS and _tensorflow_guard is None:
        _tensorflow_guard = _Refuse(
            TENSORFLOW_MODULES, "No module named '{name}' (this build runs without TensorFlow)"
        )
        sys.meta_path.insert(0, _tensorflow_guard)
    if backend == "numpy":
        _stand_in_for_jax_math()
    hidden = _Refuse(HIDDEN_FROM_IMPORT.get(backend, _SKLEARN), "No module named '{name}'")
    sys.meta_path.insert(0, hidden)
    try:
        import keras
    finally:
        sys.meta_path.remove(hidden)
        if getattr(sys.modules.get(_JAX_MATH), "_grader_stand_in", False):
            # Only `keras.src.backend.numpy.math` may hold it; anyone else gets the real one.
            del sys.modules[_JAX_MATH]
    if backend in LIGHT_BACKENDS:
        from keras.src.utils import module_utils

        # Keras asks these lazily (`tf.available`): the answer is "absent", without an import.
        for name in ("tensorflow", "gfile", "tensorflow_io"):
            lazy = getattr(module_utils, name, None)
            if lazy is not None:
                lazy._available = False
    return keras


def tensorflow_requested() -> list[str]:
    """The TensorFlow modules something tried to import since `import_keras` (light backend)."""
    return list(_tensorflow_guard.requested) if _tensorflow_guard is not None else []
