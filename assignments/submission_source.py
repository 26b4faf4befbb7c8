"""What the grader read from a `.py` or `.ipynb` submission, for its page.

The notebook's cells that were used (and what was left out of each), and the notes on Keras
1/2 code (`grader.source_hints`), computed from the stored file: the same functions the build
stage uses, so the page shows exactly what was built. The file is only parsed, never run;
results are cached by content hash (the page refreshes itself while grading runs).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from assignments.models import Submission

logger = logging.getLogger(__name__)

CACHE_SIZE = 64
# (sha256, file_format, name) -> report: small dicts, keyed by content, so never stale.
_CACHE: dict[tuple[str, str, str], dict[str, Any] | None] = {}


def _read(file_format: str, name: str, data: bytes) -> dict[str, Any] | None:
    from grader.notebook import InvalidNotebook, extract_notebook
    from grader.source_hints import inspect_source_limited as inspect_source

    notebook = None
    if file_format == Submission.FileFormat.NOTEBOOK:
        try:
            notebook = extract_notebook(data, name)
        except InvalidNotebook:
            return None
        source, where = notebook.source, notebook.where
    else:
        source, where = data.decode("utf-8", errors="replace"), None
    return {
        "notebook": notebook.to_dict() if notebook is not None else None,
        "summary": notebook.summary() if notebook is not None else "",
        "notes": [note.to_dict(where) for note in inspect_source(source)],
    }


def submission_source(submission: Submission) -> dict[str, Any] | None:
    """``{"notebook", "summary", "notes"}`` for a `.py`/`.ipynb` submission, else None."""
    if submission.file_format not in (Submission.FileFormat.PYTHON, Submission.FileFormat.NOTEBOOK):
        return None
    key = (submission.sha256, submission.file_format, submission.original_name)
    if key in _CACHE:
        return _CACHE[key]
    try:
        with submission.file.open("rb") as handle:
            data = handle.read()
    except (OSError, ValueError):
        logger.warning("Submission %s: file not readable for its source report", submission.pk)
        return None
    report = _read(submission.file_format, submission.original_name, data)
    if len(_CACHE) >= CACHE_SIZE:
        # The oldest entry; another request thread may have removed it first.
        with contextlib.suppress(KeyError, RuntimeError, StopIteration):
            _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = report
    return report
