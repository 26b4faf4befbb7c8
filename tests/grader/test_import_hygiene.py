"""Importing the grading core never imports TensorFlow, Keras or Django.

The web process and the preflight checks import `grader` on every request; TensorFlow would cost
seconds and gigabytes there, and Django would break the one-way dependency. The check runs in a
fresh interpreter (this test process may already hold those modules) and walks the package, so
new modules are covered without editing this test. Only `grader.training` (run inside sandboxes)
may import TensorFlow, and it is excluded by name.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("tensorflow", "keras", "django")
EXCLUDED_PREFIXES = ("grader.training",)

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
        f"{FORBIDDEN}: import them lazily inside grader.training only."
    )
    # The walk really covered the analysis modules (guards against an empty walk).
    for module in ("grader.analysis", "grader.graph_builder", "grader.layers.conv"):
        assert module in report["modules"]


def test_probe_reports_a_module_the_walk_imports() -> None:
    """Control: the probe can fail (grader.loading imports zipfile, so zipfile is reported)."""
    assert "zipfile" in _probe(("zipfile",))["forbidden"]
