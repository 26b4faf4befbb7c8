"""`import_keras` in a fresh interpreter, as the runner calls it first thing in a sandbox.

On TensorFlow, Keras' import would also import scikit-learn (``keras.wrappers``) and JAX
(``tensorflow.lite``), which no TensorFlow stage uses; both are hidden from that import only.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.workers.runner import REPO_ROOT, runner_env

pytestmark = pytest.mark.tf

PROBE = """
import json, sys
from workers.runner.keras_import import import_keras
keras = import_keras(sys.argv[1])
loaded = sorted(m for m in ("jax", "sklearn", "tensorflow") if m in sys.modules)
import jax, sklearn  # later code imports them as before
print(json.dumps({"backend": keras.backend.backend(), "loaded": loaded, "jax": jax.__name__}))
"""


def _probe(backend: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, backend],
        cwd=REPO_ROOT,
        env=runner_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(done.stdout.splitlines()[-1])


def test_tensorflow_keras_is_imported_without_jax_or_scikit_learn() -> None:
    probe = _probe("tensorflow")

    assert probe["backend"] == "tensorflow"
    assert probe["loaded"] == ["tensorflow"]
    assert probe["jax"] == "jax"


def test_jax_keras_keeps_jax_and_goes_without_tensorflow() -> None:
    probe = _probe("jax")

    assert probe["backend"] == "jax"
    assert probe["loaded"] == ["jax"]
