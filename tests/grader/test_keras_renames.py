"""The table of Keras 1/2 spellings: every entry checked against Keras 3 itself, and against
the source inspection that quotes it.

Keras decides: each old spelling must fail (or, for `decay`, be ignored with a warning) under
the installed Keras 3, and each Keras 3 spelling the message recommends must work. So a
message can never recommend something that does not run, and an entry Keras 3 starts to
accept again shows up here.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest

from grader.keras_renames import KEYWORDS, MODULES, NAMES, module_rename
from grader.source_hints import inspect_source

PRELUDE = "import keras\nfrom keras import layers\n"  # the examples start on line 3


@pytest.fixture(scope="module")
def keras_scope() -> dict[str, Any]:
    import keras
    import numpy as np
    from keras import layers

    model = keras.Sequential([keras.Input((4,)), layers.Dense(2, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    return {
        "keras": keras,
        "layers": layers,
        "model": model,
        "x": np.zeros((4, 4), "float32"),
        "y": np.zeros((4,), "int64"),
        "a": keras.Input((3,)),
        "b": keras.Input((3,)),
    }


def run(code: str, scope: dict[str, Any]) -> None:
    exec(compile(code, "<example>", "exec"), dict(scope))


def fails(code: str, scope: dict[str, Any]) -> bool:
    try:
        run(code, scope)
    except Exception:  # Keras raises TypeError, ValueError, AttributeError, ImportError
        return True
    return False


@pytest.mark.tf
@pytest.mark.parametrize("rename", KEYWORDS, ids=lambda r: r.old)
def test_each_keyword_fails_in_keras_3_and_its_replacement_works(rename, keras_scope):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        failed = fails(rename.example_old, keras_scope)
    if rename.old == "decay":
        # Keras 3 accepts `decay=` and ignores it: only a warning says so.
        assert not failed
        assert any("decay" in str(w.message) for w in caught)
    else:
        assert failed, f"Keras 3 now accepts `{rename.example_old}`: update the table"
    run(rename.example_new, keras_scope)


@pytest.mark.tf
@pytest.mark.parametrize("rename", MODULES, ids=lambda r: r.old)
def test_each_module_is_gone_from_keras_3_and_its_replacement_imports(rename, keras_scope):
    assert fails(rename.example_old, keras_scope)
    if rename.example_new:
        run(rename.example_new, keras_scope)


@pytest.mark.tf
@pytest.mark.parametrize("rename", NAMES, ids=lambda r: r.old)
def test_each_name_behaves_in_keras_3_as_the_table_says(rename, keras_scope):
    if rename.rename_type == "alias":
        run(rename.example_old, keras_scope)  # still accepted...
        import keras

        assert getattr(keras.layers, rename.old) is getattr(keras.layers, rename.new)
    else:
        assert fails(rename.example_old, keras_scope), f"`{rename.old}` works in Keras 3"
    if rename.example_new:
        run(rename.example_new, keras_scope)


@pytest.mark.tf
@pytest.mark.parametrize(
    "module", ["keras.layers", "keras.utils", "keras.optimizers", "tensorflow.keras.layers"]
)
def test_modules_keras_3_has_are_not_renamed(module):
    import importlib

    importlib.import_module(module)
    assert module_rename(module) is None


# --- the source inspection quotes the table, at the line --------------------------------------


@pytest.mark.parametrize("rename", KEYWORDS, ids=lambda r: r.old)
def test_each_old_keyword_is_named_at_its_line_with_the_keras_3_spelling(rename):
    notes = inspect_source(PRELUDE + rename.example_old + "\n")
    found = [n for n in notes if n.topic == "keyword" and n.token == rename.old]
    assert [n.line for n in found] == [3]
    assert f"`{rename.new}`" in found[0].message
    assert not [
        n for n in inspect_source(PRELUDE + rename.example_new + "\n") if n.topic == "keyword"
    ]


@pytest.mark.parametrize("rename", MODULES, ids=lambda r: r.old)
def test_each_old_module_is_named_at_its_line_with_where_it_went(rename):
    notes = [n for n in inspect_source(PRELUDE + rename.example_old + "\n") if n.topic == "module"]
    assert [n.line for n in notes] == [3]
    assert rename.new in notes[0].message
    if rename.example_new:
        assert f"`{rename.example_new}`" in notes[0].message
        assert not [
            n for n in inspect_source(PRELUDE + rename.example_new + "\n") if n.topic == "module"
        ]


@pytest.mark.parametrize("rename", NAMES, ids=lambda r: r.old)
def test_each_old_name_is_named_at_its_line_with_what_replaces_it(rename):
    notes = [
        n
        for n in inspect_source(PRELUDE + rename.example_old + "\n")
        if n.topic in {"name", "module"} and n.line == 3
    ]
    assert notes, f"`{rename.example_old}` raised no note"
    assert any(rename.new.split(" ")[0].strip("`") in n.message for n in notes)
