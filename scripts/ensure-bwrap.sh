#!/usr/bin/env bash
# Install bubblewrap (the unprivileged sandbox backend) if it is missing. Idempotent.
set -euo pipefail

if command -v bwrap >/dev/null 2>&1; then
    echo "bubblewrap present: $(bwrap --version)"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "bubblewrap is missing and installing it needs root (apt-get install bubblewrap)." >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=300 update -qq
apt-get -o DPkg::Lock::Timeout=300 install -y -qq bubblewrap
echo "bubblewrap installed: $(bwrap --version)"
