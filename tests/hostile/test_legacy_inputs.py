"""Hostile notebooks, legacy model files and sources: parsed on the host, never run there.

A notebook, a Keras 2 JSON and a `.py` are now read on the host (upload check, build stage,
submission page) before anything reaches the sandbox. A student controls every byte, so:

- a notebook that smuggles a top-level statement into the generated module (semicolons, string
  tricks, continuation lines) must not get it past the extraction: the module holds only
  imports, definitions, constant assignments and optional imports;
- oversized or deeply nested notebooks, and sources that make `ast` slow, are refused or
  skipped within a bound, never a crash or a hang;
- a Keras 2 JSON cannot use the translation to launder a Lambda or a custom class (it gains a
  `keras.layers` module key on the way): the analysis still refuses it;
- terminal escape codes a student puts in an exception message never reach the page or JSON.

Extracting definitions is a convenience, not a security boundary: a decorator, a default
argument or a class body still runs when the module is imported, inside the build sandbox,
as every line of a `.py` does.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from grader.errors import GraderError, UnsafeLayer
from grader.notebook import MAX_CODE_CHARS, InvalidNotebook, extract_notebook
from grader.source_hints import MAX_SOURCE_CHARS, inspect_source

LEGACY = Path(__file__).resolve().parents[1] / "fixtures" / "models" / "legacy"
KEPT = (
    ast.Import,
    ast.ImportFrom,
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.Assign,
    ast.AnnAssign,
    ast.Try,
)


def _notebook(*sources: str) -> bytes:
    cells = [{"cell_type": "code", "source": source} for source in sources]
    return json.dumps({"cells": cells, "nbformat": 4}).encode()


@pytest.mark.parametrize(
    "cell",
    [
        "import os; os.system('touch /tmp/pwned')",
        "X = 1; os.system('x')",
        'X = """a\n"""; os.system("x")',
        "import os \\\n; os.system('x')",
        "X = (1,\n 2); os.system('x')",
        "if True: import os; os.system('x')",
        "X = os.system('x')",
        "X = [os.system('x') for _ in '1']",
        "X = lambda: 0\nY = X()",
        "with open('/etc/passwd') as f: import os",
        "for x in '1': import os",
        "X: int = os.system('x')",
        "%%capture\nos.system('x')",
        "X = 1 if os.system('x') else 2",
        "try:\n    import os\nexcept Exception:\n    os.system('x')",
    ],
)
def test_a_notebook_cannot_smuggle_a_top_level_call_into_the_module(cell):
    module = extract_notebook(
        _notebook("import os", cell, "def build_model(a, b):\n    return a"), "nb.ipynb"
    )
    tree = ast.parse(module.source)
    for statement in tree.body:
        assert isinstance(statement, KEPT), ast.dump(statement)
        if isinstance(statement, ast.Assign | ast.AnnAssign):
            assert not any(isinstance(n, ast.Call | ast.Lambda) for n in ast.walk(statement))
        if isinstance(statement, ast.Try):
            assert not any(isinstance(n, ast.Call) for n in ast.walk(statement))
    assert "system" not in module.source and "open(" not in module.source


def test_a_notebook_past_the_code_limit_is_refused():
    with pytest.raises(InvalidNotebook, match="characters of code"):
        extract_notebook(_notebook("x = 1\n" * (MAX_CODE_CHARS // 6 + 10)), "big.ipynb")


def test_sources_past_the_inspection_limit_are_skipped_not_parsed():
    source = "layers.Conv2D(8, 3, 3)\n" * (MAX_SOURCE_CHARS // 20)
    assert len(source) > MAX_SOURCE_CHARS
    assert inspect_source(source) == []


def test_a_keras_2_json_cannot_launder_a_lambda_or_a_custom_class():
    from grader.analysis import analyze
    from grader.loading import load_model_config_bytes

    raw = json.loads((LEGACY / "keras2_0_sequential_list.json").read_text())
    keras2_lambda = {
        "class_name": "Lambda",
        "config": {
            "name": "lambda_1",
            "trainable": True,
            "function": ["4wEAAAAAAAAAAQAAAAMAAABTAAAAcwQAAAB8AFMAKQFOqQCp", None, None],
            "function_type": "lambda",
            "output_shape": None,
            "output_shape_type": "raw",
            "arguments": {},
        },
    }
    custom = {"class_name": "MyConv", "config": {"name": "mine", "filters": 3}}
    for layer in (keras2_lambda, custom):
        config = dict(raw, config=[*raw["config"][:2], layer, *raw["config"][2:]])
        with pytest.raises(GraderError) as info:
            analyze(load_model_config_bytes(json.dumps(config).encode(), "model.json"))
        if layer is keras2_lambda:
            assert isinstance(info.value, UnsafeLayer)
        assert info.value.error_code in {"unsafe_layer", "unsupported_layer"}


@pytest.mark.tf
def test_terminal_codes_in_a_students_exception_never_reach_the_result(tmp_path):
    from tests.workers.runner import make_job, run_runner

    source = (
        "def build_model(input_shape, num_classes):\n"
        "    raise ValueError("
        "'\\x1b[2J\\x1b]8;;http://evil/\\x07click\\x1b]8;;\\x07 \\x9b31mred')\n"
    )
    spec = {"stage": "build", "submission": "submission.py", "input_shape": [4, 4, 1]}
    job = make_job(tmp_path / "job", {**spec, "num_classes": 2}, files={"submission.py": source})
    run = run_runner("build", job)
    message = run.result["error"]["message"]
    assert "ValueError: click red" in message
    assert not any(ch in message for ch in "\x1b\x07\x9b")
