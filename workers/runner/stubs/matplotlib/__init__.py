"""Stand-in for `matplotlib` in the build sandbox (see `_nothing`)."""

from _nothing import module_getattr, note_import

__getattr__ = module_getattr
__version__ = "0+grader-stub"


def use(*args: object, **kwargs: object) -> None:
    """``matplotlib.use("Agg")``: nothing to choose."""


note_import("matplotlib")
