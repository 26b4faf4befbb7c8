"""A stand-in that accepts any use and does nothing: the body of the notebook-module stubs.

The build sandbox has no display, no notebook kernel and no Google Drive. Notebook exports
start with ``import matplotlib.pyplot as plt``, ``from IPython.display import display`` or
``from google.colab import drive``; with these stubs on the path (last, so a real installed
package wins) such imports succeed and plotting or display calls do nothing, so only the code
that builds the model matters. Reading a file from a mounted Drive still fails: nothing is there.
"""

from __future__ import annotations

import sys
from typing import Any


class Nothing:
    """Any attribute, call, index or context is another `Nothing`; iterating yields nothing."""

    def __getattr__(self, name: str) -> Nothing:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return NOTHING

    def __call__(self, *args: Any, **kwargs: Any) -> Nothing:
        return NOTHING

    def __getitem__(self, key: Any) -> Nothing:
        return NOTHING

    def __setitem__(self, key: Any, value: Any) -> None:
        return None

    def __iter__(self) -> Any:
        return iter(())

    def __enter__(self) -> Nothing:
        return NOTHING

    def __exit__(self, *exc: Any) -> bool:
        return False

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "<stand-in: does nothing in the grader>"


NOTHING = Nothing()


def subplots(*args: Any, **kwargs: Any) -> tuple[Nothing, Nothing]:
    """``fig, ax = plt.subplots(...)`` unpacks."""
    return NOTHING, NOTHING


def module_getattr(name: str) -> Any:
    """A module-level ``__getattr__``: every name of a stub module is `NOTHING`."""
    if name.startswith("__") and name.endswith("__"):
        raise AttributeError(name)
    return NOTHING


def note_import(module: str) -> None:
    """One line on stderr (the build log), so the student sees the stub was used."""
    print(
        f"[grader] `{module}` is a stand-in in the grader's sandbox: its functions do nothing.",
        file=sys.stderr,
    )
