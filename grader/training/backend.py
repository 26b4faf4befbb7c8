"""Which Keras backend runs the trainer and the evaluator: TensorFlow by default, JAX by choice.

Keras fixes its backend when it is first imported, from ``KERAS_BACKEND``: `select_backend`
must run before anything imports Keras (the sandbox runner calls it first thing). A worker picks
the backend of its train and evaluate sandboxes with ``GRADER_KERAS_BACKEND`` (passed into the
sandbox's environment by the worker); the trainer's input pipeline is NumPy and its saved
weights are plain ``.npz`` arrays, so either backend trains, resumes and grades the same jobs.

Pure Python: importing this module imports no framework.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping

#: The Keras backends the trainer supports, the default first.
BACKENDS = ("tensorflow", "jax")
DEFAULT_BACKEND = BACKENDS[0]
#: The worker's setting, also passed into the train and evaluate sandboxes.
BACKEND_VARIABLE = "GRADER_KERAS_BACKEND"


def check_backend(name: str) -> str:
    """`name` if it is a supported backend.

    Raises:
        ValueError: another name.
    """
    if name not in BACKENDS:
        raise ValueError(f"{BACKEND_VARIABLE} is `{name}`. Expected one of: {', '.join(BACKENDS)}.")
    return name


def select_backend(name: str | None = None, environ: MutableMapping[str, str] | None = None) -> str:
    """Make Keras load `name` (default: ``GRADER_KERAS_BACKEND``, else TensorFlow).

    Sets ``KERAS_BACKEND`` and, for JAX, ``XLA_PYTHON_CLIENT_PREALLOCATE=false`` unless already
    set (JAX otherwise takes 75% of a GPU's memory at start; like TensorFlow's memory growth,
    this lets several trainings share one GPU).

    Returns:
        The backend's name.

    Raises:
        ValueError: an unsupported name.
        RuntimeError: Keras is already imported with another backend.
    """
    environ = os.environ if environ is None else environ
    chosen = check_backend(name or environ.get(BACKEND_VARIABLE) or DEFAULT_BACKEND)
    keras = sys.modules.get("keras")
    if keras is not None and keras.backend.backend() != chosen:
        raise RuntimeError(
            f"Keras is already imported with the `{keras.backend.backend()}` backend. Expected "
            f"`{chosen}`: select the backend before anything imports Keras."
        )
    environ["KERAS_BACKEND"] = chosen
    if chosen == "jax":
        environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    return chosen


def set_random_seed(seed: int) -> None:
    """`keras.utils.set_random_seed` without importing TensorFlow on another backend.

    Keras seeds Python, NumPy and its own generators, and TensorFlow's too whenever TensorFlow
    can be imported, which on the JAX backend would load it (seconds, and memory) for nothing.
    There the import is refused for the duration of the call; Keras remembers TensorFlow as
    unavailable, which on that backend it is meant to be.
    """
    import keras

    if keras.backend.backend() == "tensorflow" or "tensorflow" in sys.modules:
        keras.utils.set_random_seed(seed)
        return
    sys.modules["tensorflow"] = None  # type: ignore[assignment]  # import raises ImportError
    try:
        keras.utils.set_random_seed(seed)
    finally:
        del sys.modules["tensorflow"]
