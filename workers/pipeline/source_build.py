"""The student's source before and after the build sandbox: notebooks in, explanations out.

Before the sandbox: a ``.py`` upload is the module; a ``.ipynb`` upload becomes one
(`grader.notebook`: the imports and definitions of its code cells; magics, shell lines,
downloads and ``model.fit`` are left out and never run).

After a failed build: the message (the student's exception and traceback) gets what the source
inspection found (`grader.source_hints`: Keras 1/2 spellings and what Keras 3 expects instead,
at their lines), and for a notebook every ``submission.py`` line becomes the notebook's
``cell N, line M``.

Host side; nothing here runs the student's code (the source is parsed by `ast` in a child
interpreter under memory and CPU limits: `grader.python_source.call_limited`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.notebook import NotebookModule
from workers.pipeline.errors import StageFailed

#: Submission file formats whose code runs in the build sandbox.
SOURCE_FORMATS = frozenset({"py", "ipynb"})
#: Failure reasons whose message comes from the student's code (exception, traceback).
EXPLAINED_REASONS = frozenset({"build_error", "invalid_submission"})
MODULE_NAME = "submission.py"


@dataclass(frozen=True)
class PreparedSource:
    """The module the sandbox imports, and where it came from."""

    name: str
    source: str
    notebook: NotebookModule | None = None

    def where(self, line: int) -> str:
        """A line of `source` as the student finds it."""
        return self.notebook.where(line) if self.notebook is not None else f"line {line}"

    def report(self) -> dict[str, Any]:
        """``{"notebook": {...}|None, "notes": [...]}``: what the grader read, for reports."""
        from grader.source_hints import inspect_source_limited as inspect_source

        notes = [note.to_dict(self.where) for note in inspect_source(self.source)]
        return {
            "notebook": self.notebook.to_dict() if self.notebook is not None else None,
            "notes": notes,
        }


def prepare_source(path: Path, file_format: str) -> PreparedSource:
    """Read a `.py` or `.ipynb` upload into the module to build.

    Raises:
        StageFailed: `invalid_submission` for a notebook that cannot be read or defines no
            ``build_model`` (the same words as for a `.py`).
    """
    from grader.errors import GraderError
    from grader.notebook import (
        MAX_NOTEBOOK_BYTES,
        InvalidNotebook,
        extract_notebook,
        missing_build_model_message,
    )
    from grader.python_source import read_source_file

    name = Path(path).name
    if file_format == "py":
        # Within the upload check's bounds (the same words as the site's), never read whole.
        try:
            data = read_source_file(path)
        except GraderError as exc:
            raise StageFailed("invalid_submission", exc.message) from exc
        return PreparedSource(name=name, source=data.decode("utf-8", errors="replace"))
    with open(path, "rb") as handle:
        data = handle.read(MAX_NOTEBOOK_BYTES + 1)  # one byte more: extract_notebook refuses it
    try:
        notebook = extract_notebook(data, name)
    except InvalidNotebook as exc:
        raise StageFailed("invalid_submission", exc.message) from exc
    if not notebook.defines_build_model:
        raise StageFailed("invalid_submission", missing_build_model_message(name, notebook))
    return PreparedSource(name=name, source=notebook.source, notebook=notebook)


_TRACEBACK_LINE = re.compile(r'File "submission\.py", line (\d+)')
_MODULE_MENTION = re.compile(r"`submission\.py`")


def explain_failure(exc: StageFailed, prepared: PreparedSource) -> StageFailed:
    """The same failure, its message followed by what to change (and in notebook terms).

    Args:
        exc: the build stage's failure.
        prepared: the module that was built.

    Returns:
        `exc` itself when there is nothing to add, else a new `StageFailed` (same reason, log).
    """
    if exc.reason not in EXPLAINED_REASONS:
        return exc
    from grader.source_hints import failure_hints
    from grader.source_hints import inspect_source_limited as inspect_source

    message = exc.message
    notebook = prepared.notebook
    if notebook is not None:
        message = _TRACEBACK_LINE.sub(
            lambda m: f'File "{prepared.name}", {notebook.where(int(m.group(1)))}', message
        )
        message = _MODULE_MENTION.sub(f"`{prepared.name}` (its code cells)", message)
    extra = [failure_hints(inspect_source(prepared.source), exc.message, where=prepared.where)]
    if notebook is not None:
        extra.append(notebook.name_error_hint(exc.message))
    added = "\n\n".join(block for block in extra if block)
    if added:
        message = f"{message}\n\n{added}"
    if message == exc.message:
        return exc
    return StageFailed(exc.reason, message, log=exc.log)
