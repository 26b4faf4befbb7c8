"""Read a student's Python source (without running it) for Keras 1/2 code and notebook leftovers.

Students copy from notebooks and tutorials written for Keras 1 and 2. Keras 3 then either fails
with a message that says what broke but not what to write instead ("Unrecognized keyword
arguments passed to Conv2D: {'border_mode': 'same'}"), or, worse, accepts the code and reads it
differently: ``SeparableConv2D(32, 3, 3)`` was a 3x3 kernel in Keras 1 and is a kernel of 3 with
**strides 3** in Keras 3, which collapses the feature maps a few layers later or is graded as a
different architecture. `inspect_source` finds such spots with `ast` and says, at each line,
what Keras 3 expects (the renames come from `grader.keras_renames`, one tested table).

The source is untrusted: it is only parsed, never compiled or run, and the work is bounded
(`MAX_SOURCE_CHARS`, `MAX_NOTES`); a source that cannot be parsed yields no notes, never an
error. Outside a sandbox, `inspect_source_limited` does the parsing in a child interpreter under
the upload check's memory and CPU limits. No Django, no Keras.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from grader.keras_renames import (
    NAMES_BY_NAME,
    STRIDES_POSITION,
    keyword_rename,
    module_rename,
    normalize_module,
)
from grader.python_source import call_limited
from grader.python_source import syntax_error_hint as syntax_error_hint  # re-exported

#: Sources longer than this are not inspected: a course model is a few hundred lines (10-40 kB),
#: and parsing costs about 1 s per 200 kB on a busy core (the page computes notes too).
MAX_SOURCE_CHARS = 256 * 1024
#: At most this many notes are kept (and shown).
MAX_NOTES = 50
#: How much of a call's source a message quotes.
MAX_QUOTE_CHARS = 80

ERROR = "error"  # fails under Keras 3
CHANGED = "changed"  # runs under Keras 3, with another meaning
NOTE = "note"  # works, but reads as Keras 1/2 or a notebook leftover

#: Modules the build sandbox provides, besides Python's standard library (the grader's venv).
SANDBOX_MODULES = ("numpy", "scipy", "keras", "tensorflow")
#: Modules the build sandbox replaces by stand-ins whose functions do nothing
#: (`workers/runner/stubs`), so that the imports at the top of a notebook export do not fail.
STUB_MODULES = ("matplotlib", "IPython", "google.colab")
STUBS_SENTENCE = (
    "`matplotlib`, `IPython` and `google.colab` are stand-ins there whose functions do nothing"
)

# Names a Keras object is usually reached through: `layers.Conv2D`, `keras.optimizers.adam`.
_KERAS_ROOTS = frozenset({"keras", "tf", "tensorflow", "layers", "optimizers", "K", "backend"})
# Removed names that are ordinary words elsewhere: flagged only when clearly Keras'.
_GENERIC_NAMES = frozenset(
    {"merge", "sgd", "adam", "rmsprop", "adagrad", "adadelta", "adamax", "nadam", "np_utils"}
)


@dataclass(frozen=True)
class SourceNote:
    """One spot in the source and what Keras 3 expects there.

    Attributes:
        line: 1-based line in the inspected source.
        topic: what the note is about: ``positional_strides``, ``keyword``, ``module``,
            ``name``, ``notebook`` (the key ``kind`` in `to_dict`).
        severity: `ERROR` (fails under Keras 3), `CHANGED` (runs, means something else) or
            `NOTE`.
        token: what was found (``border_mode``, ``keras.layers.convolutional``,
            ``Conv2D``), used to relate the note to an error message.
        message: the sentence, without the location.
    """

    line: int
    topic: str
    severity: str
    token: str
    message: str

    def format(self, where: Callable[[int], str] | None = None) -> str:
        """``line 7: ...`` (or the location `where` gives for the line)."""
        place = where(self.line) if where is not None else f"line {self.line}"
        return f"{place}: {self.message}"

    def to_dict(self, where: Callable[[int], str] | None = None) -> dict[str, object]:
        """``{"line", "where", "kind", "severity", "message"}`` for reports and pages."""
        return {
            "line": self.line,
            "where": where(self.line) if where is not None else f"line {self.line}",
            "kind": self.topic,
            "severity": self.severity,
            "message": self.message,
        }


def parse_source(source: str) -> ast.Module | None:
    """The module's syntax tree, or None when it is too large or not valid Python."""
    if len(source) > MAX_SOURCE_CHARS:
        return None
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
        return None


def inspect_source_limited(source: str) -> list[SourceNote]:
    """`inspect_source` in a limited child interpreter (`grader.python_source.call_limited`).

    For the web process and the worker's host: a source that is costly to parse yields no
    notes there instead of costing their memory or time.

    Args:
        source: a student's module (or the module extracted from a notebook).

    Returns:
        As `inspect_source`; none when the child ran past its limits.
    """
    if len(source) > MAX_SOURCE_CHARS:
        return []  # inspect_source parses nothing this long either
    answer = call_limited("grader.source_hints:_inspect_answer", source.encode("utf-8"))
    return [SourceNote(**note) for note in answer.get("notes", [])]


def _inspect_answer(data: bytes) -> dict[str, Any]:
    """In the limited child: `inspect_source`'s notes as JSON."""
    notes = inspect_source(data.decode("utf-8"))
    return {"notes": [dataclasses.asdict(note) for note in notes]}


def inspect_source(source: str) -> list[SourceNote]:
    """Every Keras 1/2 spelling and notebook leftover in `source`, in line order.

    Args:
        source: a student's module (or the module extracted from a notebook).

    Returns:
        At most `MAX_NOTES` notes; none for a source that cannot be parsed.
    """
    tree = parse_source(source)
    if tree is None:
        return []
    lines = source.splitlines()
    nodes = list(ast.walk(tree))
    imported = _names_imported_from_keras(nodes)
    notes: list[SourceNote] = []
    for node in nodes:
        if isinstance(node, ast.Import):
            notes.extend(_import_notes(node))
        elif isinstance(node, ast.ImportFrom):
            notes.extend(_import_from_notes(node))
        elif isinstance(node, ast.Call):
            notes.extend(_call_notes(node, lines, imported))
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            note = _attribute_module_note(node)
            if note is not None:
                notes.append(note)
        if len(notes) >= 4 * MAX_NOTES:
            break
    return _unique(notes)[:MAX_NOTES]


def _unique(notes: Iterable[SourceNote]) -> list[SourceNote]:
    seen: set[tuple[int, str, str]] = set()
    kept = []
    for note in sorted(notes, key=lambda n: (n.line, n.topic != "positional_strides", n.token)):
        key = (note.line, note.topic, note.token)
        if key not in seen:
            seen.add(key)
            kept.append(note)
    return kept


# --- imports ---------------------------------------------------------------------------------


def _module_note(line: int, module: str) -> SourceNote | None:
    rename = module_rename(module)
    if rename is not None:
        if rename.example_new:
            fix = f"import from `{rename.new}` instead (`{rename.example_new}`)."
        else:
            fix = f"it has {rename.new}."
        return SourceNote(
            line,
            "module",
            ERROR,
            module,
            f"`{module}` is a Keras 1/2 module that Keras 3 does not have: {fix}",
        )
    root = normalize_module(module)
    for stub in STUB_MODULES:
        if root == stub or root.startswith(stub + "."):
            return SourceNote(
                line,
                "notebook",
                NOTE,
                stub,
                f"`{module}` is a notebook module: the grader has no display and no Google "
                f"Drive; {STUBS_SENTENCE}. Plots are not graded: you can remove it.",
            )
    return None


def _import_notes(node: ast.Import) -> list[SourceNote]:
    return [n for alias in node.names if (n := _module_note(node.lineno, alias.name)) is not None]


def _import_from_notes(node: ast.ImportFrom) -> list[SourceNote]:
    if node.level or not node.module:
        return []
    module = node.module
    note = _module_note(node.lineno, module)
    if note is not None:
        return [note]
    notes = []
    keras_module = normalize_module(module).split(".")[0] == "keras"
    for alias in node.names:
        sub = _module_note(node.lineno, f"{module}.{alias.name}")
        if sub is not None and sub.topic == "module":
            notes.append(sub)
            continue
        rename = NAMES_BY_NAME.get(alias.name)
        if rename is not None and keras_module and rename.rename_type != "method":
            notes.append(_name_note(node.lineno, alias.name))
    return notes


def _names_imported_from_keras(nodes: list[ast.AST]) -> set[str]:
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            if normalize_module(node.module).split(".")[0] == "keras":
                names.update(alias.asname or alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if normalize_module(alias.name).split(".")[0] in {"keras", "tensorflow"}:
                    names.add((alias.asname or alias.name).split(".")[0])
    return names


def _dotted(node: ast.expr) -> str | None:
    """``keras.layers.Conv2D`` for an attribute chain on a name, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def _attribute_module_note(node: ast.Attribute) -> SourceNote | None:
    """``keras.utils.np_utils.to_categorical(...)``: a removed module reached by attributes."""
    dotted = _dotted(node)
    if dotted is None or "." not in dotted:
        return None
    head = normalize_module(dotted).split(".")[0]
    if head != "keras" and not dotted.startswith("tensorflow.python.keras"):
        return None
    rename = module_rename(dotted)
    if rename is None:
        return None
    # Report the module itself, once per line, however long the chain.
    return _module_note(node.lineno, rename.old if rename.old in dotted else dotted)


# --- calls -----------------------------------------------------------------------------------


def _callee(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return None


def _quote(lines: list[str], node: ast.AST) -> str:
    """The source of `node` on one line, shortened to `MAX_QUOTE_CHARS`."""
    try:
        start, end = node.lineno, node.end_lineno or node.lineno  # type: ignore[attr-defined]
        col, end_col = node.col_offset, node.end_col_offset  # type: ignore[attr-defined]
        if start == end:
            text = _utf8_slice(lines[start - 1], col, end_col)
        else:
            chunk = [_utf8_slice(lines[start - 1], col, None)]
            chunk += lines[start : end - 1]
            chunk.append(_utf8_slice(lines[end - 1], 0, end_col))
            text = " ".join(part.strip() for part in chunk)
    except (IndexError, AttributeError, TypeError):
        return "..."
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= MAX_QUOTE_CHARS else text[: MAX_QUOTE_CHARS - 3] + "..."


def _utf8_slice(line: str, start: int, end: int | None) -> str:
    """`ast` column offsets count UTF-8 bytes, not characters."""
    data = line.encode("utf-8")
    return data[start:end].decode("utf-8", errors="replace")


def _is_keras_reference(func: ast.expr, imported: set[str]) -> bool:
    if isinstance(func, ast.Name):
        return func.id in imported
    dotted = _dotted(func)
    if dotted is None:
        return False
    return bool(set(dotted.split(".")[:-1]) & (_KERAS_ROOTS | imported))


def _call_notes(node: ast.Call, lines: list[str], imported: set[str]) -> list[SourceNote]:
    callee = _callee(node)
    if callee is None:
        return []
    notes: list[SourceNote] = []
    strides = _positional_strides_note(node, callee, lines)
    if strides is not None:
        notes.append(strides)
    for keyword in node.keywords:
        if keyword.arg is None:
            continue
        rename = keyword_rename(keyword.arg, callee)
        if rename is None:
            continue
        extra = f" {rename.note}" if rename.note else ""
        notes.append(
            SourceNote(
                keyword.lineno,
                "keyword",
                CHANGED if keyword.arg == "decay" else ERROR,
                keyword.arg,
                f"`{callee}(..., {keyword.arg}=...)`: `{keyword.arg}=` is the Keras 1/2 "
                f"spelling; Keras 3 takes `{rename.new}`.{extra}",
            )
        )
    name_rename = NAMES_BY_NAME.get(callee)
    # An alias needs no note of its own when the strides note already writes its Keras 3 name.
    if name_rename is not None and not (strides is not None and name_rename.rename_type == "alias"):
        if name_rename.rename_type == "method":
            if isinstance(node.func, ast.Attribute):
                notes.append(_name_note(node.lineno, callee))
        elif callee not in _GENERIC_NAMES or _is_keras_reference(node.func, imported):
            notes.append(_name_note(node.lineno, callee))
    if callee == "get_ipython" and isinstance(node.func, ast.Name):
        notes.append(
            SourceNote(
                node.lineno,
                "notebook",
                ERROR,
                "get_ipython",
                "`get_ipython()` exists only inside Jupyter/IPython (it is how a notebook "
                "export writes `%magic` and `!shell` lines): remove the line.",
            )
        )
    return notes


def _name_note(line: int, name: str) -> SourceNote:
    rename = NAMES_BY_NAME[name]
    if rename.rename_type == "alias":
        return SourceNote(
            line,
            "name",
            NOTE,
            name,
            f"`{name}` is the Keras 1 name of `{rename.new}` (Keras 3 still accepts it; its "
            "arguments are Keras 3's).",
        )
    if rename.rename_type == "method":
        return SourceNote(
            line,
            "name",
            ERROR,
            name,
            f"`model.{name}(...)` was removed in Keras 3: use {rename.new}.",
        )
    return SourceNote(
        line,
        "name",
        ERROR,
        name,
        f"`{name}` is Keras 1/2 and gone from Keras 3: use {rename.new}.",
    )


def _int_literal(node: ast.expr) -> int | None:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    return None


_ORDINALS = {1: "second", 2: "third"}


def _positional_strides_note(node: ast.Call, callee: str, lines: list[str]) -> SourceNote | None:
    position = STRIDES_POSITION.get(callee)
    if position is None:
        return None
    positional = [arg for arg in node.args if not isinstance(arg, ast.Starred)]
    if len(positional) != len(node.args) or len(positional) <= position:
        return None
    renamed = NAMES_BY_NAME.get(callee)
    keras3 = callee
    if renamed is not None:
        # The fix names the Keras 3 class (`Conv2D` for `Convolution2D`, `Conv2DTranspose`
        # for `Deconvolution2D`).
        keras3 = re.split(r"[^\w]", renamed.new, maxsplit=1)[0] or callee
    call = _quote(lines, node)
    strides_node = positional[position]
    strides_text = _quote(lines, strides_node)
    ordinal = _ORDINALS[position]
    kernel_node = positional[position - 1]
    lead = [_quote(lines, arg) for arg in positional[: position - 1]]
    kernel_value, strides_value = _int_literal(kernel_node), _int_literal(strides_node)
    if kernel_value is not None and strides_value is not None and "2D" in callee:
        # Keras 1's Convolution2D(nb_filter, nb_row, nb_col): these two numbers were the kernel.
        kernel = f"({kernel_value}, {strides_value})"
        rest = _rest_of_call(node, positional[position + 1 :], lines)
        written = _call_text(keras3, [*lead, kernel], rest)
        size = f"{kernel_value}x{strides_value}"
        if kernel_value == strides_value:
            fix = (
                f"For a {size} kernel write `{written}`; give strides by name "
                f"(`strides=2`) when you want them."
            )
        else:
            strided = _call_text(
                keras3, [*lead, str(kernel_value), f"strides={strides_value}"], rest
            )
            fix = (
                f"For a {size} kernel (Keras 1) write `{written}`; for strides "
                f"{strides_value} write `{strided}`."
            )
        return SourceNote(
            node.lineno,
            "positional_strides",
            CHANGED,
            "strides",
            f"`{call}`: in Keras 3 the {ordinal} positional argument is `strides`, so this "
            f"layer has a {kernel_value}x{kernel_value} kernel moving {strides_value} "
            f"pixel{'' if strides_value == 1 else 's'} at a time (`{kernel_value}, "
            f"{strides_value}` reads like Keras 1's rows and columns of a {size} kernel). " + fix,
        )
    return SourceNote(
        node.lineno,
        "positional_strides",
        NOTE,
        "strides",
        f"`{call}`: the {ordinal} positional argument ({strides_text}) is `strides` in Keras 3; "
        f"write `strides={strides_text}` by name so that it reads as intended.",
    )


def _rest_of_call(node: ast.Call, positional: list[ast.expr], lines: list[str]) -> list[str]:
    """The call's other arguments as written, Keras 1 keywords in their Keras 3 spelling."""
    rest = [_quote(lines, arg) for arg in positional]
    callee = _callee(node)
    for keyword in node.keywords:
        value = _quote(lines, keyword.value)
        if keyword.arg is None:
            rest.append(f"**{value}")
            continue
        rename = keyword_rename(keyword.arg, callee)
        name = keyword.arg
        if rename is not None and re.fullmatch(r"\w+=", rename.new):
            name = rename.new[:-1]
        rest.append(f"{name}={value}")
    return rest


def _call_text(callee: str, arguments: list[str], rest: list[str]) -> str:
    """``Conv2D(16, (3, 3), padding="same")``, or with ``...`` for the rest when too long."""
    full = f"{callee}({', '.join([*arguments, *rest])})"
    if len(full) <= MAX_QUOTE_CHARS or not rest:
        return full
    return f"{callee}({', '.join([*arguments, '...'])})"


# --- messages --------------------------------------------------------------------------------

_MISSING_MODULE = re.compile(r"No module named '([\w.]+)'")
_COLLAPSE_WORDS = ("zero or negative", "negative dimension", "Negative dimension", "too small")


def missing_module_hint(message: str) -> str | None:
    """What the sandbox provides, for a ``No module named 'x'`` failure that no rename explains."""
    match = _MISSING_MODULE.search(message)
    if match is None:
        return None
    module = match.group(1)
    if module_rename(module) is not None:
        return None
    provided = ", ".join(f"`{name}`" for name in SANDBOX_MODULES)
    return (
        f"The grader's sandbox has no module `{module}`. It provides Python's standard "
        f"library, {provided}; {STUBS_SENTENCE}. `build_model` needs only Keras: remove the "
        f"import of `{module}` (or move it into code that `build_model` does not run)."
    )


def failure_hints(
    notes: list[SourceNote],
    message: str,
    *,
    where: Callable[[int], str] | None = None,
    limit: int = 10,
) -> str:
    """The notes worth reading after a build failed with `message`, most relevant first.

    Args:
        notes: `inspect_source` of the failing module.
        message: the failure message (exception and traceback).
        where: formats a line as a location (``cell 3, line 2`` for notebooks).
        limit: at most this many notes are listed.

    Returns:
        A block to append to the message ("" when there is nothing to say).
    """

    def rank(note: SourceNote) -> int:
        if note.severity == NOTE:
            return 2
        if note.token and note.token in message:
            return 0
        if note.topic == "positional_strides" and any(w in message for w in _COLLAPSE_WORDS):
            return 0
        return 1 if note.severity in (ERROR, CHANGED) else 2

    relevant = [n for n in notes if rank(n) < 2 or (n.topic == "notebook" and n.token in message)]
    relevant.sort(key=lambda n: (rank(n), n.line))
    blocks = []
    if relevant:
        listed = [f"- {note.format(where)}" for note in relevant[:limit]]
        if len(relevant) > limit:
            listed.append(f"- and {len(relevant) - limit} more.")
        blocks.append(
            "Code written for Keras 1 or 2 (the grader runs Keras 3):\n" + "\n".join(listed)
        )
    missing = missing_module_hint(message)
    if missing is not None:
        blocks.append(missing)
    return "\n\n".join(blocks)
