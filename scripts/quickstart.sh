#!/usr/bin/env bash
# Quick start command 1: set up everything and run the site and a worker on the embedded default.
#
#   - .venv/ with the pinned dependencies (scripts/setup.sh)
#   - bubblewrap, the embedded default sandbox (scripts/ensure-bwrap.sh, when root)
#   - the database (SQLite under var/), migrated
#   - the demo course (load_demo: three assignments, `instructor`, `student1`, `student2`), the
#     `synthetic` dataset and, when this machine is online, CIFAR-10 (downloaded once); existing
#     data and passwords are kept on later runs
#   - a Celery worker with beat on the filesystem broker (queues preflight, gpu, maintenance)
#   - the web site on http://127.0.0.1:$PORT (loopback only)
#
# Ctrl-C stops both. Environment: PORT (default 8000), DEMO_PASSWORD (the demo accounts'
# password when they are first created; default printed at the end), and every variable in
# .env.example (leave DATABASE_URL and CELERY_BROKER_URL unset for the embedded default).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PORT="${PORT:-8000}"
export DJANGO_SETTINGS_MODULE="${DJANGO_SETTINGS_MODULE:-config.settings.local}"
PY="$ROOT/.venv/bin/python"
# The same default as assignments/management/commands/load_demo.py (a test keeps them equal).
export DEMO_PASSWORD="${DEMO_PASSWORD:-grader-demo}"
# The same folder the settings use for SQLite and the broker.
VAR_DIR="${GRADER_VAR_DIR:-$ROOT/var}"
LOG_DIR="$VAR_DIR/log"

log() { printf '[quickstart] %s\n' "$*"; }
die() { printf '[quickstart] %s\n' "$*" >&2; exit 1; }

port_in_use() {
    "$PY" - "$1" <<'PYEOF'
import socket, sys
with socket.socket() as s:
    s.settimeout(1)
    sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)
PYEOF
}

bash scripts/setup.sh

# The embedded default sandbox is bubblewrap.
if command -v bwrap >/dev/null 2>&1; then
    log "bubblewrap present"
elif [ "$(id -u)" -eq 0 ] && [ -f scripts/ensure-bwrap.sh ]; then
    bash scripts/ensure-bwrap.sh
else
    log "WARNING: bubblewrap (bwrap) is missing, so submissions cannot be graded."
    log "         Install it as root: sudo apt-get install bubblewrap  (or sudo scripts/ensure-bwrap.sh)"
fi

mkdir -p "$LOG_DIR"
log "migrating the database"
"$PY" manage.py migrate --noinput
log "loading the demo course"
"$PY" manage.py load_demo
if "$PY" manage.py help prepare_dataset >/dev/null 2>&1; then
    log "preparing the synthetic dataset"
    "$PY" manage.py prepare_dataset synthetic
    # cifar10-separable and cifar10-dilated train on CIFAR-10: downloaded once (170 MB, SHA-256
    # checked) when this machine is online; offline, one line says so, models are still checked
    # and their training waits until the dataset is installed.
    log "preparing CIFAR-10 (download once when online)"
    "$PY" manage.py fetch_dataset cifar10 --if-online --timeout 20 \
        || log "WARNING: CIFAR-10 could not be prepared; see the message above"
else
    log "WARNING: no prepare_dataset command in this checkout: the synthetic dataset was not prepared"
fi

if port_in_use "$PORT"; then
    die "127.0.0.1:$PORT is already in use (another quick start?). Stop it or set PORT=8001."
fi

WORKER_PID=""
WEB_PID=""
stop_all() {
    trap - INT TERM EXIT
    log "stopping"
    # Each runs in its own session (setsid). The site's whole group gets TERM. Celery gets it
    # in its main process only: that is its warm shutdown, which stops the pool and beat
    # itself; TERM sent to a pool process kills it mid-task and is logged as an ERROR. What
    # is still alive after the wait below (a grading cut short, requeued later by the reaper,
    # and its sandbox) goes with the group's KILL.
    local pid
    [ -n "$WEB_PID" ] && kill -TERM -- "-$WEB_PID" 2>/dev/null || true
    [ -n "$WORKER_PID" ] && kill -TERM "$WORKER_PID" 2>/dev/null || true
    for _ in $(seq 1 20); do
        local alive=0
        for pid in $WEB_PID $WORKER_PID; do
            kill -0 "$pid" 2>/dev/null && alive=1
        done
        [ "$alive" -eq 0 ] && break
        sleep 0.5
    done
    for pid in $WEB_PID $WORKER_PID; do
        kill -KILL -- "-$pid" 2>/dev/null || true
    done
    log "stopped"
}
trap 'stop_all; exit 130' INT TERM
trap stop_all EXIT

log "starting the worker (log: $LOG_DIR/worker.log)"
setsid "$ROOT/.venv/bin/celery" -A workers worker -B \
    -Q preflight,gpu,maintenance --concurrency 1 --loglevel INFO \
    --schedule "$VAR_DIR/celerybeat-schedule" \
    >>"$LOG_DIR/worker.log" 2>&1 &
WORKER_PID=$!

log "starting the web site (log: $LOG_DIR/web.log)"
setsid "$PY" manage.py runserver "127.0.0.1:$PORT" --noreload >>"$LOG_DIR/web.log" 2>&1 &
WEB_PID=$!

for _ in $(seq 1 60); do
    port_in_use "$PORT" && break
    kill -0 "$WEB_PID" 2>/dev/null || { tail -n 30 "$LOG_DIR/web.log" >&2; die "the web site died"; }
    sleep 0.5
done
port_in_use "$PORT" || die "the web site did not open 127.0.0.1:$PORT; see $LOG_DIR/web.log"

cat <<EOF

  CNN grader is running on the embedded default (SQLite, filesystem broker, bubblewrap).

    Site:   http://127.0.0.1:$PORT/

  Demo logins: instructor (instructor of the demo course), student1, student2
  Password:    $DEMO_PASSWORD   (given to demo accounts when first created; kept afterwards)

  Logs: $LOG_DIR/web.log, $LOG_DIR/worker.log.   Ctrl-C stops both.

EOF

# Wait until either process ends (then stop the other) or Ctrl-C.
set +e
wait -n "$WEB_PID" "$WORKER_PID"
rc=$?
set -e
log "a process exited (code $rc); see $LOG_DIR/web.log and $LOG_DIR/worker.log"
exit "$rc"
