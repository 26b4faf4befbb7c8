#!/usr/bin/env bash
# Create `.venv/` (Python 3.11) in the repository root and install the pinned dependencies.
#
# Idempotent and cheap the second time: the SHA-256 of the requirement files and the interpreter
# version is stored in `.venv/.requirements.sha256`; when it matches, nothing is installed.
# Installs `requirements/dev.txt` (which includes base.txt) constrained by constraints.txt, so
# every machine gets the same versions.
#
# Environment: PYTHON (an interpreter to build the venv with; default: python3.11, or python3 when
# it is 3.11), VENV_DIR (default: .venv in the repository root).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV_DIR="${VENV_DIR:-$ROOT/.venv}"
STAMP="$VENV_DIR/.requirements.sha256"

log() { printf '[setup] %s\n' "$*"; }

is_python311() {
    "$1" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' 2>/dev/null
}

find_python() {
    if [ -n "${PYTHON:-}" ]; then
        if is_python311 "$PYTHON"; then echo "$PYTHON"; return 0; fi
        echo "PYTHON=$PYTHON is not Python 3.11." >&2
        return 1
    fi
    local candidate
    for candidate in python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 && is_python311 "$candidate"; then
            command -v "$candidate"
            return 0
        fi
    done
    # Debian 12's python3 is 3.11: install it (with venv support) when we are allowed to.
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        log "Python 3.11 not found: installing Debian's python3 and python3-venv" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get -o DPkg::Lock::Timeout=300 update -qq >&2
        apt-get -o DPkg::Lock::Timeout=300 install -y -qq python3 python3-venv >&2
        if is_python311 python3; then command -v python3; return 0; fi
    fi
    echo "Python 3.11 is required: install it (Debian 12: apt-get install python3 python3-venv)" \
        "or point PYTHON at a 3.11 interpreter." >&2
    return 1
}

requirements_hash() {
    # The interpreter's version is part of the hash: a new Python needs a fresh install.
    {
        cat requirements/base.txt requirements/dev.txt requirements/constraints.txt
        "$VENV_DIR/bin/python" -c 'import sys; print(sys.version)'
    } | sha256sum | cut -d' ' -f1
}

if [ ! -x "$VENV_DIR/bin/python" ] || ! is_python311 "$VENV_DIR/bin/python"; then
    PY="$(find_python)"
    log "creating $VENV_DIR with $PY ($("$PY" --version 2>&1))"
    rm -rf "$VENV_DIR"
    if ! "$PY" -m venv "$VENV_DIR"; then
        # Debian ships venv support (ensurepip) separately from python3.
        if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
            log "venv support missing: installing Debian's python3-venv"
            rm -rf "$VENV_DIR"
            export DEBIAN_FRONTEND=noninteractive
            apt-get -o DPkg::Lock::Timeout=300 update -qq
            apt-get -o DPkg::Lock::Timeout=300 install -y -qq python3-venv
            "$PY" -m venv "$VENV_DIR"
        else
            echo "cannot create a virtual environment: install python3-venv (Debian) first." >&2
            exit 1
        fi
    fi
fi

WANTED="$(requirements_hash)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANTED" ]; then
    log "dependencies up to date in $VENV_DIR (requirements unchanged)"
    exit 0
fi

log "installing requirements/dev.txt with requirements/constraints.txt (first run: several minutes)"
"$VENV_DIR/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r requirements/dev.txt -c requirements/constraints.txt
# Checked before stamping: a broken install must not be remembered as a good one.
"$VENV_DIR/bin/python" -m pip check
"$VENV_DIR/bin/python" -c 'import django, celery, rest_framework, yaml, numpy' \
    || { echo "the installed environment does not import its core packages" >&2; exit 1; }
echo "$WANTED" >"$STAMP"
log "dependencies installed in $VENV_DIR"
