"""Stand-in for `matplotlib.pyplot` in the build sandbox (see `_nothing`)."""

from _nothing import module_getattr, subplots

__getattr__ = module_getattr
__all__ = ["subplots"]
