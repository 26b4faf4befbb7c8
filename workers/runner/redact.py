"""Host paths out of what students read: tracebacks, error messages and logs of a stage.

A sandbox mounts the host's interpreter and virtual environment at their host paths (a venv
records absolute paths), so a TensorFlow traceback names e.g. ``/srv/app/.venv/lib/python3.11/
site-packages/keras/...`` and ``/root/.pyenv/versions/3.11.9/lib/python3.11/runpy.py``. None of
that is the student's business, and it describes the grading host. `redact_paths` rewrites such
paths to short labels (``<site-packages>/keras/...``, ``<python>/lib/python3.11/runpy.py``) and
the grader's own code to its path in the repository (``grader/training/trainer.py``); paths
inside the job (``/job/in/...``) stay as they are.

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


def redact_paths(text: str, extra: Iterable[tuple[str, str]] = ()) -> str:
    """`text` with the host's interpreter, library, code and home paths replaced by labels.

    Args:
        text: A traceback, an error message or a log.
        extra: More (path, label) pairs, e.g. the host's jobs directory.

    Returns:
        The text, with ``/abs/prefix/rest`` written ``LABEL/rest`` (the grader's code as
        ``grader/...`` or ``workers/...``).
    """
    if not text:
        return text
    for prefix, label in _expand([*extra, *default_prefixes()]):
        pattern = re.compile(r"(?<![\w.~-])" + re.escape(prefix) + r"(?=/|[\s\"':,)]|$)")
        if label:
            text = pattern.sub(lambda _m, label=label: label, text)
        else:
            # The code root: `.../grader/x.py` reads `grader/x.py`.
            text = re.sub(r"(?<![\w.~-])" + re.escape(prefix) + "/", "", text)
    text = _ANY_SITE_PACKAGES.sub(SITE_PACKAGES, text)
    return _ANY_HOME.sub(HOME, text)
