"""Importing the grading core never imports TensorFlow, Keras, JAX or Django.

The web process and the preflight checks import `grader` on every request; TensorFlow would cost
seconds and gigabytes there, and Django would break the one-way dependency. The check runs in a
fresh interpreter (this test process may already hold those modules) and walks the whole
package, `grader.training` included (its modules import Keras inside the functions that train,
so that the sandbox picks the backend first), so new modules are covered without editing this
test. `tests/test_layout.py` checks statically that only `grader/training/` imports them at all.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("tensorflow", "keras", "jax", "django")
EXCLUDED_PREFIXES: tuple[str, ...] = ()

PROBE = """
import importlib, json, pkgutil, sys
import grader
modules = ["grader"]
# A hand-made walk: pkgutil.walk_packages would import excluded packages to descend into them.
todo = [grader]
while todo:
    package = todo.pop()
    for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
        if info.name.startswith(EXCLUDED):
            continue
        module = importlib.import_module(info.name)
        modules.append(info.name)
        if info.ispkg:
            todo.append(module)
loaded = sorted(name for name in sys.modules if name.split(".")[0] in FORBIDDEN)
print(json.dumps({"modules": modules, "forbidden": loaded}))
"""


def _probe(forbidden: tuple[str, ...] = FORBIDDEN) -> dict[str, list[str]]:
    header = f"EXCLUDED = {EXCLUDED_PREFIXES!r}\nFORBIDDEN = {forbidden!r}\n"
    result = subprocess.run(
        [sys.executable, "-c", header + PROBE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_grader_modules_import_without_tensorflow_keras_or_django() -> None:
    report = _probe()
    assert report["forbidden"] == [], (
        f"Importing {report['modules']} loaded {report['forbidden']}. Expected none of "
        f"{FORBIDDEN}: import them inside grader.training's functions only."
    )
    # The walk really covered the analysis modules (guards against an empty walk).
    for module in (
        "grader.analysis",
        "grader.graph_builder",
        "grader.layers.conv",
        "grader.datasets",
        "grader.training.trainer",
        "grader.training.evaluation",
    ):
        assert module in report["modules"]


def test_probe_reports_a_module_the_walk_imports() -> None:
    """Control: the probe can fail (grader.loading imports zipfile, so zipfile is reported)."""
    assert "zipfile" in _probe(("zipfile",))["forbidden"]
