"""Stand-in for `IPython.display` in the build sandbox (see `_nothing`)."""

from _nothing import module_getattr

__getattr__ = module_getattr
