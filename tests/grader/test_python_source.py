"""`grader.python_source`: an uploaded module is bounded before parsing, then parsed in a child
limited in memory and CPU, so a hostile file is refused with a message, never a crash."""

from __future__ import annotations

import pytest

from grader.errors import SourceRejected
from grader.python_source import (
    MAX_SOURCE_BYTES,
    MAX_SOURCE_LINES,
    check_source_bounds,
    count_lines,
    read_source_file,
    top_level_functions,
)

MODEL = b"""\
import keras


def helper():
    pass


async def later():
    pass


def build_model(input_shape, num_classes):
    def inner():
        pass
    return keras.Sequential([keras.Input(input_shape), keras.layers.Dense(num_classes)])
"""


@pytest.mark.parametrize(
    ("data", "lines"),
    [
        (b"", 0),
        (b"x = 1", 1),
        (b"x = 1\n", 1),
        (b"a\nb", 2),
        (b"a\r\nb\r\n", 2),
        (b"a\rb\rc", 3),  # a lone carriage return ends a line for Python's tokenizer too
        (b"\n\n\n", 3),
    ],
)
def test_counts_lines_as_python_does(data, lines):
    assert count_lines(data) == lines
    assert lines == len(data.decode().splitlines())


def test_a_model_file_within_the_bounds_passes():
    check_source_bounds("model.py", MODEL)
    check_source_bounds("model.py", b"\n" * MAX_SOURCE_LINES)
    check_source_bounds("model.py", b"#" * MAX_SOURCE_BYTES)


def test_too_many_lines_are_refused_with_both_limits_in_the_message():
    data = b"a\n" * (MAX_SOURCE_LINES + 1)
    with pytest.raises(SourceRejected) as info:
        check_source_bounds("model.py", data)
    assert info.value.message == (
        f"File `model.py` has {MAX_SOURCE_LINES + 1:,} lines ({len(data):,} bytes). Expected at "
        f"most {MAX_SOURCE_LINES:,} lines and {MAX_SOURCE_BYTES:,} bytes for a model file."
    )
    assert info.value.error_code == "invalid_submission"


def test_lines_ended_by_carriage_returns_count_too():
    with pytest.raises(SourceRejected, match=f"has {MAX_SOURCE_LINES + 1:,} lines"):
        check_source_bounds("model.py", b"a\r" * (MAX_SOURCE_LINES + 1))


def test_too_many_bytes_are_refused():
    data = b"x = '" + b"a" * MAX_SOURCE_BYTES + b"'\n"
    with pytest.raises(SourceRejected) as info:
        check_source_bounds("model.py", data)
    assert info.value.message == (
        f"File `model.py` is {len(data):,} bytes (1 line). Expected at most "
        f"{MAX_SOURCE_BYTES:,} bytes and {MAX_SOURCE_LINES:,} lines for a model file."
    )


def test_lists_the_top_level_functions_only():
    assert top_level_functions("model.py", MODEL) == ["helper", "later", "build_model"]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"def build_model(:\n", "File `m.py` is not valid Python: invalid syntax at line 1."),
        (b"x = 1\x00\n", "File `m.py` is not valid Python: source code string cannot contain"),
        (b"x = " + b"1" * 5000 + b"\n", "File `m.py` is not valid Python: Exceeds the limit"),
        (b"(" * 100_000, "File `m.py` is not valid Python: too many nested parentheses at line 1"),
        (b"\xff\xfe", "File `m.py` is not UTF-8 text (invalid byte at offset 0)."),
    ],
)
def test_refuses_what_is_not_python_with_the_parsers_words(data, expected):
    with pytest.raises(SourceRejected) as info:
        top_level_functions("m.py", data)
    assert info.value.message.startswith(expected)


# Each is within the size and line bounds, and each broke or stalled an unbounded `ast.parse` in
# the web process: RecursionError or MemoryError (a 500), or seconds and hundreds of MB.
PATHOLOGICAL = {
    "unary_chain": b"x = " + b"-" * 100_000 + b"1\n",
    "lambda_chain": b"x = " + b"lambda: " * 60_000 + b"1\n",
    "attribute_chain": b"x = a" + b".b" * 200_000 + b"\n",
    "sum_chain": b"x = " + b"+".join([b"a"] * 200_000) + b"\n",
    "dense_statements": b"\n".join([b"a;" * 25] * 10_000) + b"\n",
    "nested_calls": b"\n".join([b"f(" * 90 + b")" * 90] * 1_900) + b"\n",
}


@pytest.mark.parametrize("name", sorted(PATHOLOGICAL))
def test_a_small_pathological_module_is_refused_as_too_complex(name):
    data = PATHOLOGICAL[name]
    check_source_bounds("m.py", data)  # small enough to reach the parser

    with pytest.raises(SourceRejected) as info:
        top_level_functions("m.py", data)

    assert info.value.message.startswith("File `m.py` is too complex to parse: ")
    assert "Expected ordinary Python source defining `build_model" in info.value.message


def test_a_long_ordinary_module_still_parses():
    # 19,000 lines of ordinary code: far more than any model file, still well within the limits.
    body = b"".join(
        b"def f%d(x, y=2):\n    return [x * y + %d for _ in range(3)]\n\n" % (i, i)
        for i in range(6_000)
    )
    data = body + b"def build_model(input_shape, num_classes):\n    return None\n"
    check_source_bounds("big.py", data)
    assert top_level_functions("big.py", data)[-1] == "build_model"


def test_reading_a_file_refuses_an_oversized_one_from_its_size(tmp_path):
    path = tmp_path / "huge.py"
    with open(path, "wb") as handle:
        handle.truncate(50 * MAX_SOURCE_BYTES)  # never read: refused from its size
    with pytest.raises(SourceRejected) as info:
        read_source_file(path)
    assert info.value.message == (
        f"File `huge.py` is {50 * MAX_SOURCE_BYTES:,} bytes. Expected at most "
        f"{MAX_SOURCE_BYTES:,} bytes and {MAX_SOURCE_LINES:,} lines for a model file."
    )
    small = tmp_path / "model.py"
    small.write_bytes(MODEL)
    assert read_source_file(small) == MODEL
    small.write_bytes(b"\n" * (MAX_SOURCE_LINES + 1))
    with pytest.raises(SourceRejected, match="lines"):
        read_source_file(small)
