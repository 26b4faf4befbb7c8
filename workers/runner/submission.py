"""Importing and calling the student's module, with failures turned into verdicts."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

from workers.runner.error_hints import hint_for
from workers.runner.protocol import SubmissionFailure, student_traceback

MODULE_NAME = "submission"
T = TypeVar("T")
#: Stand-ins for notebook-only modules (matplotlib, IPython, google.colab), see `stubs/_nothing`.
STUBS_DIR = Path(__file__).resolve().parent / "stubs"


def call_student(
    error_code: str, what: str, submission: Path, function: Callable[..., T], *args: Any
) -> T:
    """Call student code; any exception (even SystemExit) becomes a `SubmissionFailure`.

    The message starts with `what` ("Calling `build_model(...)`") and carries a traceback of
    the student's own frames only.
    """
    try:
        return function(*args)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # a student's sys.exit() or MemoryError is still their verdict
        detail = student_traceback(exc, exc.__traceback__, submission)
        hint = hint_for(exc)  # "Did you mean ...?", the frameworks the sandbox has
        detail += f"\n{hint}" if hint else ""
        raise SubmissionFailure(error_code, f"{what} raised an exception.\n{detail}") from None


def import_submission(path: Path) -> ModuleType:
    """Import the student's file as module ``submission`` in this (fresh, sandboxed) process."""
    if not path.is_file():
        raise SubmissionFailure("invalid_submission", f"Submission file `{path.name}` is missing.")
    spec = importlib.util.spec_from_file_location(MODULE_NAME, path)
    if spec is None or spec.loader is None:
        raise SubmissionFailure(
            "invalid_submission", f"`{path.name}` cannot be imported as a Python module."
        )
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE_NAME] = module
    # Last on the path: an installed package of the same name wins over its stand-in.
    if str(STUBS_DIR) not in sys.path:
        sys.path.append(str(STUBS_DIR))
    loader = spec.loader
    call_student("build_failed", f"Importing `{path.name}`", path, loader.exec_module, module)
    return module
