#!/bin/bash
# User-mode networking: rvirt-vmm (-netdev user, which it serves by running
# passt) vs QEMU 7.2 microvm (-netdev user, slirp), with the `dhcp` test
# guest: fork -> DHCP lease, and guest-to-host UDP throughput from a ring-3
# loop in the guest. bench.py runs both VMMs alternately and prints
# medians and rvirt/QEMU.
#
# Needs: /dev/kvm, qemu-system-x86_64, passt (scripts/setup.sh), python3.
#   ROUNDS=7 WARMUP=1   rounds per VMM and measure (alternating)
#   N=100000 SIZE=1400  datagrams and payload bytes per throughput run
#   RVIRT_VMM=PATH      this rvirt-vmm instead of a release build
#   QEMU=qemu-system-x86_64
# Results also go to bench/results/usernet-<UTC timestamp>.json (git-ignored).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/bench/lib/common.sh"
QEMU_BIN=$(command -v "${QEMU:-qemu-system-x86_64}" || true)
[ -n "$QEMU_BIN" ] || { echo "bench/usernet: QEMU not found" >&2; exit 1; }
command -v passt >/dev/null || { echo "bench/usernet: passt not found (scripts/setup.sh)" >&2; exit 1; }
need_kvm
build_vmm
GUEST=$(cargo run --quiet -p rvirt-test-guests --manifest-path "$ROOT/Cargo.toml" -- dhcp)
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
echo "rvirt-vmm $COMMIT ($(passt --version 2>/dev/null | head -1)) vs $("$QEMU_BIN" --version | head -1)" >&2
exec python3 "$ROOT/bench/usernet/bench.py" --rvirt "$RVIRT" --qemu "$QEMU_BIN" --guest "$GUEST" \
  --rounds "${ROUNDS:-7}" --warmup "${WARMUP:-1}" --n "${N:-100000}" --size "${SIZE:-1400}" \
  --commit "$COMMIT" --json "$ROOT/bench/results/usernet-$STAMP.json"
