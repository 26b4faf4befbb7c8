"""Stand-in for `google.colab` in the build sandbox (see `_nothing`).

`google` itself stays a namespace package (no ``__init__.py`` here): TensorFlow imports
``google.protobuf`` from the same namespace.
"""

from _nothing import module_getattr, note_import

__getattr__ = module_getattr

note_import("google.colab")
