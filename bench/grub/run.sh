#!/bin/bash
# rvirtd + rvirt-vmm vs libvirtd 9.0 + QEMU 7.2 booting a real GRUB disk
# through SeaBIOS (issue 14, "Benchmark"): `start` -> SeaBIOS's banner, ->
# the MBR, -> GRUB's boot sector, -> GRUB's first line on its serial
# terminal (the issue's metric), -> the kernel GRUB boots; medians and
# rvirt/libvirt ratios. The disk is built by rvirt-test-guests' GRUB
# builder (the one crates/rvirtd/tests/grub.rs uses), with the bzimage
# test guest as its kernel and bench/grub/grub.cfg.
#
# Needs: root, /dev/kvm; installs what is missing (libvirtd 9.0 + QEMU,
# virsh, tini, unshare, grub-pc-bin, e2fsprogs, python3) with apt-get;
# Debian's seabios must be there (qemu-system-x86 pulls it in).
# libvirt side: a fresh private libvirtd (bench/lib/private_libvirtd.py);
# rvirtd on a temporary --root. Both are stopped at the end.
#
# Usage: bench/grub/run.sh
#   RUNS=5       samples per stack (alternating), after one untimed round
#   NO_BUILD=1   use target/release as it is
# Results also go to bench/results/grub-<UTC timestamp>.json (git-ignored).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/bench/lib/common.sh"
REL=$ROOT/target/release

need_kvm
need python3 python3
need unshare util-linux
need tini tini
need virsh libvirt-clients
need libvirtd libvirt-daemon-system libvirt-daemon-driver-qemu
need qemu-system-x86_64 qemu-system-x86
need grub-mkimage grub-pc-bin
need mkfs.ext2 e2fsprogs
[ -e /usr/share/seabios/bios-256k.bin ] || { echo "bench/grub: Debian's seabios is needed (apt-get install seabios)" >&2; exit 1; }

build_vmm -p rvirtd -p rvirsh -p rvirt-test-guests
for b in rvirt-vmm rvirtd rvirsh rvirt-test-guests; do
  [ -x "$REL/$b" ] || { echo "bench/grub: $REL/$b is missing (cargo build --release -p $b)" >&2; exit 1; }
done
WORK=$(mktemp -d /tmp/rvirt-bench-grub-disk.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
chmod 755 "$WORK"
"$REL/rvirt-test-guests" grub-disk "$WORK/grub.img" "$("$REL/rvirt-test-guests" bzimage)" \
  "$ROOT/bench/grub/grub.cfg"

COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$ROOT" status --porcelain -- crates 2>/dev/null)" ]; then COMMIT="$COMMIT+dirty"; fi
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
python3 "$ROOT/bench/grub/bench.py" --bin "$REL" --disk "$WORK/grub.img" \
  --runs "${RUNS:-5}" --commit "$COMMIT" --json "$ROOT/bench/results/grub-$STAMP.json"
