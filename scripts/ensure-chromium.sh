#!/usr/bin/env bash
# Install Debian's Chromium for the browser tests (tests/browser, Playwright with
# executable_path=/usr/bin/chromium: no browser download). Idempotent.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
    echo "chromium present: $(/usr/bin/chromium --version 2>/dev/null || echo unknown version)"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "chromium is missing and installing it needs root (apt-get install chromium)." >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=300 update -qq
apt-get -o DPkg::Lock::Timeout=300 install -y -qq chromium
echo "chromium installed: $(/usr/bin/chromium --version 2>/dev/null || echo unknown version)"
