"""Reading an uploaded Python module's outline without paying for a hostile one.

The upload check parses a `.py` with `ast` to say early that it is not Python or defines no
`build_model`. Python's parser has no bounds of its own: 19 MB of short lines took tens of
seconds and gigabytes of the web process, and a few hundred kilobytes of densely packed
expressions (`a;a;a;...`, `f(f(f(...`) still cost seconds and hundreds of megabytes. So:

1. `check_source_bounds` refuses, before any parsing, a file with more lines or bytes than a model
   file ever has (counting newlines: milliseconds even for the largest upload);
2. `top_level_functions` parses what remains in a child interpreter limited to
   `PARSE_MEMORY_BYTES` of address space and `PARSE_CPU_SECONDS` of CPU, so a file that is small
   but pathological costs at most that, and never the memory of the process that asked.

The grader never runs the module here; the build stage does, in its sandbox.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from grader.errors import SourceRejected

#: A course model with its own training loop is a few hundred lines and a few kilobytes.
MAX_SOURCE_LINES = 20_000
MAX_SOURCE_BYTES = 512 * 1024

#: What the parsing child may use. Half a megabyte of the densest ordinary code (20,000 lines
#: of one-line functions) takes about 0.5 s and 140 MB; a file needing more is pathological.
PARSE_MEMORY_BYTES = 256 * 1024 * 1024
PARSE_CPU_SECONDS = 2
#: Wall-clock backstop only (a loaded host); the CPU limit normally stops a slow parse first.
PARSE_WALL_SECONDS = 20

# Children run in `python -I -S`: no site packages, no environment variables, nothing but the
# standard library (and, for `call_limited`, the grader's own pure-Python modules). The limits
# are set before the input is even read.
_LIMITS = f"""
import json, resource, sys
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
resource.setrlimit(resource.RLIMIT_AS, ({PARSE_MEMORY_BYTES}, {PARSE_MEMORY_BYTES}))
resource.setrlimit(resource.RLIMIT_CPU, ({PARSE_CPU_SECONDS}, {PARSE_CPU_SECONDS + 1}))
"""
_PARSER = """
import ast
source = sys.stdin.buffer.read().decode("utf-8")
try:
    tree = ast.parse(source)
except SyntaxError as exc:
    answer = {"syntax_error": str(exc.msg), "line": exc.lineno}
except ValueError as exc:  # null bytes, on versions where that is no SyntaxError
    answer = {"syntax_error": str(exc), "line": None}
except (RecursionError, MemoryError):
    answer = {"too_complex": True}
else:
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef)
    answer = {"functions": [node.name for node in tree.body if isinstance(node, kinds)]}
sys.stdout.write(json.dumps(answer))
"""
# Calls `module:function(data, *args)` of the grader and writes its JSON answer.
_CALLER = f"""
import importlib
sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
module, _, function = sys.argv[1].partition(":")
data = sys.stdin.buffer.read()
try:
    answer = getattr(importlib.import_module(module), function)(data, *sys.argv[2:])
except (RecursionError, MemoryError):
    answer = {{"too_complex": True}}
sys.stdout.write(json.dumps(answer))
"""


def count_lines(data: bytes) -> int:
    """Lines as Python's tokenizer counts them: `\\n`, `\\r\\n` and a lone `\\r` end a line."""
    if not data:
        return 0
    returns = data.count(b"\r")  # searching for `\r\n` costs 4x more: only when there is a `\r`
    breaks = data.count(b"\n") + returns - (data.count(b"\r\n") if returns else 0)
    return breaks + (0 if data.endswith((b"\n", b"\r")) else 1)


def check_source_bounds(name: str, data: bytes) -> None:
    """Refuse a module longer than any model file, before anything parses it.

    Args:
        name: the file name, for the message.
        data: the file's bytes.

    Raises:
        SourceRejected: more than `MAX_SOURCE_LINES` lines or `MAX_SOURCE_BYTES` bytes; the
            message states what was found and both limits.
    """
    lines = count_lines(data)
    size = len(data)
    if lines > MAX_SOURCE_LINES:
        raise SourceRejected(
            f"File `{name}` has {lines:,} lines ({size:,} bytes). Expected at most "
            f"{MAX_SOURCE_LINES:,} lines and {MAX_SOURCE_BYTES:,} bytes for a model file."
        )
    if size > MAX_SOURCE_BYTES:
        raise SourceRejected(
            f"File `{name}` is {size:,} bytes ({lines:,} line{'' if lines == 1 else 's'}). "
            f"Expected at most {MAX_SOURCE_BYTES:,} bytes and {MAX_SOURCE_LINES:,} lines for a "
            "model file."
        )


def read_source_file(path: str | Path) -> bytes:
    """A module's bytes, read only once its size is known to be within `check_source_bounds`.

    For a file on disk (the `grade` and `check_model` commands, the build stage): an oversized
    one is refused from its size alone, never read.

    Raises:
        SourceRejected: as `check_source_bounds`.
        OSError: the file cannot be read.
    """
    path = Path(path)
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > MAX_SOURCE_BYTES:
            raise SourceRejected(
                f"File `{path.name}` is {size:,} bytes. Expected at most {MAX_SOURCE_BYTES:,} "
                f"bytes and {MAX_SOURCE_LINES:,} lines for a model file."
            )
        data = handle.read(MAX_SOURCE_BYTES + 1)  # it may have grown since
    check_source_bounds(path.name, data)
    return data


def top_level_functions(name: str, data: bytes) -> list[str]:
    """The names of the functions a module defines at its top level, parsed in a limited child.

    Args:
        name: the file name, for the messages.
        data: the module's bytes; call `check_source_bounds` first.

    Returns:
        The top-level `def` and `async def` names, in order.

    Raises:
        SourceRejected: the file is not UTF-8, not valid Python, or too complex to parse within
            `PARSE_MEMORY_BYTES` and `PARSE_CPU_SECONDS`.
    """
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SourceRejected(
            f"File `{name}` is not UTF-8 text (invalid byte at offset {exc.start:,})."
        ) from exc
    answer = _run_limited(_PARSER, data)
    if "functions" in answer:
        return [str(function) for function in answer["functions"]]
    if "syntax_error" in answer:
        line = answer.get("line")
        where = f" at line {line}" if line else ""
        # A notebook's `%magic` or `!shell` line pasted into a `.py`: say what it is.
        hint = syntax_error_hint(data.decode("utf-8"), line if isinstance(line, int) else None)
        raise SourceRejected(
            f"File `{name}` is not valid Python: {answer['syntax_error']}{where}.{hint}"
        )
    # Nesting past the parser's own limits, or past the child's memory or CPU (it was killed).
    raise SourceRejected(
        f"File `{name}` is too complex to parse: its expressions nest too deeply or there are "
        f"too many of them (more than {PARSE_MEMORY_BYTES // (1024 * 1024):,} MiB or "
        f"{PARSE_CPU_SECONDS:,} s of CPU to parse). Expected ordinary Python source defining "
        "`build_model(input_shape, num_classes)`."
    )


def call_limited(target: str, data: bytes, *args: str) -> dict[str, Any]:
    """Call a pure-Python grader function on untrusted input in a limited child interpreter.

    The child has `PARSE_MEMORY_BYTES` of address space and `PARSE_CPU_SECONDS` of CPU, as the
    `.py` outline (`top_level_functions`): whatever a hostile input makes the function do
    (`ast.parse` of densely packed code, JSON of millions of tiny objects) costs at most that,
    never the memory or the time of the process that asked.

    Args:
        target: ``"module:function"``; the function takes ``(data, *args)`` and returns a
            JSON-ready object. Only modules that import nothing outside the standard library.
        data: the input, given to the child on its standard input.
        args: strings passed on.

    Returns:
        The function's answer, or ``{"too_complex": True}`` when the child hit a limit (or
        raised `RecursionError` or `MemoryError`).

    Raises:
        RuntimeError: the child failed for a reason of its own: the grader's fault.
    """
    return _run_limited(_CALLER, data, (target, *args))


def _run_limited(program: str, data: bytes, args: tuple[str, ...] = ()) -> dict[str, Any]:
    """The child's JSON answer, or ``{"too_complex": True}`` when it ran past a limit.

    Raises:
        RuntimeError: the child failed for a reason of its own (not a limit): the grader's fault,
            never reported as the student's.
    """
    try:
        completed = subprocess.run(
            [sys.executable, "-I", "-S", "-W", "ignore", "-c", _LIMITS + program, *args],
            input=data,
            capture_output=True,
            timeout=PARSE_WALL_SECONDS,
            env={},
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"too_complex": True}
    if completed.returncode == 0:
        try:
            answer = json.loads(completed.stdout)
        except ValueError:
            answer = None
        if isinstance(answer, dict):
            return answer
    stderr = completed.stderr.decode("utf-8", errors="replace")
    # Killed by a signal (SIGXCPU past the CPU limit, SIGKILL), or out of memory outside `parse`.
    if completed.returncode < 0 or "MemoryError" in stderr or "RecursionError" in stderr:
        return {"too_complex": True}
    raise RuntimeError(
        f"The Python parsing child exited with status {completed.returncode}: "
        f"{stderr.strip()[-500:]}"
    )


_MAGIC_LINE = re.compile(r"^\s*(%%?|!)\S")


def syntax_error_hint(source: str, lineno: int | None) -> str:
    """For a `.py` that is not valid Python: say so when the line is a notebook magic.

    Returns:
        A sentence to append to the syntax error ("" when the line is ordinary code).
    """
    if not lineno or lineno < 1:
        return ""
    lines = source.splitlines()
    if lineno > len(lines):
        return ""
    line = lines[lineno - 1].strip()
    if not _MAGIC_LINE.match(line):
        return ""
    what = "a shell command" if line.startswith("!") else "an IPython magic"
    return (
        f" Line {lineno} (`{line[:60]}`) is {what}, which only a notebook runs: remove it "
        "(and the other `%`/`!` lines), or upload the notebook itself (`.ipynb`)."
    )
