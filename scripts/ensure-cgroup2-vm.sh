#!/usr/bin/env bash
# What tests/workers/sandbox/test_cgroup_v2_vm.py boots: a guest kernel with cgroup v2. Idempotent.
#
#   QEMU            Debian's qemu-system-x86 (the guest runs under software emulation if need be)
#   busybox-static  virtme-ng builds the guest's initramfs with it
#   kernel          Debian's current linux-image-amd64, unpacked (not installed: nothing in /boot
#                   or /lib/modules changes) into var/cgroup2-vm/, modules indexed by depmod
#   virtme-ng       a Python package of requirements/dev.txt, in .venv (scripts/setup.sh)
#
# The guest shares this machine's root filesystem read-only, so it runs the project's .venv and
# tests as they are here. x86-64 only, as the rest of the test machine.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VM_DIR="$ROOT/var/cgroup2-vm"

log() { printf '[cgroup2-vm] %s\n' "$*"; }
die() { printf '[cgroup2-vm] %s\n' "$*" >&2; exit 1; }

[ "$(uname -m)" = x86_64 ] || die "the cgroup v2 guest is built for x86-64 only (this is $(uname -m))"

missing=()
command -v qemu-system-x86_64 >/dev/null 2>&1 || missing+=(qemu-system-x86)
[ -x /bin/busybox ] || missing+=(busybox-static)
command -v depmod >/dev/null 2>&1 || missing+=(kmod)
if [ "${#missing[@]}" -ne 0 ]; then
    [ "$(id -u)" -eq 0 ] || die "${missing[*]} missing; installing needs root: sudo apt-get install ${missing[*]}"
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! compgen -G "$VM_DIR/boot/vmlinuz-*" >/dev/null; then
    # The metapackage names the current kernel package (linux-image-6.1.0-NN-amd64).
    package="$(apt-cache depends linux-image-amd64 2>/dev/null \
        | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n 1)"
    [ -n "$package" ] || die "apt knows no kernel package behind linux-image-amd64 (apt-get update?)"
    log "unpacking $package into $VM_DIR"
    download="$(mktemp -d)"
    trap 'rm -rf "$download"' EXIT
    (cd "$download" && apt-get -o APT::Sandbox::User=root download -qq "$package") \
        || die "could not download $package"
    rm -rf "$VM_DIR.partial"
    mkdir -p "$VM_DIR.partial"
    dpkg-deb -x "$download"/"$package"_*.deb "$VM_DIR.partial"
    version="${package#linux-image-}"
    depmod -b "$VM_DIR.partial" "$version"
    rm -rf "$VM_DIR"
    mv "$VM_DIR.partial" "$VM_DIR"
fi

kernel="$(compgen -G "$VM_DIR/boot/vmlinuz-*" | head -n 1)"
[ -x "$ROOT/.venv/bin/virtme-run" ] || die "virtme-run missing from .venv (run scripts/setup.sh)"
log "guest kernel ready: $kernel"
