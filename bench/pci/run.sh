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
QEMU=${QEMU:-qemu-system-x86_64}
QEMU_BIN=$(command -v "$QEMU" || true)
if [ -z "$QEMU_BIN" ]; then
  echo "bench/pci: $QEMU not found; install it with:" >&2
  echo "  apt-get install -y --no-install-recommends qemu-system-x86" >&2
  exit 1
fi
[ -w /dev/kvm ] || { echo "bench/pci: /dev/kvm is missing or not writable" >&2; exit 1; }
command -v python3 >/dev/null || { echo "bench/pci: python3 is needed" >&2; exit 1; }
RVIRT=${RVIRT_VMM:-$ROOT/target/release/rvirt-vmm}
if [ -z "${RVIRT_VMM:-}" ] && [ -z "${NO_BUILD:-}" ]; then
  echo "building rvirt-vmm (release) and the test guests..." >&2
  cargo build --quiet --release -p rvirt-vmm --manifest-path "$ROOT/Cargo.toml"
fi
PCI_GUEST=$(cargo run --quiet -p rvirt-test-guests --manifest-path "$ROOT/Cargo.toml" -- pci)
ONELINE=$(cargo run --quiet -p rvirt-test-guests --manifest-path "$ROOT/Cargo.toml" -- oneline)
IMAGE=/dev/shm/rvirt-bench-pci-$$.img
trap 'rm -f "$IMAGE"' EXIT
dd if=/dev/zero of="$IMAGE" bs=1M count=16 status=none
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$ROOT" status --porcelain -- crates 2>/dev/null)" ]; then COMMIT="$COMMIT+dirty"; fi
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
exec python3 "$ROOT/bench/pci/bench.py" --rvirt "$RVIRT" --qemu "$QEMU_BIN" \
  --pci-guest "$PCI_GUEST" --oneline "$ONELINE" --image "$IMAGE" \
  --runs "${RUNS:-7}" --warmup "${WARMUP:-1}" --n "${N:-20000}" --commit "$COMMIT" \
  --json "$ROOT/bench/results/pci-$STAMP.json"
