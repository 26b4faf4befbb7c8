"""Keras 1 and 2 spellings and what Keras 3 calls them: one table, read by the source hints.

Students copy code from notebooks and tutorials written for Keras 1 (2015-2017) and Keras 2
(2017-2023). Keras 3 refuses most of the old spellings with a message that says what broke
("Unrecognized keyword arguments passed to Conv2D: {'border_mode': 'same'}") but not what to
write instead; a few it accepts and silently reads differently. Each entry here names the old
spelling, the Keras 3 one, and a worked example of both, which the tests run through Keras 3
(the old one must fail or be ignored, the new one must work), so the table cannot go stale.

Pure data: no Keras import.
"""

from __future__ import annotations

from grader.keras_renames.keywords import KEYWORDS
from grader.keras_renames.modules import MODULES
from grader.keras_renames.names import NAMES
from grader.keras_renames.records import (
    CONV_LAYERS,
    DROPOUT_LAYERS,
    FIT_METHODS,
    KERNEL_LAYERS,
    OPTIMIZERS,
    POOLING_LAYERS,
    STRIDES_POSITION,
    KeywordRename,
    ModuleRename,
    NameRename,
)

__all__ = [
    "CONV_LAYERS",
    "DROPOUT_LAYERS",
    "FIT_METHODS",
    "KERNEL_LAYERS",
    "KEYWORDS",
    "KEYWORDS_BY_NAME",
    "MODULES",
    "NAMES",
    "NAMES_BY_NAME",
    "OPTIMIZERS",
    "POOLING_LAYERS",
    "STRIDES_POSITION",
    "KeywordRename",
    "ModuleRename",
    "NameRename",
    "keyword_rename",
    "module_rename",
    "normalize_module",
]

KEYWORDS_BY_NAME: dict[str, KeywordRename] = {rename.old: rename for rename in KEYWORDS}
NAMES_BY_NAME: dict[str, NameRename] = {rename.old: rename for rename in NAMES}


def normalize_module(module: str) -> str:
    """``tensorflow.keras.x`` and ``tf.keras.x`` read as ``keras.x`` (TensorFlow 2.16+ re-exports
    Keras 3 there); other names unchanged."""
    for prefix in ("tensorflow.keras", "tf.keras"):
        if module == prefix or module.startswith(prefix + "."):
            return "keras" + module[len(prefix) :]
    return module


def module_rename(module: str) -> ModuleRename | None:
    """The rename for a module (or one of its submodules), or None if Keras 3 has it."""
    if module.startswith("tensorflow.python.keras"):
        return next(r for r in MODULES if r.old == "tensorflow.python.keras")
    normalized = normalize_module(module)
    best: ModuleRename | None = None
    for rename in MODULES:
        matches = normalized == rename.old or normalized.startswith(rename.old + ".")
        # The longest match wins (a module and one of its submodules both listed).
        if matches and (best is None or len(rename.old) > len(best.old)):
            best = rename
    return best


def keyword_rename(keyword: str, callee: str | None) -> KeywordRename | None:
    """The rename for a keyword passed to `callee` (the call's last name), if it applies."""
    rename = KEYWORDS_BY_NAME.get(keyword)
    if rename is None:
        return None
    if rename.applies_to is not None and callee not in rename.applies_to:
        return None
    return rename
