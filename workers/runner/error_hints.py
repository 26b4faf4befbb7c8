"""One sentence of help after the build errors students meet most, computed in the sandbox.

- A module the sandbox does not have (``No module named 'torch'``): which deep-learning
  frameworks it does have, with their versions, read from the installed distributions here.
- A name that does not exist (``keras.layers.SeperableConv2D``, ``from keras.layers import
  Conv2d``, an undefined name): the closest existing name ("Did you mean
  `keras.layers.SeparableConv2D`?"), as Python 3.12's own tracebacks suggest.

Standard library only (the runner imports it inside the sandbox), and nothing is imported to
find the answer: a module that is not loaded is reported, never loaded.
"""

from __future__ import annotations

import builtins
import difflib
import importlib.metadata
import re
import sys
from types import ModuleType, TracebackType

#: The frameworks a student may reach for: their names, and the distributions that install them.
FRAMEWORKS = (
    ("Keras", ("keras", "keras-nightly")),
    ("TensorFlow", ("tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tf-nightly")),
    ("PyTorch", ("torch",)),
    ("JAX", ("jax",)),
    ("NumPy", ("numpy",)),
)
_CANNOT_IMPORT = re.compile(r"cannot import name '([^']+)' from '([^']+)'")


def available_frameworks() -> list[str]:
    """`Keras 3.15.1`, `TensorFlow 2.21.0`, ...: the frameworks installed in this environment."""
    found = []
    for label, distributions in FRAMEWORKS:
        for distribution in distributions:
            try:
                found.append(f"{label} {importlib.metadata.version(distribution)}")
            except importlib.metadata.PackageNotFoundError:
                continue
            break
    return found


def _closest(name: str, candidates: list[str]) -> str | None:
    public = [c for c in candidates if not c.startswith("_")]
    by_case = [c for c in public if c.lower() == name.lower()]
    if by_case:
        return by_case[0]
    close = difflib.get_close_matches(name, public, n=1, cutoff=0.75)
    return close[0] if close else None


def _missing_module(exc: ModuleNotFoundError) -> str:
    top = (exc.name or "").split(".")[0]
    if not top or top in sys.modules:
        return ""
    have = available_frameworks()
    listed = ", ".join(have) if have else "no deep-learning framework"
    return (
        f"`{top}` is not installed in the grader's sandbox. It has {listed}: build the model "
        "with Keras (`import keras`)."
    )


def _in_module(module_name: str, name: str) -> str:
    module = sys.modules.get(module_name)
    if not isinstance(module, ModuleType):
        return ""
    suggestion = _closest(name, dir(module))
    return f"Did you mean `{module_name}.{suggestion}`?" if suggestion else ""


def _last_frame_names(tb: TracebackType | None) -> list[str]:
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return list(vars(builtins))
    frame = tb.tb_frame
    return [*frame.f_locals, *frame.f_globals, *vars(builtins)]


def hint_for(exc: BaseException) -> str:
    """A sentence that helps with `exc`, or "" when there is nothing useful to add.

    Never raises: the exception is the student's (its `__str__` or attributes may be their
    code); a hint that cannot be computed is left out, the verdict stands.
    """
    try:
        return _hint(exc)
    except Exception:  # the student's exception: see above
        return ""


def _hint(exc: BaseException) -> str:
    if isinstance(exc, ModuleNotFoundError):
        return _missing_module(exc)
    if isinstance(exc, ImportError):
        match = _CANNOT_IMPORT.search(str(exc))
        return _in_module(match.group(2), match.group(1)) if match else ""
    if isinstance(exc, AttributeError):
        name, owner = getattr(exc, "name", None), getattr(exc, "obj", None)
        if isinstance(name, str) and isinstance(owner, ModuleType):
            return _in_module(owner.__name__, name)
        return ""
    if isinstance(exc, NameError):
        name = getattr(exc, "name", None)
        if isinstance(name, str):
            suggestion = _closest(name, _last_frame_names(exc.__traceback__))
            return f"Did you mean `{suggestion}`?" if suggestion and suggestion != name else ""
    return ""
