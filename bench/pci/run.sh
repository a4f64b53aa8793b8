#!/bin/bash
# rvirt-vmm vs QEMU 7.2 on PCI (issue 13): the cost of one configuration
# access exit (CF8/CFC on pc and q35, ECAM on q35), and fork -> the guest's
# first line on pc with virtio-pci devices. The virtio-blk-pci request rate
# is bench/virtio's (PCI=1 bench/virtio/run.sh).
#
# Needs: /dev/kvm, qemu-system-x86_64 (Debian qemu-system-x86), python3.
# Usage: bench/pci/run.sh
#   RUNS=7 WARMUP=1   runs per VMM and case (alternating), untimed first
#   N=20000           configuration reads per phase
#   QEMU=qemu-system-x86_64
#   RVIRT_VMM=PATH    benchmark this rvirt-vmm binary instead of building one
#   NO_BUILD=1        use the existing target/release/rvirt-vmm as it is
# Results also go to bench/results/pci-<UTC timestamp>.json (git-ignored).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/bench/lib/common.sh"
need_qemu
need_kvm
command -v python3 >/dev/null || { echo "bench/pci: python3 is needed" >&2; exit 1; }
build_vmm
PCI_GUEST=$(cargo run --quiet -p rvirt-test-guests --manifest-path "$ROOT/Cargo.toml" -- pci)
ONELINE=$(cargo run --quiet -p rvirt-test-guests --manifest-path "$ROOT/Cargo.toml" -- oneline)
IMAGE=/dev/shm/rvirt-bench-pci-$$.img
trap 'rm -f "$IMAGE"' EXIT
dd if=/dev/zero of="$IMAGE" bs=1M count=16 status=none
bench_commit
exec python3 "$ROOT/bench/pci/bench.py" --rvirt "$RVIRT" --qemu "$QEMU_BIN" \
  --pci-guest "$PCI_GUEST" --oneline "$ONELINE" --image "$IMAGE" \
  --runs "${RUNS:-7}" --warmup "${WARMUP:-1}" --n "${N:-20000}" --commit "$COMMIT" \
  --json "$ROOT/bench/results/pci-$STAMP.json"
