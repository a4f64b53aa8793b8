#!/usr/bin/env bash
# Installs and starts what the test suite needs on a fresh Debian machine
# (run as root):
# - the reference QEMU the monitor tests compare against;
# - lz4, to unpack Debian's kernel for the Linux boot tests;
# - iproute2, whose `ip` sets up bridges and reads taps in the network tests;
# - the real libvirt clients (virsh, libvirt-python) that drive rvirtd, and
#   libvirtd itself, whose test driver rvirsh's output is compared against;
# - virt-manager under Xvfb, driven with xdotool and checked on screenshots;
# - Python's qemu.qmp client.
# The Rust toolchain, gcc and binutils come with the machine.
set -euo pipefail
need_apt=()
command -v qemu-system-x86_64 >/dev/null || need_apt+=(qemu-system-x86)
command -v gcc >/dev/null || need_apt+=(gcc)
command -v ld >/dev/null || need_apt+=(binutils)
command -v lz4 >/dev/null || need_apt+=(lz4)
command -v ip >/dev/null || need_apt+=(iproute2)
command -v virsh >/dev/null || need_apt+=(libvirt-clients)
command -v libvirtd >/dev/null || need_apt+=(libvirt-daemon-system libvirt-daemon-driver-qemu)
command -v tini >/dev/null || need_apt+=(tini)
command -v script >/dev/null || need_apt+=(bsdutils)
/usr/bin/python3 -c 'import libvirt' 2>/dev/null || need_apt+=(python3-libvirt)
command -v virt-manager >/dev/null || need_apt+=(virt-manager)
command -v Xvfb >/dev/null || need_apt+=(xvfb)
command -v xdotool >/dev/null || need_apt+=(xdotool)
command -v import >/dev/null || need_apt+=(imagemagick)
command -v dbus-daemon >/dev/null || need_apt+=(dbus-daemon)
if [ ${#need_apt[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi
if ! python3 -c 'import qemu.qmp' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check qemu.qmp
fi
# libvirtd for rvirsh's reference tests (its test driver needs no VMs). This
# machine has no init system: run it under tini so exited children are
# reaped, as ../shared/REFERENCE-STACK.md describes. /run survives a reboot
# here, so a socket file left by a libvirtd that is gone proves nothing:
# ask the daemon itself.
libvirtd_answers() {
  timeout 10 virsh -c 'test+unix:///default?socket=/run/libvirt/libvirt-sock' uri >/dev/null 2>&1
}
if ! libvirtd_answers; then
  pkill -x libvirtd 2>/dev/null && sleep 1 || true
  pgrep -x virtlogd >/dev/null || virtlogd -d
  setsid tini -s -- libvirtd >/tmp/libvirtd.log 2>&1 </dev/null &
  for _ in $(seq 100); do
    libvirtd_answers && break
    sleep 0.2
  done
  libvirtd_answers || { echo "setup: libvirtd did not start" >&2; cat /tmp/libvirtd.log >&2; exit 1; }
fi
