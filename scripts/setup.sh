#!/usr/bin/env bash
# Installs and starts what the test suite needs on a fresh Debian machine
# (run as root):
# - the reference QEMU the monitor tests compare against;
# - lz4, to unpack Debian's kernel for the Linux boot tests;
# - iproute2, whose `ip` sets up bridges and reads taps in the network tests;
# - Debian's dnsmasq (dnsmasq-base: the program without its system service,
#   what libvirt depends on) for the virtual networks' DHCP and DNS, and
#   nftables' nft for their firewall rules;
# - passt, the user-mode network back-end rvirt-vmm runs for `-netdev user`
#   and rvirtd for `<interface type='user'>` with `<backend type='passt'/>`;
# - virtinst's virt-install, which the user-networking test drives;
# - the real libvirt clients (virsh, libvirt-python) that drive rvirtd, and
#   libvirtd itself, whose test driver rvirsh's output is compared against;
# - virt-manager and virt-viewer under Xvfb, driven with xdotool and checked
#   on screenshots;
# - Python's qemu.qmp client and vncdotool (a VNC client);
# - virtinst (virt-install, virt-xml, virt-clone) and Ansible (ansible-core
#   from PyPI, with the community.libvirt and ansible.posix collections
#   taken from PyPI's `ansible` wheel, as Galaxy is not reachable here; lxml
#   for the module) and libvirt-dbus for the client tests;
# - SeaBIOS (bios.bin, bios-256k.bin, bios-microvm.bin and the VGA BIOS images
#   in /usr/share/seabios), the firmware disk boots run through, with rvirt
#   and with the reference QEMU alike;
# - xorriso, which builds the El Torito ISO the SATA CD-ROM boot tests
#   boot from;
# - cargo-fuzz, for scripts/check.sh's fuzz runs, and cargo-nextest, the
#   test runner (both come with the machine image; installed if missing).
# The Rust toolchain, gcc and binutils come with the machine.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt_updated=
apt_update() { [ -n "$apt_updated" ] || { apt-get update -qq; apt_updated=1; }; }

# One consistent QEMU set. The machine image may carry some of QEMU's
# packages from a newer release (qemu-utils 10 from bookworm-backports) that
# Breaks bookworm's qemu-system-x86 7.2, the reference: every installed
# package built from QEMU's source is brought to the version
# qemu-system-x86 is installed (or will be installed) at, downgrading where
# needed. Safe to run again: nothing is asked of apt once they agree.
qemu_version() {
  dpkg-query -W -f '${Status} ${Version}\n' qemu-system-x86 2>/dev/null |
    awk '$3 == "installed" { print $4 }' || true
}
qver=$(qemu_version)
if [ -z "$qver" ]; then
  apt_update
  qver=$(apt-cache policy qemu-system-x86 | awk '$1 == "Candidate:" { print $2 }')
  [ -n "$qver" ] && [ "$qver" != "(none)" ] ||
    { echo "setup: apt has no qemu-system-x86" >&2; exit 1; }
fi
# A binary rebuild (+bN) keeps its source's version: compare sources, and
# pin each package to the version apt has of that same source.
qsrc=${qver%+b[0-9]*}
qemu_set=(qemu-system-x86="$qver")
while read -r pkg src ver status; do
  [ "$status" = installed ] && [ "$src" = qemu ] && [ "$pkg" != qemu-system-x86 ] || continue
  [ "${ver%+b[0-9]*}" = "$qsrc" ] && continue
  apt_update
  v=$(apt-cache madison "$pkg" | awk -F' [|] ' -v s="$qsrc" '
        { v = $2; b = v; sub(/[+]b[0-9]+$/, "", b) } b == s { print v; exit }')
  [ -n "$v" ] || { echo "setup: apt has no $pkg of QEMU $qsrc" >&2; exit 1; }
  qemu_set+=("$pkg=$v")
done < <(dpkg-query -W -f '${Package} ${source:Package} ${Version} ${db:Status-Status}\n' 2>/dev/null)
if [ ${#qemu_set[@]} -gt 1 ] || [ -z "$(qemu_version)" ]; then
  apt_update
  apt-get install -y -qq --no-install-recommends --allow-downgrades "${qemu_set[@]}"
fi

# The user rvirtd runs VMMs as (its --user default, as libvirt-qemu is
# libvirtd's).
getent passwd rvirt-qemu >/dev/null ||
  useradd --system --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin --user-group rvirt-qemu

need_apt=()
command -v gcc >/dev/null || need_apt+=(gcc)
command -v ld >/dev/null || need_apt+=(binutils)
command -v lz4 >/dev/null || need_apt+=(lz4)
[ -e /usr/share/seabios/bios-microvm.bin ] || need_apt+=(seabios)
command -v xorriso >/dev/null || need_apt+=(xorriso)
command -v ip >/dev/null || need_apt+=(iproute2)
[ -x /usr/sbin/dnsmasq ] || need_apt+=(dnsmasq-base)
[ -x /usr/sbin/nft ] || need_apt+=(nftables)
command -v passt >/dev/null || need_apt+=(passt)
command -v virt-install >/dev/null || need_apt+=(virtinst)
command -v virsh >/dev/null || need_apt+=(libvirt-clients)
command -v libvirtd >/dev/null || need_apt+=(libvirt-daemon-system libvirt-daemon-driver-qemu)
command -v tini >/dev/null || need_apt+=(tini)
command -v script >/dev/null || need_apt+=(bsdutils)
# GRUB for i386-pc (grub-mkimage and its modules) and mkfs.ext2 -d: the
# firmware test builds a real GRUB disk from them, unprivileged.
[ -e /usr/lib/grub/i386-pc/boot.img ] || need_apt+=(grub-pc-bin)
command -v mkfs.ext2 >/dev/null || need_apt+=(e2fsprogs)
/usr/bin/python3 -c 'import libvirt' 2>/dev/null || need_apt+=(python3-libvirt)
command -v virt-manager >/dev/null || need_apt+=(virt-manager)
command -v virt-viewer >/dev/null || need_apt+=(virt-viewer)
command -v Xvfb >/dev/null || need_apt+=(xvfb)
command -v xdotool >/dev/null || need_apt+=(xdotool)
command -v import >/dev/null || need_apt+=(imagemagick)
command -v dbus-daemon >/dev/null || need_apt+=(dbus-daemon)
command -v virt-install >/dev/null || need_apt+=(virtinst)
command -v libvirt-dbus >/dev/null || need_apt+=(libvirt-dbus)
command -v losetup >/dev/null || need_apt+=(mount)
/usr/bin/python3 -c 'import lxml' 2>/dev/null || need_apt+=(python3-lxml)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt_update
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi
command -v cargo-fuzz >/dev/null || cargo install --quiet --locked cargo-fuzz
command -v cargo-nextest >/dev/null || cargo install --quiet --locked cargo-nextest
if ! python3 -c 'import qemu.qmp' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check qemu.qmp
fi
# Ansible's libvirt module, for crates/rvirtd/tests/ansible.rs: ansible-core,
# and the two collections it needs out of the `ansible` wheel of the same
# release (ansible 12 ships with ansible-core 2.19).
ansible_collections=/usr/local/share/rvirt/ansible
command -v ansible-playbook >/dev/null ||
  python3 -m pip install --quiet --disable-pip-version-check 'ansible-core>=2.19,<2.20'
if [ ! -e "$ansible_collections/ansible_collections/community/libvirt/plugins/modules/virt.py" ]; then
  wheel_dir=$(mktemp -d)
  python3 -m pip download --quiet --disable-pip-version-check --no-deps -d "$wheel_dir" 'ansible==12.3.0'
  python3 - "$wheel_dir"/ansible-*.whl "$ansible_collections" <<'PY'
import sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for n in z.namelist():
        if n.startswith(("ansible_collections/community/libvirt/", "ansible_collections/ansible/posix/")):
            z.extract(n, dest)
PY
  rm -rf "$wheel_dir"
fi
# A real VNC client for crates/vnc's tests.
if ! python3 -c 'import vncdotool' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check vncdotool
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
