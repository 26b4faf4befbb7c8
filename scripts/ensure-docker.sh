#!/usr/bin/env bash
# Make sure a Docker engine answers on its socket. Idempotent.
#
# 1. Install docker.io (Debian's engine) when `dockerd` is missing.
# 2. Start `dockerd --bridge=none --iptables=false` in the background when the socket does not
#    answer: sandboxes only ever use `--network none`, so the engine needs no bridge and must not
#    rewrite the host's firewall.
# 3. Wait up to 60 s for `docker info`.
set -euo pipefail

LOG_FILE="${DOCKERD_LOG:-/var/log/dockerd.log}"
WAIT_SECONDS="${DOCKERD_WAIT_SECONDS:-60}"

engine_answers() {
    docker info --format '{{.ServerVersion}}' >/dev/null 2>&1
}

if ! command -v dockerd >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "dockerd is missing and installing docker.io needs root." >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq docker.io
fi

if engine_answers; then
    echo "Docker engine answers: $(docker info --format '{{.ServerVersion}}')"
    exit 0
fi

if ! pgrep -x dockerd >/dev/null 2>&1; then
    mkdir -p "$(dirname "$LOG_FILE")"
    echo "starting dockerd (logs: $LOG_FILE)"
    nohup dockerd --bridge=none --iptables=false >>"$LOG_FILE" 2>&1 &
fi

for _ in $(seq 1 "$WAIT_SECONDS"); do
    if engine_answers; then
        echo "Docker engine answers: $(docker info --format '{{.ServerVersion}}')"
        exit 0
    fi
    sleep 1
done

echo "the Docker engine did not answer within ${WAIT_SECONDS} s; see $LOG_FILE" >&2
tail -n 20 "$LOG_FILE" >&2 || true
exit 1
