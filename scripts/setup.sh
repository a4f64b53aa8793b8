#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine (run as root):
# the reference QEMU the monitor tests compare against, Python's qemu.qmp
# client, and lz4 for unpacking Debian's kernel in the Linux boot tests. The
# Rust toolchain, gcc and binutils come with the machine.
set -euo pipefail
need_apt=()
command -v qemu-system-x86_64 >/dev/null || need_apt+=(qemu-system-x86)
command -v gcc >/dev/null || need_apt+=(gcc)
command -v ld >/dev/null || need_apt+=(binutils)
command -v lz4 >/dev/null || need_apt+=(lz4)
if [ ${#need_apt[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi
if ! python3 -c 'import qemu.qmp' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check qemu.qmp
fi
