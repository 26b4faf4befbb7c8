"""Upload checks for Jupyter notebooks and for `.py` files exported from one.

A notebook is read as the grader will build it (`grader.notebook`): the upload is refused when
it is not a notebook or its code cells define no top-level `build_model`, with the same words
as for a `.py`. Nothing in it is run here.
"""

from __future__ import annotations

from grader.notebook import InvalidNotebook, extract_notebook, missing_build_model_message


def notebook_problem(*, name: str, data: bytes) -> str | None:
    """Why a `.ipynb` upload cannot be graded, or None when it can.

    Args:
        name: the uploaded file's name.
        data: its bytes.

    Returns:
        A message naming what was expected (a notebook; `build_model` in a code cell).
    """
    try:
        module = extract_notebook(data, name)
    except InvalidNotebook as exc:
        return exc.message
    if not module.defines_build_model:
        return missing_build_model_message(name, module)
    return None


def syntax_error_hint(source: str, lineno: int | None) -> str:
    """A sentence for a `.py` syntax error on a notebook line (`%magic`, `!shell`), else ""."""
    from grader.source_hints import syntax_error_hint as hint

    return hint(source, lineno)
