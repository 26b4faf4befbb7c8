"""Dependency direction between the packages, read from the source with `ast`.

`assignments` -> `grader`; `workers` -> `assignments`, `grader`. The grading core stays free of
any framework, and what runs inside the sandbox never loads Django. Importing `grader` never
loads TensorFlow (only `grader/training/*` may, and lazily).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

FRAMEWORKS = {"django", "rest_framework", "drf_spectacular", "celery", "kombu"}
PROJECT_WEB = {"assignments", "workers", "config"}
HEAVY_ML = {"tensorflow", "keras"}


def python_files(package: str) -> list[Path]:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no Python file under {package}/: the layout changed, update this test"
    return files


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, *, top_level_only: bool = False) -> list[tuple[int, str]]:
    """Every module `path` imports, as absolute dotted names, with line numbers.

    Relative imports are resolved against the file's package. With ``top_level_only``, imports
    inside functions (deferred on purpose) are left out.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    if top_level_only:
        # Module-level code includes `if`/`try` blocks (e.g. TYPE_CHECKING), not function bodies.
        nodes = [
            node
            for stmt in tree.body
            for node in ast.walk(stmt)
            if not isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        ]
    found: list[tuple[int, str]] = []
    for node in nodes:
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            found.append((node.lineno, name))
    return found


def violations(package: str, forbidden: set[str], *, top_level_only: bool = False) -> list[str]:
    problems = []
    for path in python_files(package):
        for line, name in imported_modules(path, top_level_only=top_level_only):
            if name.split(".")[0] in forbidden:
                problems.append(f"{path.relative_to(ROOT)}:{line} imports `{name}`")
    return problems


def test_module_names_resolve_relative_imports(tmp_path, monkeypatch):
    # The scanner itself must see through relative imports, or the checks below prove nothing.
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    package = tmp_path / "grader" / "sub"
    package.mkdir(parents=True)
    source = package / "mod.py"
    source.write_text(
        "import os\nfrom . import sibling\nfrom ..other import thing\n"
        "def later():\n    import tensorflow\n"
    )
    assert imported_modules(source) == [
        (1, "os"),
        (2, "grader.sub"),
        (3, "grader.other"),
        (5, "tensorflow"),
    ]
    assert imported_modules(source, top_level_only=True) == [
        (1, "os"),
        (2, "grader.sub"),
        (3, "grader.other"),
    ]


def test_grader_imports_no_framework_and_no_web_package():
    problems = violations("grader", FRAMEWORKS | PROJECT_WEB)
    assert not problems, "grader/ must stay framework-free:\n" + "\n".join(problems)


def test_assignments_never_imports_workers():
    problems = violations("assignments", {"workers"})
    assert not problems, (
        "assignments/ names tasks by string (assignments.dispatch); it must not import workers:\n"
        + "\n".join(problems)
    )


def test_sandbox_runner_never_imports_django_or_the_site():
    problems = violations("workers/runner", {"django", "rest_framework", "assignments", "config"})
    assert not problems, "workers/runner/ runs inside the sandbox without Django:\n" + "\n".join(
        problems
    )


def test_grader_loads_tensorflow_only_inside_training_modules():
    problems = [
        problem
        for problem in violations("grader", HEAVY_ML, top_level_only=True)
        if not problem.startswith("grader/training/")
    ]
    assert not problems, (
        "only grader/training/* may import TensorFlow or Keras at module level:\n"
        + "\n".join(problems)
    )


def test_importing_every_grader_module_outside_training_loads_no_tensorflow():
    modules = [
        module_name(path)
        for path in python_files("grader")
        if not module_name(path).startswith("grader.training")
    ]
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        f"{sorted(HEAVY_ML | FRAMEWORKS)!r})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded == [], f"importing grader loaded {sorted({m.split('.')[0] for m in loaded})}"


@pytest.mark.parametrize("package", ["grader", "assignments", "workers", "config"])
def test_every_package_folder_is_a_package(package):
    assert (ROOT / package / "__init__.py").is_file()
