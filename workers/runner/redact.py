"""Host paths and terminal codes out of what students read: tracebacks, messages, stage logs.

A sandbox mounts the host's interpreter and virtual environment at their host paths (a venv
records absolute paths), so a TensorFlow traceback names e.g. ``/srv/app/.venv/lib/python3.11/
site-packages/keras/...`` and ``/root/.pyenv/versions/3.11.9/lib/python3.11/runpy.py``. None of
that is the student's business, and it describes the grading host. `redact_paths` rewrites such
paths to short labels (``<site-packages>/keras/...``, ``<python>/lib/python3.11/runpy.py``) and
the grader's own code to its path in the repository (``grader/training/trainer.py``); paths
inside the job (``/job/in/...``) stay as they are.

Keras 3 writes some messages for a terminal (``\x1b[1mInput 0 of layer 'dense' is
incompatible ...\x1b[0m``): `strip_terminal_codes` removes such escape sequences and other
control characters, which a web page or a JSON reader would show as garbage.

Standard library only: the runner imports it inside the sandbox, the workers on the host.
"""

from __future__ import annotations

import contextlib
import re
import site
import sys
import sysconfig
from collections.abc import Iterable
from pathlib import Path

SITE_PACKAGES = "<site-packages>"
PYTHON = "<python>"
VENV = "<venv>"
HOME = "~"

# Where the sandbox mounts the grader's code (`workers.sandbox.environment.CODE_TARGET`).
CODE_TARGET = "/opt/grader-code"
PROJECT_ROOT = str(Path(__file__).resolve().parents[2])

# Too general to stand for "the interpreter": a system Python has its prefix at /usr.
_TOO_GENERAL = {"", "/", "/usr", "/usr/local", "/opt"}

# What is left once the known prefixes are replaced: any site-packages, any home directory.
_ANY_SITE_PACKAGES = re.compile(r"(?:/[^/\s\"'<>:]+)+/(?:site|dist)-packages(?=/)")
_ANY_HOME = re.compile(r"(?<![\w.~-])/(?:root|home/[^/\s\"'<>:]+)(?=/)")


def _site_dirs() -> list[str]:
    dirs = [sysconfig.get_paths().get(key, "") for key in ("purelib", "platlib")]
    with contextlib.suppress(AttributeError):  # old virtualenvs lack it
        dirs.extend(site.getsitepackages())
    return dirs


def default_prefixes() -> list[tuple[str, str]]:
    """The (path, label) pairs of this interpreter and this code, as `redact_paths` uses them."""
    venv = sys.prefix != sys.base_prefix
    pairs: list[tuple[str, str]] = [(d, SITE_PACKAGES) for d in _site_dirs()]
    pairs += [
        (sys.prefix, VENV if venv else PYTHON),
        (sys.exec_prefix, VENV if venv else PYTHON),
        (sys.base_prefix, PYTHON),
        (sys.base_exec_prefix, PYTHON),
        (PROJECT_ROOT, ""),
        (CODE_TARGET, ""),
    ]
    return pairs


def _expand(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Each path as given and resolved (symlinks), without generic ones, longest first."""
    seen: dict[str, str] = {}
    for path, label in pairs:
        for variant in {str(path).rstrip("/"), str(Path(path).resolve()) if path else ""}:
            if variant not in _TOO_GENERAL and variant not in seen:
                seen[variant] = label
    return sorted(seen.items(), key=lambda item: len(item[0]), reverse=True)


# ECMA-48: CSI (`ESC [ ... final`, also the 8-bit `\x9b`), OSC (`ESC ] ... BEL|ST`, e.g.
# hyperlinks), and two-character escapes; then C0/C1 controls but tab and newline.
_TERMINAL_CODES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
    r"|(?:\x1b\]|\x9d)[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[@-Z\\-_]?"
    r"|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"
)


def strip_terminal_codes(text: str) -> str:
    """`text` without terminal escape sequences and control characters (tab, newline kept).

    A carriage return that is not part of a line break starts a new line (progress bars
    redraw a line with it).
    """
    if not text:
        return text
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _TERMINAL_CODES.sub("", text)


def redact_paths(text: str, extra: Iterable[tuple[str, str]] = ()) -> str:
    """`text` with the host's interpreter, library, code and home paths replaced by labels.

    Args:
        text: A traceback, an error message or a log.
        extra: More (path, label) pairs, e.g. the host's jobs directory.

    Returns:
        The text, with ``/abs/prefix/rest`` written ``LABEL/rest`` (the grader's code as
        ``grader/...`` or ``workers/...``), and without terminal codes
        (`strip_terminal_codes`).
    """
    if not text:
        return text
    text = strip_terminal_codes(text)
    for prefix, label in _expand([*extra, *default_prefixes()]):
        pattern = re.compile(r"(?<![\w.~-])" + re.escape(prefix) + r"(?=/|[\s\"':,)]|$)")
        if label:
            text = pattern.sub(lambda _m, label=label: label, text)
        else:
            # The code root: `.../grader/x.py` reads `grader/x.py`.
            text = re.sub(r"(?<![\w.~-])" + re.escape(prefix) + "/", "", text)
    text = _ANY_SITE_PACKAGES.sub(SITE_PACKAGES, text)
    return _ANY_HOME.sub(HOME, text)
