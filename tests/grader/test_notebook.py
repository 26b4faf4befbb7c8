"""A notebook becomes the module of its imports and definitions; nothing else of it runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from grader.notebook import (
    MAX_CELLS,
    InvalidNotebook,
    extract_notebook,
    extract_notebook_here,
    missing_build_model_message,
)

LEGACY = Path(__file__).resolve().parents[1] / "fixtures" / "models" / "legacy"


def notebook(*cells: str | tuple[str, str], nbformat: int = 4) -> bytes:
    """A notebook of code cells (a `("markdown", text)` tuple is a markdown cell)."""
    raw = []
    for count, cell in enumerate(cells, start=1):
        cell_type, text = cell if isinstance(cell, tuple) else ("code", cell)
        raw.append(
            {
                "cell_type": cell_type,
                "execution_count": count,
                "metadata": {},
                "outputs": [],
                "source": text.splitlines(keepends=True),
            }
        )
    return json.dumps({"cells": raw, "metadata": {}, "nbformat": nbformat}).encode()


def test_keeps_imports_and_definitions_and_records_what_was_left_out():
    data = notebook(
        ("markdown", "# Title"),
        "!pip install -q tensorflow\n%matplotlib inline\nimport os",
        "(x_train, y_train), _ = keras.datasets.cifar10.load_data()\nx_train = x_train / 255",
        "EPOCHS = 3\nLAYERS = (16, 2 * 16)\n\ndef build_model(input_shape, num_classes):\n"
        "    return EPOCHS\n",
        "model = build_model((32, 32, 3), 10)\nmodel.fit(x_train, y_train, epochs=EPOCHS)",
        "%%bash\nls /content",
    )
    module = extract_notebook(data, "hw.ipynb")
    assert module.used_cells == [2, 4]
    assert module.defines_build_model
    cells = {cell.number: cell for cell in module.cells}
    assert set(cells) == {2, 3, 4, 5, 6}  # the markdown cell is counted, not listed
    assert cells[2].kept == ("import os",)
    assert cells[2].left_out == (
        "line 1: `!pip install -q tensorflow` (shell command, not run)",
        "line 2: `%matplotlib inline` (magic, not run)",
    )
    # The download is left out, and with it the line reading its result.
    assert [item.split(":")[0] for item in cells[3].left_out] == ["line 1", "line 2"]
    assert cells[3].kept == ()
    assert cells[4].kept == ("EPOCHS = ...", "LAYERS = ...", "def build_model")
    assert "a top-level call, not run" in cells[5].left_out[1]
    assert cells[6].error == "a `%%bash` cell (not Python)"
    for left_out in ("load_data", "model.fit", "pip install", "matplotlib", "ls /content"):
        assert left_out not in module.source
    compile(module.source, "<generated>", "exec")
    assert module.dropped_names["x_train"] == (3, 1)
    assert "`x_train` is assigned in cell 3, line 1" in module.name_error_hint(
        "NameError: name 'x_train' is not defined"
    )


def test_the_generated_module_imports_without_running_top_level_code(tmp_path):
    data = notebook(
        "import json",
        "raise SystemExit('a top-level statement ran')",
        "open('/nonexistent/dataset.npz')",
        "def build_model(input_shape, num_classes):\n    return json.dumps([input_shape])",
    )
    module = extract_notebook(data, "nb.ipynb")
    path = tmp_path / "submission.py"
    path.write_text(module.source)
    run = subprocess.run(
        [sys.executable, "-c", "import submission; print(submission.build_model((1, 2), 3))"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[[1, 2]]"


def test_lines_map_back_to_cells():
    data = notebook(
        ("markdown", "intro"), "import os", "x = 1\n\n\ndef build_model(a, b):\n    return a"
    )
    module = extract_notebook(data, "nb.ipynb")
    lines = module.source.splitlines()
    at = lines.index("    return a") + 1
    assert module.where(at) == "cell 3, line 5"
    assert module.where(lines.index("import os") + 1) == "cell 2, line 1"
    assert module.where(1).startswith("line 1 of the module generated")


def test_magics_inside_blocks_keep_the_block_valid():
    data = notebook(
        "def build_model(a, b):\n    !echo hi\n    files = !ls\n    return a",
        "%%time\nimport os",
    )
    module = extract_notebook(data, "nb.ipynb")
    compile(module.source, "<generated>", "exec")
    assert module.used_cells == [1, 2]
    assert "echo" not in module.source and "import os" in module.source


def test_statements_sharing_a_line_are_split():
    module = extract_notebook(notebook("import os; model.fit(x)\ndef build_model(a, b): pass"), "n")
    assert "import os" in module.source and "fit" not in module.source


def test_optional_imports_in_try_are_kept():
    module = extract_notebook(
        notebook("try:\n    import google.colab\nexcept ImportError:\n    pass\n"), "n"
    )
    assert module.cells[0].kept == ("try: (imports)",)


def test_nbformat_3_notebooks_are_read():
    data = json.dumps(
        {
            "nbformat": 3,
            "worksheets": [
                {"cells": [{"cell_type": "code", "input": "def build_model(a, b):\n    pass\n"}]}
            ],
        }
    ).encode()
    assert extract_notebook(data, "old.ipynb").defines_build_model


def test_a_notebook_without_build_model_gets_the_words_of_a_py_file():
    data = (LEGACY / "notebook_without_build_model.ipynb").read_bytes()
    module = extract_notebook(data, "nb.ipynb")
    assert not module.defines_build_model
    message = missing_build_model_message("nb.ipynb", module)
    assert message.startswith(missing_build_model_message("nb.ipynb"))
    assert "cell 5: not valid Python: expected ':' at line 1" in message


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\xff\xfe", "is not JSON text"),
        (b"[1, 2]", "Expected a JSON object with `cells`"),
        (b'{"cells": NaN}', "is not JSON text"),
        (b'{"metadata": {}}', "a `cells` list"),
        (b"[" * 100_000 + b"]" * 100_000, "is not JSON text"),
        (json.dumps({"cells": [{}] * (MAX_CELLS + 1)}).encode(), "Expected at most"),
    ],
    ids=["binary", "list", "nan", "no-cells", "deep", "many-cells"],
)
def test_what_is_not_a_notebook_is_refused_with_a_message(data, expected):
    with pytest.raises(InvalidNotebook) as info:
        extract_notebook(data, "x.ipynb")
    assert expected in info.value.message
    assert info.value.error_code == "invalid_submission"


def test_cells_that_are_not_python_are_left_out_not_fatal():
    module = extract_notebook(
        notebook("def build_model(a, b):\n    return a", "x = (" * 300 + ")" * 300, "1 +"),
        "n",
    )
    assert module.defines_build_model
    assert [cell.error is not None for cell in module.cells] == [False, True, True]


def test_the_limited_child_reads_a_notebook_exactly_as_this_process_would():
    # extract_notebook reads in a child under memory and CPU limits; what comes back is the
    # whole module, line map and left-out names included.
    data = notebook(
        "%matplotlib inline\nimport keras\nEPOCHS = 3",
        ("markdown", "# Model"),
        "x_train = load()\ndef build_model(a, b):\n    return x_train",
        "%%bash\nls",
    )
    assert extract_notebook(data, "nb.ipynb") == extract_notebook_here(data, "nb.ipynb")


def test_a_cell_too_complex_for_the_child_refuses_the_notebook():
    dense = "\n".join(["a;" * 25] * 10_000) + "\ndef build_model(a, b): ...\n"
    with pytest.raises(InvalidNotebook, match=r"`dense.ipynb` is too complex to read"):
        extract_notebook(notebook(dense), "dense.ipynb")
