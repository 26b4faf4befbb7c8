"""Stand-in for `IPython` in the build sandbox (see `_nothing`)."""

from _nothing import NOTHING, module_getattr, note_import

__getattr__ = module_getattr


def get_ipython() -> object:
    """No kernel runs here: magics called through it do nothing."""
    return NOTHING


note_import("IPython")
