#!/usr/bin/env bash
# Make the real services the test suite needs available on loopback. Idempotent.
#
#   PostgreSQL  127.0.0.1:5432, user postgres, trust on loopback; database `grader` exists
#   Redis       127.0.0.1:6379, nothing persisted
#   bubblewrap  via scripts/ensure-bwrap.sh   (the embedded default sandbox)
#   Docker      via scripts/ensure-docker.sh  (the production sandbox; no bridge, no iptables)
#   Chromium    Debian's package, when a test uses Playwright
#   others      any further scripts/ensure-*.sh, alphabetically
#
# Each is installed with apt when missing (needs root) and started when down. A service that
# cannot be made available stops the script with a non-zero exit: CI must not go on without it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PG_HOST=127.0.0.1
PG_PORT=5432
REDIS_PORT=6379

log() { printf '[services] %s\n' "$*"; }
die() { printf '[services] %s\n' "$*" >&2; exit 1; }

APT_UPDATED=0
apt_install() {
    [ "$(id -u)" -eq 0 ] || die "$* missing; installing needs root: sudo apt-get install $*"
    export DEBIAN_FRONTEND=noninteractive
    if [ "$APT_UPDATED" -eq 0 ]; then
        apt-get -o DPkg::Lock::Timeout=300 update -qq
        APT_UPDATED=1
    fi
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq "$@"
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local seconds="$1" what="$2"
    shift 2
    for _ in $(seq 1 "$seconds"); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 1
    done
    die "$what did not answer within ${seconds} s"
}

# --- PostgreSQL ------------------------------------------------------------------------------
ensure_postgres() {
    if ! command -v pg_ctlcluster >/dev/null 2>&1; then
        log "installing PostgreSQL"
        apt_install postgresql postgresql-client
    fi
    local version
    version="$(ls /etc/postgresql | sort -V | tail -n 1)"
    [ -n "$version" ] || die "no PostgreSQL cluster under /etc/postgresql"
    if ! pg_isready -q -h "$PG_HOST" -p "$PG_PORT"; then
        log "starting PostgreSQL $version"
        pg_ctlcluster --skip-systemctl-redirect "$version" main start
        wait_for 30 "PostgreSQL on $PG_HOST:$PG_PORT" pg_isready -q -h "$PG_HOST" -p "$PG_PORT"
    fi
    # A fresh Debian cluster asks for a password on TCP. The suite connects as postgres without
    # one, so allow exactly that on loopback (nothing else listens: listen_addresses=localhost).
    if ! psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -tAc 'SELECT 1' \
        </dev/null >/dev/null 2>&1; then
        local hba="/etc/postgresql/$version/main/pg_hba.conf"
        [ -w "$hba" ] || die "PostgreSQL refuses postgres@$PG_HOST and $hba is not writable"
        log "allowing trust authentication for postgres on loopback in $hba"
        sed -i '1i host all postgres 127.0.0.1/32 trust\nhost all postgres ::1/128 trust' "$hba"
        pg_ctlcluster --skip-systemctl-redirect "$version" main reload
        wait_for 15 "PostgreSQL login as postgres" \
            psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -tAc 'SELECT 1'
    fi
    if [ "$(psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = 'grader'")" != "1" ]; then
        psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -qc 'CREATE DATABASE grader'
    fi
    log "PostgreSQL ready on $PG_HOST:$PG_PORT (database grader)"
}

# --- Redis -----------------------------------------------------------------------------------
ensure_redis() {
    if ! command -v redis-server >/dev/null 2>&1; then
        log "installing Redis"
        apt_install redis-server
    fi
    if ! redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; then
        log "starting Redis"
        mkdir -p /var/lib/redis /var/log/redis
        redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" \
            --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
        wait_for 30 "Redis on 127.0.0.1:$REDIS_PORT" redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping
    fi
    log "Redis ready on 127.0.0.1:$REDIS_PORT"
}

# --- Chromium for the Playwright tests (marker `browser`) -------------------------------------
# Playwright cannot download its own browser here (no internet beyond package registries): the
# tests drive Debian's chromium. Installed only when some test uses Playwright.
ensure_chromium() {
    if ! grep -rqs --include='*.py' -e 'playwright' "$ROOT/tests"; then
        return 0
    fi
    if ! command -v chromium >/dev/null 2>&1; then
        log "installing Chromium (Playwright tests)"
        apt_install chromium
    fi
    log "Chromium ready: $(chromium --version 2>/dev/null | head -n 1)"
}

ensure_postgres
ensure_redis
ensure_chromium

# --- Sandboxes and the rest: each script owns its service ------------------------------------
for script in "$ROOT/scripts/ensure-bwrap.sh" "$ROOT/scripts/ensure-docker.sh"; do
    if [ -f "$script" ]; then
        log "running ${script#"$ROOT"/}"
        bash "$script"
    else
        log "${script#"$ROOT"/} not present: skipped"
    fi
done
for script in "$ROOT"/scripts/ensure-*.sh; do
    case "$(basename "$script")" in
        ensure-services.sh | ensure-bwrap.sh | ensure-docker.sh) continue ;;
    esac
    [ -f "$script" ] || continue
    log "running ${script#"$ROOT"/}"
    bash "$script"
done
log "all services ready"
