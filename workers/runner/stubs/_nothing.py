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


class Grid(Nothing):
    """The axes of ``plt.subplots(rows, cols)``: unpacks and iterates like matplotlib's array."""

    def __init__(self, rows: int, cols: int) -> None:
        self._rows, self._cols = rows, cols

    def __iter__(self) -> Any:
        if self._rows > 1 and self._cols > 1:
            return iter([Grid(1, self._cols) for _ in range(self._rows)])
        return iter([NOTHING] * max(self._rows, self._cols))

    def __len__(self) -> int:
        return self._rows if self._rows > 1 and self._cols > 1 else max(self._rows, self._cols)

    @property
    def flat(self) -> Any:
        return iter([NOTHING] * (self._rows * self._cols))

    def ravel(self) -> list[Nothing]:
        return [NOTHING] * (self._rows * self._cols)

    flatten = ravel


def subplots(nrows: Any = 1, ncols: Any = 1, *args: Any, **kwargs: Any) -> tuple[Nothing, Any]:
    """``fig, ax = plt.subplots()``, ``fig, (a, b) = plt.subplots(1, 2)``, ``axes[0, 1]``."""
    rows = nrows if isinstance(nrows, int) and 0 < nrows <= 100 else 1
    cols = ncols if isinstance(ncols, int) and 0 < ncols <= 100 else 1
    if rows == cols == 1:
        return NOTHING, NOTHING
    return NOTHING, Grid(rows, cols)


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
