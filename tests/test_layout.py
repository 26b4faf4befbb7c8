"""Dependency direction between the packages, read from the source with `ast`.

`assignments` -> `grader`; `workers` -> `assignments`, `grader`. The grading core stays free of
any framework, and what runs inside the sandbox never loads Django. Importing `grader` never
loads TensorFlow (only `grader/training/*` may, and lazily).
"""

from __future__ import annotations

import ast
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


@pytest.mark.parametrize("package", ["grader", "assignments", "workers", "config"])
def test_every_package_folder_is_a_package(package):
    assert (ROOT / package / "__init__.py").is_file()


# --- Import cycles ------------------------------------------------------------------------------

CYCLE_PACKAGES = ("grader", "assignments", "workers", "config")
#: Cycles known and accepted, each with why (as sorted tuples of module names).
KNOWN_CYCLES: dict[tuple[str, ...], str] = {}


def _is_type_checking_block(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def runtime_imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """Every import `path` runs, at module level or inside functions and classes, as
    (line, module, names imported from it); `if TYPE_CHECKING:` blocks never run and are left
    out."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    skipped = {
        id(inner)
        for node in ast.walk(tree)
        if _is_type_checking_block(node)
        for stmt in node.body  # type: ignore[attr-defined]
        for inner in ast.walk(stmt)
    }
    found: list[tuple[int, str, list[str]]] = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            found.append((node.lineno, name, [alias.name for alias in node.names]))
    return found


def import_graph() -> dict[str, dict[str, int]]:
    """module -> {imported project module: line}, for every module of the project packages.

    `from package import module` points at the module; `from module import name` at the module.
    An import of `a.b.c` points at `a.b.c` only (not at the packages above it, which Python has
    already started importing).
    """
    paths = {module_name(p): p for package in CYCLE_PACKAGES for p in python_files(package)}
    graph: dict[str, dict[str, int]] = {name: {} for name in paths}
    for name, path in paths.items():
        for line, target, names in runtime_imports(path):
            targets = [f"{target}.{n}" for n in names if f"{target}.{n}" in paths]
            if len(targets) < len(names) or not names:
                targets.append(target)
            for module in targets:
                if module in paths and module != name:
                    graph[name].setdefault(module, line)
    return graph


def import_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def test_the_cycle_check_sees_imports_inside_functions(tmp_path, monkeypatch):
    # A cycle hidden behind a function-level import must be found; a type-only import must not.
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "CYCLE_PACKAGES", ("grader",))
    package = tmp_path / "grader"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from grader import b\n")
    (package / "b.py").write_text("def later():\n    from grader.a import thing\n")
    (package / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from grader.d import T\n"
    )
    (package / "d.py").write_text("from grader.c import U\n")
    assert import_cycles(import_graph()) == [["grader.a", "grader.b"]]


def test_no_import_cycles():
    graph = import_graph()
    cycles = [cycle for cycle in import_cycles(graph) if tuple(cycle) not in KNOWN_CYCLES]
    described = [
        " <-> ".join(cycle)
        + ":\n"
        + "\n".join(
            f"    {source} -> {target} (line {line})"
            for source in cycle
            for target, line in graph[source].items()
            if target in cycle
        )
        for cycle in cycles
    ]
    assert not cycles, "import cycles (imports inside functions count):\n" + "\n".join(described)


def test_known_cycles_still_exist():
    # An exception that no longer applies must leave the list, so the list only shrinks.
    gone = set(KNOWN_CYCLES) - {tuple(cycle) for cycle in import_cycles(import_graph())}
    assert not gone, f"no longer cycles, remove them from KNOWN_CYCLES: {sorted(gone)}"


# --- Imports inside functions ------------------------------------------------------------------

#: Deferring these is what a function-level import is for: loading them costs seconds.
DEFERRED_HEAVY = {"tensorflow", "keras", "jax"}

#: Function-level imports of anything else, per module: the count when the check was added. A
#: task imports its service in its body (STYLE.md), modules that run without Django set up (the
#: sandbox runner, `grader`'s cold paths) defer what they need; the rest are to be moved to the
#: top of their module. The numbers may only go down: a new function-level import of a light
#: module fails here (move it to the top, or, if it breaks an import cycle, break the cycle).
FUNCTION_IMPORTS_ALLOWED: dict[str, int] = {
    "assignments/apis.py": 1,
    "assignments/forms.py": 1,
    "assignments/management/commands/load_demo.py": 1,
    "assignments/presentation.py": 3,
    "assignments/rule_forms/editor.py": 1,
    "assignments/selectors/queue_order.py": 2,
    "assignments/serializers.py": 4,
    "assignments/services/assignment_settings.py": 7,
    "assignments/services/courses.py": 3,
    "assignments/services/data_wait.py": 4,
    "assignments/services/fair_share.py": 1,
    "assignments/services/notebooks.py": 1,
    "assignments/services/submissions.py": 9,
    "assignments/submission_source.py": 2,
    "assignments/views/account.py": 2,
    "assignments/views/instructor.py": 9,
    "assignments/views/student.py": 9,
    "grader/datasets/fetch.py": 1,
    "grader/datasets/registry.py": 1,
    "grader/fingerprint.py": 1,
    "grader/hints.py": 3,
    "grader/layer_arguments.py": 1,
    "grader/notebook.py": 2,
    "grader/presets/__init__.py": 1,
    "grader/report.py": 6,
    "grader/rules/__init__.py": 1,
    "grader/rules/context.py": 2,
    "grader/rules/params.py": 2,
    "grader/rules/field_size.py": 3,
    "grader/rules/schema.py": 1,
    "grader/training/evaluation.py": 1,
    "grader/training/pipeline.py": 1,
    "workers/apps.py": 1,
    "workers/celery.py": 10,
    "workers/management/commands/check_model.py": 12,
    "workers/management/commands/fetch_dataset.py": 1,
    "workers/management/commands/grade.py": 1,
    "workers/pipeline/build.py": 4,
    "grader/grading/static_check.py": 5,
    "workers/pipeline/evaluate.py": 2,
    "grader/grading/verdict.py": 5,
    "workers/pipeline/jobs.py": 3,
    "workers/pipeline/local.py": 11,
    "grader/grading/plan.py": 1,
    "workers/pipeline/sandboxes.py": 2,
    "grader/grading/scoring.py": 1,
    "workers/pipeline/source_build.py": 6,
    "workers/pipeline/stages.py": 14,
    "workers/pipeline/train.py": 3,
    "workers/presence.py": 1,
    "workers/runner/__main__.py": 3,
    "workers/runner/protocol.py": 2,
    "workers/sandbox/__init__.py": 4,
    "workers/sandbox/docker_backend.py": 7,
    "workers/sandbox/images.py": 1,
    "workers/sandbox/seccomp.py": 1,
    "workers/tasks.py": 7,
}


def function_level_imports(path: Path) -> list[tuple[int, str]]:
    """The imports inside functions of `path` (nested ones once), as (line, module); imports
    of only `DEFERRED_HEAVY` modules are left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    inside: dict[int, ast.Import | ast.ImportFrom] = {}
    for function in ast.walk(tree):
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            for node in ast.walk(function):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    inside[id(node)] = node
    found = []
    for node in sorted(inside.values(), key=lambda n: n.lineno):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        else:
            modules = ["." * node.level + (node.module or "")]
        if all(module.split(".")[0] in DEFERRED_HEAVY for module in modules):
            continue
        found.append((node.lineno, ", ".join(modules)))
    return found


def test_function_level_imports_are_found_except_heavy_ones(tmp_path):
    source = tmp_path / "mod.py"
    source.write_text(
        "import os\n"
        "def f():\n    import keras\n    from tensorflow import nn\n"
        "    def g():\n        from grader import rules\n"
        "class C:\n    def m(self):\n        import json\n"
    )
    assert function_level_imports(source) == [(6, "grader"), (9, "json")]


def test_function_level_imports_only_where_allowed():
    problems = []
    for package in CYCLE_PACKAGES:
        for path in python_files(package):
            name = str(path.relative_to(ROOT))
            found = function_level_imports(path)
            allowed = FUNCTION_IMPORTS_ALLOWED.get(name, 0)
            if len(found) > allowed:
                lines = ", ".join(f"{line} ({module})" for line, module in found)
                problems.append(f"{name}: {len(found)} (allowed {allowed}): lines {lines}")
    assert not problems, (
        "function-level imports beyond the allowed count; import at the top of the module "
        "(only TensorFlow, Keras and JAX are deferred freely):\n" + "\n".join(problems)
    )


# --- module size ------------------------------------------------------------------------------

#: A module a newcomer can read in one sitting; past it, split along the module's own sections.
MAX_MODULE_LINES = 600
#: Modules still over the limit, each with why; the list may only shrink.
OVERSIZED_MODULES: dict[str, str] = {}


def oversized_modules() -> dict[str, int]:
    sizes = {}
    for package in ("grader", "assignments", "workers", "config"):
        for path in python_files(package):
            if "migrations" in path.parts:
                continue
            lines = len(path.read_text(encoding="utf-8").splitlines())
            if lines > MAX_MODULE_LINES:
                sizes[path.relative_to(ROOT).as_posix()] = lines
    return sizes


def test_no_production_module_is_over_the_line_limit():
    over = {name: n for name, n in oversized_modules().items() if name not in OVERSIZED_MODULES}
    assert not over, f"modules over {MAX_MODULE_LINES} lines, split them: {over}"


def test_the_oversized_list_names_only_modules_still_over():
    gone = set(OVERSIZED_MODULES) - set(oversized_modules())
    assert not gone, f"under {MAX_MODULE_LINES} lines now, remove from OVERSIZED_MODULES: {gone}"
