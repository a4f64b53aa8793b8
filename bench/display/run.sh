#!/bin/bash
# rvirt-vmm vs QEMU 7.2 in one run (issue 17, "Benchmarks"): time and bytes
# for a VNC client to receive the whole 1024x768 screen of a bochs-display
# and a small changed rectangle (64x64), per encoding (raw, zlib, ZRLE);
# the VMM's memory with the display and a client. See bench.py.
#
# Needs: /dev/kvm, qemu-system-x86_64 (Debian qemu-system-x86), python3.
# Usage: bench/display/run.sh
#   RUNS=3 BOXES=10    VMM runs each (alternating), boxes per encoding
#   QEMU=qemu-system-x86_64
#   RVIRT_VMM=PATH     benchmark this rvirt-vmm binary instead of building one
#   NO_BUILD=1         use the existing target/release/rvirt-vmm as it is
# Results also go to bench/results/display-<UTC timestamp>.json (git-ignored).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
QEMU=${QEMU:-qemu-system-x86_64}
QEMU_BIN=$(command -v "$QEMU" || true)
if [ -z "$QEMU_BIN" ]; then
  echo "bench/display: $QEMU not found; install it with:" >&2
  echo "  apt-get install -y --no-install-recommends qemu-system-x86" >&2
  exit 1
fi
[ -w /dev/kvm ] || { echo "bench/display: /dev/kvm is missing or not writable" >&2; exit 1; }
RVIRT=${RVIRT_VMM:-$ROOT/target/release/rvirt-vmm}
if [ -z "${RVIRT_VMM:-}" ] && [ -z "${NO_BUILD:-}" ]; then
  echo "building rvirt-vmm (release) and the test guests..." >&2
  cargo build --quiet --release -p rvirt-vmm -p rvirt-test-guests --manifest-path "$ROOT/Cargo.toml"
fi
GUEST=$(ls -t "$ROOT"/target/*/build/rvirt-test-guests-*/out/guests/displaybench.elf 2>/dev/null | head -1)
[ -n "$GUEST" ] || { echo "bench/display: build rvirt-test-guests first" >&2; exit 1; }
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$ROOT" status --porcelain -- crates 2>/dev/null)" ]; then COMMIT="$COMMIT+dirty"; fi
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
exec python3 "$ROOT/bench/display/bench.py" --rvirt "$RVIRT" --qemu "$QEMU_BIN" \
  --guest "$GUEST" --runs "${RUNS:-3}" --boxes "${BOXES:-10}" \
  --commit "$COMMIT" --json "$ROOT/bench/results/display-$STAMP.json"
