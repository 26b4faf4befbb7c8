#!/usr/bin/env bash
# Quick start command 2: set everything up, then lint and run the whole test suite.
#
#   1. scripts/setup.sh            .venv/ with the pinned dependencies
#   2. scripts/ensure-services.sh  PostgreSQL, Redis, bubblewrap, Docker (installed/started)
#   3. ruff check, ruff format --check, mypy (grader/)
#   4. pytest, the whole suite, on PostgreSQL + Redis (what docker-compose runs)
#   5. pytest -m embedded, with no service URL: SQLite + the filesystem broker (the Quick start)
#
# Every step runs even when an earlier one failed, so one run shows every problem; the exit code
# is non-zero when any failed. pytest's exit code 5 (no test collected) counts as a failure: a
# suite that silently ran nothing must not pass. `.ci/run` runs exactly this script.
#
# Artifacts: artifacts/junit-*.xml, and whatever tests write under $ARTIFACTS_DIR (screenshots).
# Extra arguments go to the first pytest run (for example: scripts/test.sh tests/config -x).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/setup.sh || exit 1
bash scripts/ensure-services.sh || exit 1

export ARTIFACTS_DIR="$ROOT/artifacts"
mkdir -p "$ARTIFACTS_DIR"
PY="$ROOT/.venv/bin/python"
FAILED=()

step() {  # step NAME COMMAND...: run it, remember a failure
    local name="$1"
    shift
    printf '\n==> %s\n' "$name"
    "$@"
    local rc=$?
    if [ "$rc" -eq 5 ]; then
        echo "pytest collected no test (exit 5): that is a failure here." >&2
    fi
    if [ "$rc" -ne 0 ]; then
        FAILED+=("$name (exit $rc)")
    fi
}

# 900 s per test: generous for the CPU TensorFlow tests, still catches a hang.
PYTEST_ARGS=(--timeout=900 -o junit_family=xunit2)
SERVICES_SESSION=()
EMBEDDED_SESSION=()
if [ "${CI:-}" = "true" ] || [ "${CI:-}" = "1" ]; then
    # No cache between CI runs; the whole run must end well inside CI's hour, so each pass has
    # a budget (checked between tests: a test running over it ends the session as a failure).
    PYTEST_ARGS+=(-p no:cacheprovider)
    SERVICES_SESSION=(--session-timeout=2700)
    EMBEDDED_SESSION=(--session-timeout=600)
    # CI owns this machine's PostgreSQL while the suite runs one test at a time, so the
    # database-restart test (tests/workers/test_operational_failures.py) may restart it.
    # Outside CI nothing sets this and that test is skipped: a shared server is never restarted.
    if [ -z "${TEST_POSTGRES_RESTART_COMMAND:-}" ] && command -v pg_ctlcluster >/dev/null 2>&1; then
        pg_version="$(ls /etc/postgresql | sort -V | tail -n 1)"
        pg="pg_ctlcluster --skip-systemctl-redirect $pg_version main"
        export TEST_POSTGRES_RESTART_COMMAND="$pg stop --mode=fast && sleep 5 && $pg start \
&& for i in \$(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done"
    fi
fi

step "ruff check" "$PY" -m ruff check .
step "ruff format --check" "$PY" -m ruff format --check .
step "mypy (grader/)" "$PY" -m mypy

# The deployed configuration: PostgreSQL and Redis. pytest-django creates test_grader.
step "pytest: whole suite on PostgreSQL + Redis" \
    env DATABASE_URL=postgres://postgres@127.0.0.1:5432/grader \
    CELERY_BROKER_URL=redis://127.0.0.1:6379/14 \
    "$PY" -m pytest "${PYTEST_ARGS[@]}" "${SERVICES_SESSION[@]}" \
    --junitxml="$ARTIFACTS_DIR/junit-services.xml" --durations=20 "$@"

# The embedded default: no server at all (and no .env that could name one). Only the files that
# use the marker are collected: collecting the whole suite again costs minutes on 2 cores.
mapfile -t EMBEDDED_FILES < <(grep -rl --include='*.py' -e 'mark\.embedded' tests | sort)
step "pytest: embedded default (SQLite + filesystem broker)" \
    env -u DATABASE_URL -u CELERY_BROKER_URL GRADER_ENV_FILE= \
    "$PY" -m pytest "${PYTEST_ARGS[@]}" "${EMBEDDED_SESSION[@]}" \
    --junitxml="$ARTIFACTS_DIR/junit-embedded.xml" -m embedded "${EMBEDDED_FILES[@]}"

printf '\n'
if [ "${#FAILED[@]}" -ne 0 ]; then
    printf 'FAILED: %s\n' "${FAILED[@]}" >&2
    exit 1
fi
echo "All checks passed."
